// table.cpp: see report.hpp.
#include <algorithm>
#include <functional>
#include <iomanip>
#include <string>
#include <utility>
#include <vector>

#include "report/format.hpp"
#include "report/report.hpp"

namespace pushstage::bench {
namespace {

std::string ratio(double subject, double peer) {
  if (!(subject > 0) || !(peer > 0)) return "-";
  return fixed(subject / peer, 2) + "x";
}

}  // namespace

void print_case(std::ostream& out, const CaseResult& c) {
  const CaseSpec& spec = c.spec;
  const bool idle = spec.config.kind == RunKind::kIdle;
  const bool batch = spec.config.kind == RunKind::kBatch;
  const bool many_producers = spec.config.plan.producers > 1;
  struct Row {
    std::string label;
    std::vector<std::string> cells;
  };
  std::vector<Row> rows;
  auto add = [&](std::string label, const std::function<std::string(const ImplSummary&)>& f) {
    Row r{std::move(label), {}};
    for (const ImplSummary& s : c.impls) r.cells.push_back(f(s));
    rows.push_back(std::move(r));
  };
  auto add_ratio = [&](const std::function<double(const ImplSummary&)>& f) {
    Row r{"  pushstage/this", {}};
    for (std::size_t i = 0; i < c.impls.size(); ++i) {
      r.cells.push_back(i == 0 ? "" : ratio(f(c.impls[0]), f(c.impls[i])));
    }
    rows.push_back(std::move(r));
  };
  auto pct_value = [](const pushstage::Histogram& h, double p) {
    return static_cast<double>(h.value_at_percentile(p));
  };

  if (idle) {
    add("idle CPU/consumer, % of a core",
        [](const ImplSummary& s) { return fixed(s.idle_cpu_pct_per_consumer, 3) + "%"; });
  } else {
    add("throughput (events/s)", [](const ImplSummary& s) { return fixed(s.throughput, 0); });
    add_ratio([](const ImplSummary& s) { return s.throughput; });
    for (const double p : {50.0, 90.0, 99.0, 99.9}) {
      add("dispatch p" + fixed(p, p < 99.5 ? 0 : 1),
          [&](const ImplSummary& s) { return format_percentile(s.dispatch, p); });
      if (p == 50.0 || p == 99.0) {
        add_ratio([&](const ImplSummary& s) { return pct_value(s.dispatch, p); });
      }
    }
    add("dispatch max", [&](const ImplSummary& s) { return format_percentile(s.dispatch, 100); });
    if (spec.config.open_loop()) {
      for (const double p : {50.0, 99.0, 99.9, 100.0}) {
        add(p == 100.0 ? std::string("response max") : "response p" + fixed(p, p < 99.5 ? 0 : 1),
            [&](const ImplSummary& s) { return format_percentile(s.response, p); });
      }
    }
    add("excess over ideal p50",
        [&](const ImplSummary& s) { return format_percentile(s.excess, 50); });
    add_ratio([&](const ImplSummary& s) { return pct_value(s.excess, 50); });
    add("excess over ideal p99",
        [&](const ImplSummary& s) { return format_percentile(s.excess, 99); });
    add_ratio([&](const ImplSummary& s) { return pct_value(s.excess, 99); });
    add("excess over ideal max",
        [&](const ImplSummary& s) { return format_percentile(s.excess, 100); });
    add("Jain index, busy time", [](const ImplSummary& s) { return fixed(s.jain_busy, 3); });
    add("Jain index, events", [](const ImplSummary& s) { return fixed(s.jain_events, 3); });
    add("events/consumer min-max", [](const ImplSummary& s) {
      return std::to_string(s.min_events) + "-" + std::to_string(s.max_events);
    });
    if (many_producers) {
      add("producer p99 spread",
          [](const ImplSummary& s) { return fixed(s.producer_p99_spread, 2); });
      add("FIFO inversions", [](const ImplSummary& s) {
        return s.events == 0 ? std::string("-")
                             : fixed(100.0 * static_cast<double>(s.fifo_inversions) /
                                         static_cast<double>(s.events),
                                     2) +
                                   "%";
      });
    }
    add("longest wait",
        [](const ImplSummary& s) { return format_ns(static_cast<double>(s.longest_wait_ns)); });
    if (batch) {
      add("makespan / Graham bound",
          [](const ImplSummary& s) { return fixed(s.makespan_ratio, 3); });
    }
    add("CPU per event", [](const ImplSummary& s) { return format_ns(s.cpu_us_per_event * 1e3); });
    add_ratio([](const ImplSummary& s) { return s.cpu_us_per_event; });
    add("  consumer threads only",
        [](const ImplSummary& s) { return format_ns(s.cpu_consumers_us_per_event * 1e3); });
  }
  add("peak RSS (growth) MiB", [](const ImplSummary& s) {
    return fixed(static_cast<double>(s.peak_rss_kb) / 1024, 1) + " (" +
           fixed(static_cast<double>(s.rss_growth_kb) / 1024, 1) + ")";
  });
  add("exactly once" + std::string(batch ? ", bound" : ""),
      [](const ImplSummary& s) { return s.ok ? std::string("ok") : std::string("FAILED"); });

  std::size_t label_w = 24;
  for (const Row& r : rows) label_w = std::max(label_w, r.label.size());
  std::vector<std::size_t> col_w(c.impls.size(), 8);
  for (std::size_t i = 0; i < c.impls.size(); ++i) {
    col_w[i] = std::max(col_w[i], c.impls[i].column.size());
    for (const Row& r : rows) col_w[i] = std::max(col_w[i], r.cells[i].size());
  }
  out << "\n== " << spec.name << ": " << spec.description << "\n";
  out << std::left << std::setw(static_cast<int>(label_w)) << "metric";
  for (std::size_t i = 0; i < c.impls.size(); ++i) {
    out << "  " << std::right << std::setw(static_cast<int>(col_w[i])) << c.impls[i].column;
  }
  out << "\n";
  for (const Row& r : rows) {
    out << std::left << std::setw(static_cast<int>(label_w)) << r.label;
    for (std::size_t i = 0; i < r.cells.size(); ++i) {
      out << "  " << std::right << std::setw(static_cast<int>(col_w[i])) << r.cells[i];
    }
    out << "\n";
  }
  out << std::left;
  if (!idle) {
    out << "(pushstage/this: pushstage's value over this column's; for latency and CPU below 1 "
           "favours pushstage, for throughput above 1)\n";
  }
  for (const ImplSummary& s : c.impls) {
    for (const std::string& f : s.failures) out << "FAILED " << s.impl << " " << f << "\n";
  }
}

}  // namespace pushstage::bench
