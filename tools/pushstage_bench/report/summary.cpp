// summary.cpp: see summary.hpp.
#include "report/summary.hpp"

#include <algorithm>
#include <functional>
#include <utility>

#include "bench_core.hpp"

namespace pushstage::bench {
namespace {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 == 1 ? v[m] : (v[m - 1] + v[m]) / 2;
}

}  // namespace

ImplSummary summarise(const ImplInfo& impl, std::vector<RunResult> runs) {
  ImplSummary s;
  s.impl = std::string(impl.name);
  s.column = std::string(impl.column);
  std::vector<double> throughput;
  std::vector<double> jain_busy;
  std::vector<double> jain_events;
  std::vector<double> idle_pct;
  std::int64_t cpu = 0;
  std::int64_t cpu_consumers = 0;
  bool first = true;
  for (const RunResult& r : runs) {
    if (!r.ok) {
      s.ok = false;
      s.failures.push_back("rep " + std::to_string(r.rep + 1) + ": " + r.failure);
    }
    if (r.consumer_events.empty()) continue;  // the child died: nothing measured
    s.events += r.events;
    throughput.push_back(r.throughput);
    s.dispatch.merge(r.dispatch);
    s.response.merge(r.response);
    s.excess.merge(r.excess);
    s.excess_negative += r.excess_negative;
    std::vector<double> busy(r.consumer_busy_ns.begin(), r.consumer_busy_ns.end());
    std::vector<double> counts(r.consumer_events.begin(), r.consumer_events.end());
    jain_busy.push_back(jain_index(busy));
    jain_events.push_back(jain_index(counts));
    const auto [lo, hi] = std::minmax_element(r.consumer_events.begin(), r.consumer_events.end());
    s.min_events = first ? *lo : std::min(s.min_events, *lo);
    s.max_events = first ? *hi : std::max(s.max_events, *hi);
    std::sort(busy.begin(), busy.end(), std::greater<>());
    s.busy_by_rank_s.resize(std::max(s.busy_by_rank_s.size(), busy.size()), 0.0);
    for (std::size_t i = 0; i < busy.size(); ++i) s.busy_by_rank_s[i] += busy[i] / 1e9;
    if (s.producer_p99_ns.size() < r.dispatch_by_producer.size()) {
      s.producer_p99_ns.resize(r.dispatch_by_producer.size());
    }
    s.fifo_inversions += r.fifo_inversions;
    if (r.longest_wait_ns > s.longest_wait_ns) {
      s.longest_wait_ns = r.longest_wait_ns;
      s.longest_wait_producer = r.longest_wait_producer;
    }
    if (r.graham_bound_ns > 0) {
      s.makespan_ratio =
          std::max(s.makespan_ratio, static_cast<double>(r.makespan_ns) / r.graham_bound_ns);
    }
    cpu += r.cpu_ns;
    cpu_consumers += r.cpu_consumers_ns;
    if (r.idle_window_ns > 0) {
      idle_pct.push_back(100.0 * static_cast<double>(r.cpu_ns) /
                         static_cast<double>(r.idle_window_ns) /
                         static_cast<double>(r.consumer_events.size()));
    }
    s.peak_rss_kb = std::max(s.peak_rss_kb, r.peak_rss_kb);
    s.rss_growth_kb = std::max(s.rss_growth_kb, r.rss_growth_kb);
    first = false;
  }
  // Per-producer p99 from histograms merged over repetitions (never averaged percentiles).
  std::vector<pushstage::Histogram> by_producer(s.producer_p99_ns.size());
  for (const RunResult& r : runs) {
    for (std::size_t p = 0; p < r.dispatch_by_producer.size(); ++p) {
      by_producer[p].merge(r.dispatch_by_producer[p]);
    }
  }
  std::vector<double> p99;
  for (std::size_t p = 0; p < by_producer.size(); ++p) {
    s.producer_p99_ns[p] = by_producer[p].value_at_percentile(99);
    if (by_producer[p].count() != 0) p99.push_back(static_cast<double>(s.producer_p99_ns[p]));
  }
  s.producer_p99_spread = spread(p99);
  s.throughput = median(throughput);
  s.jain_busy = median(jain_busy);
  s.jain_events = median(jain_events);
  s.idle_cpu_pct_per_consumer = median(idle_pct);
  if (s.events != 0) {
    s.cpu_us_per_event = static_cast<double>(cpu) / 1e3 / static_cast<double>(s.events);
    s.cpu_consumers_us_per_event =
        static_cast<double>(cpu_consumers) / 1e3 / static_cast<double>(s.events);
  }
  s.runs = std::move(runs);
  return s;
}

}  // namespace pushstage::bench
