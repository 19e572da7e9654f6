// topology_text.cpp: Topology as JSON and as Graphviz DOT (the formats are in topology.hpp and
// README.md, Observability). Every text a user gave goes through text.hpp's escapes.
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "pushstage/observe/topology.hpp"
#include "text.hpp"

namespace pushstage {
namespace {

using detail::append_dot_string;
using detail::append_json_seconds;
using detail::append_json_string;

double seconds(std::chrono::nanoseconds ns) { return static_cast<double>(ns.count()) * 1e-9; }

void field(std::string& out, const char* key, std::uint64_t value) {
  out += '"';
  out += key;
  out += "\":";
  out += std::to_string(value);
}
void field(std::string& out, const char* key, bool value) {
  out += '"';
  out += key;
  out += "\":";
  out += value ? "true" : "false";
}

void ids(std::string& out, const char* key, const std::vector<std::uint64_t>& list) {
  out += '"';
  out += key;
  out += "\":[";
  for (std::size_t i = 0; i < list.size(); ++i) {
    if (i != 0) out += ',';
    out += std::to_string(list[i]);
  }
  out += ']';
}

// Counters as "name":value, comma-separated.
void counts(std::string& out, std::initializer_list<std::pair<const char*, std::uint64_t>> list) {
  bool first = true;
  for (const auto& [key, value] : list) {
    if (!first) out += ',';
    first = false;
    field(out, key, value);
  }
}

void buffer_json(std::string& out, const DispatcherStats& b, std::size_t capacity) {
  out += "\"buffer\":{";
  counts(out, {{"pushed", b.pushed},
               {"popped", b.popped},
               {"rejected", b.rejected},
               {"dropped", b.dropped},
               {"refused_closed", b.refused_closed},
               {"buffered", b.buffered},
               {"parked", b.parked},
               {"spinning", b.spinning},
               {"capacity", capacity}});
  out += '}';
}

void pool_json(std::string& out, const PoolSnapshot& p) {
  out += "\"pool\":{";
  counts(out, {{"consumers", p.consumers},
               {"active", p.active},
               {"handled", p.handled},
               {"failed", p.failed},
               {"retried", p.retried},
               {"expired", p.expired}});
  out += ",\"busy_seconds\":";
  append_json_seconds(out, seconds(p.busy));
  out += ',';
  field(out, "paused", p.paused);
  out += ',';
  field(out, "manual", p.manual);
  out += ',';
  field(out, "demand", std::uint64_t{p.demand});
  out += '}';
}

void batches_json(std::string& out, const BatchSnapshot& b) {
  out += "\"batches\":{";
  counts(out, {{"events", b.events},
               {"batches", b.batches},
               {"full", b.full},
               {"timed_out", b.timed_out},
               {"at_close", b.at_close}});
  out += '}';
}

// "key":{"name":value,...} from (name, value) pairs; `value` writes one value.
template <class V, class F>
void object(std::string& out, const char* key, const std::vector<std::pair<std::string, V>>& pairs,
            F value) {
  out += '"';
  out += key;
  out += "\":{";
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    if (i != 0) out += ',';
    append_json_string(out, pairs[i].first);
    out += ':';
    value(pairs[i].second);
  }
  out += '}';
}

void component_json(std::string& out, const ComponentSnapshot& c) {
  out += '{';
  field(out, "id", c.id);
  out += ",\"name\":";
  append_json_string(out, c.name);
  out += ",\"kind\":";
  append_json_string(out, to_string(c.kind));
  out += ',';
  object(out, "options", c.options, [&](const std::string& v) { append_json_string(out, v); });
  out += ',';
  ids(out, "sources", c.sources);
  out += ',';
  ids(out, "sinks", c.sinks);
  if (c.buffer) {
    out += ',';
    buffer_json(out, *c.buffer, c.capacity);
  }
  if (c.pool) {
    out += ',';
    pool_json(out, *c.pool);
  }
  if (c.batches) {
    out += ',';
    batches_json(out, *c.batches);
  }
  out += ',';
  object(out, "metrics", c.metrics, [&](double v) { append_json_seconds(out, v); });
  out += '}';
}

}  // namespace

std::string Topology::to_json() const {
  std::string out = "{";
  field(out, "captured_at_ns",
        static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(captured_at.time_since_epoch())
                .count()));
  out += ",\"components\":[";
  for (std::size_t i = 0; i < components.size(); ++i) {
    if (i != 0) out += ',';
    component_json(out, components[i]);
  }
  out += "],\"edges\":[";
  for (std::size_t i = 0; i < edges.size(); ++i) {
    if (i != 0) out += ',';
    out += '{';
    field(out, "from", edges[i].from);
    out += ',';
    field(out, "to", edges[i].to);
    out += '}';
  }
  out += "]}";
  return out;
}

std::string Topology::to_dot() const {
  std::string out =
      "digraph pushstage {\n  rankdir=LR;\n  node [shape=box, fontname=\"sans-serif\"];\n";
  for (const ComponentSnapshot& c : components) {
    std::string label = c.name + "\n" + std::string(to_string(c.kind));
    if (c.buffer) {
      label += "\npushed " + std::to_string(c.buffer->pushed) + ", buffered " +
               std::to_string(c.buffer->buffered);
      if (c.capacity != 0) label += " / " + std::to_string(c.capacity);
      if (c.buffer->dropped + c.buffer->rejected != 0) {
        label += "\ndropped " + std::to_string(c.buffer->dropped) + ", rejected " +
                 std::to_string(c.buffer->rejected);
      }
    }
    if (c.pool) {
      label += "\nconsumers " + std::to_string(c.pool->consumers) + ", handled " +
               std::to_string(c.pool->handled);
      if (c.pool->failed != 0) label += ", failed " + std::to_string(c.pool->failed);
    }
    if (c.batches) label += "\nbatches " + std::to_string(c.batches->batches);
    out += "  c" + std::to_string(c.id) + " [label=";
    append_dot_string(out, label);
    out += "];\n";
  }
  for (const TopologyEdge& e : edges) {
    out += "  c" + std::to_string(e.from) + " -> c" + std::to_string(e.to) + ";\n";
  }
  out += "}\n";
  return out;
}

}  // namespace pushstage
