// results_json.cpp: see results_json.hpp.
#include "report/results_json.hpp"

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace pushstage::bench {

nlohmann::json histogram_to_json(const pushstage::Histogram& h) {
  nlohmann::json buckets = nlohmann::json::array();
  for (const auto& [index, count] : h.nonzero_buckets()) buckets.push_back({index, count});
  return {{"count", h.count()},
          {"min", h.min()},
          {"max", h.max()},
          {"sum", h.mean() * static_cast<double>(h.count())},
          {"buckets", std::move(buckets)}};
}

pushstage::Histogram histogram_from_json(const nlohmann::json& j) {
  std::vector<std::pair<std::size_t, std::uint64_t>> buckets;
  for (const auto& b : j.at("buckets")) {
    buckets.emplace_back(b.at(0).get<std::size_t>(), b.at(1).get<std::uint64_t>());
  }
  return pushstage::Histogram::from_buckets(buckets, j.at("min").get<std::uint64_t>(),
                                            j.at("max").get<std::uint64_t>(),
                                            j.at("sum").get<double>());
}

// The keys are the field names, each field once.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(RunResult, impl, rep, ok, failure, events, handled, missing,
                                   duplicated, span_ns, throughput, dispatch, response, excess,
                                   excess_negative, dispatch_by_producer, consumer_events,
                                   consumer_busy_ns, fifo_inversions, longest_wait_ns,
                                   longest_wait_producer, makespan_ns, graham_bound_ns, cpu_ns,
                                   cpu_consumers_ns, peak_rss_kb, rss_growth_kb, idle_window_ns)

nlohmann::json to_json(const RunResult& r) { return r; }

RunResult from_json(const nlohmann::json& j) { return j.get<RunResult>(); }

}  // namespace pushstage::bench
