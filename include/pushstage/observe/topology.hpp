// pushstage/observe/topology.hpp: the live components of this process (Broadway.topology/1): every
// Dispatcher, dispatch mode, ConsumerPool, Stage and Batcher, with its name, its options, what
// feeds what, and its current stats; as JSON and as Graphviz DOT.
//
// Names:     each component is named by its options (DispatcherOptions::name, PoolOptions::name,
//            BatcherOptions::name; at most 128 bytes, any bytes) or, when the name is empty, by
//            its kind and a number counted per kind in construction order ("dispatcher-1",
//            "stage-2"): stable from run to run of the same program. A name already taken by a
//            live component gets "#2", "#3", ... appended. A Batcher's processors are the pool
//            "<batcher>.processors".
// Threading: components join when built and leave when destroyed, from any thread; capture() is
//            safe from any thread at any time. A component's stats are read while it is listed,
//            so capture() sees each live component whole, never one half destroyed.
// Cost:      construction and destruction take a process-wide lock; nothing on a push, pop or
//            handler call. capture() takes the lock while it reads every component's stats().
// Output:    to_json() and to_dot() escape every name and option text (JSON: <, >, & and
//            controls as \u escapes, so the text is also safe inside HTML; bytes that are not
//            UTF-8 become U+FFFD). Numbers are exact integers, or seconds as decimals.
// Not guaranteed: stats of different components read at the same instant (each is a snapshot of
//            its own, taken one after the other).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pushstage/dispatcher_options.hpp"
#include "pushstage/observe/observer.hpp"

namespace pushstage {

// A pool's (ConsumerPool, Stage, a Batcher's processors) counters, summed over its consumers.
struct PoolSnapshot {
  std::size_t consumers = 0;  // size(): consumers it runs now
  std::size_t active = 0;     // consumer threads not yet ended
  std::uint64_t handled = 0;
  std::uint64_t failed = 0;
  std::uint64_t retried = 0;
  std::uint64_t expired = 0;
  std::chrono::nanoseconds busy{0};  // time inside the handler
  bool paused = false;
  bool manual = false;     // DemandMode::Manual
  std::size_t demand = 0;  // manual: demand asked for and not yet used
};

// A Batcher's batches.
struct BatchSnapshot {
  std::uint64_t events = 0;
  std::uint64_t batches = 0;
  std::uint64_t full = 0;
  std::uint64_t timed_out = 0;
  std::uint64_t at_close = 0;
};

struct ComponentSnapshot {
  std::uint64_t id = 0;
  std::string name;
  ComponentKind kind = ComponentKind::Dispatcher;
  // Options as set, field name and value in text ("capacity", "1024").
  std::vector<std::pair<std::string, std::string>> options;
  // Listed components it takes events from, and emits events into (ids).
  std::vector<std::uint64_t> sources;
  std::vector<std::uint64_t> sinks;
  // Its buffer (dispatchers and modes: summed over partitions or subscribers; a Batcher: its
  // input), with the capacity it may hold (0: unbounded).
  std::optional<DispatcherStats> buffer;
  std::size_t capacity = 0;
  std::optional<PoolSnapshot> pool;
  std::optional<BatchSnapshot> batches;
  // Figures an exporter adds (the dashboard's handler percentiles): name and value.
  std::vector<std::pair<std::string, double>> metrics;
};

struct TopologyEdge {
  std::uint64_t from = 0;
  std::uint64_t to = 0;
};

class Topology {
 public:
  // Every live component, in construction order, and the edges between listed components.
  [[nodiscard]] static Topology capture();

  std::vector<ComponentSnapshot> components;
  std::vector<TopologyEdge> edges;  // from a source to what takes from it, from a stage to its sink
  // When it was captured (steady clock): rates between two captures divide by the difference.
  std::chrono::steady_clock::time_point captured_at{};

  // The component named `name`, or null.
  [[nodiscard]] const ComponentSnapshot* find(std::string_view name) const noexcept;
  // {"captured_at_ns": steady-clock nanoseconds, "components": [...], "edges": [{"from": id,
  // "to": id}, ...]}; see README.md, Observability.
  [[nodiscard]] std::string to_json() const;
  // digraph pushstage { ... }: a box per component (name, kind, key counters), an arrow per edge.
  [[nodiscard]] std::string to_dot() const;
};

}  // namespace pushstage
