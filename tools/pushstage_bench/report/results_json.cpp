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

nlohmann::json to_json(const RunResult& r) {
  nlohmann::json by_producer = nlohmann::json::array();
  for (const auto& h : r.dispatch_by_producer) by_producer.push_back(histogram_to_json(h));
  return {{"impl", r.impl},
          {"rep", r.rep},
          {"ok", r.ok},
          {"failure", r.failure},
          {"events", r.events},
          {"handled", r.handled},
          {"missing", r.missing},
          {"duplicated", r.duplicated},
          {"span_ns", r.span_ns},
          {"throughput", r.throughput},
          {"dispatch", histogram_to_json(r.dispatch)},
          {"response", histogram_to_json(r.response)},
          {"excess", histogram_to_json(r.excess)},
          {"excess_negative", r.excess_negative},
          {"dispatch_by_producer", std::move(by_producer)},
          {"consumer_events", r.consumer_events},
          {"consumer_busy_ns", r.consumer_busy_ns},
          {"fifo_inversions", r.fifo_inversions},
          {"longest_wait_ns", r.longest_wait_ns},
          {"longest_wait_producer", r.longest_wait_producer},
          {"makespan_ns", r.makespan_ns},
          {"graham_bound_ns", r.graham_bound_ns},
          {"cpu_ns", r.cpu_ns},
          {"cpu_consumers_ns", r.cpu_consumers_ns},
          {"peak_rss_kb", r.peak_rss_kb},
          {"rss_growth_kb", r.rss_growth_kb},
          {"idle_window_ns", r.idle_window_ns}};
}

RunResult from_json(const nlohmann::json& j) {
  RunResult r;
  j.at("impl").get_to(r.impl);
  j.at("rep").get_to(r.rep);
  j.at("ok").get_to(r.ok);
  j.at("failure").get_to(r.failure);
  j.at("events").get_to(r.events);
  j.at("handled").get_to(r.handled);
  j.at("missing").get_to(r.missing);
  j.at("duplicated").get_to(r.duplicated);
  j.at("span_ns").get_to(r.span_ns);
  j.at("throughput").get_to(r.throughput);
  r.dispatch = histogram_from_json(j.at("dispatch"));
  r.response = histogram_from_json(j.at("response"));
  r.excess = histogram_from_json(j.at("excess"));
  j.at("excess_negative").get_to(r.excess_negative);
  for (const auto& h : j.at("dispatch_by_producer")) {
    r.dispatch_by_producer.push_back(histogram_from_json(h));
  }
  j.at("consumer_events").get_to(r.consumer_events);
  j.at("consumer_busy_ns").get_to(r.consumer_busy_ns);
  j.at("fifo_inversions").get_to(r.fifo_inversions);
  j.at("longest_wait_ns").get_to(r.longest_wait_ns);
  j.at("longest_wait_producer").get_to(r.longest_wait_producer);
  j.at("makespan_ns").get_to(r.makespan_ns);
  j.at("graham_bound_ns").get_to(r.graham_bound_ns);
  j.at("cpu_ns").get_to(r.cpu_ns);
  j.at("cpu_consumers_ns").get_to(r.cpu_consumers_ns);
  j.at("peak_rss_kb").get_to(r.peak_rss_kb);
  j.at("rss_growth_kb").get_to(r.rss_growth_kb);
  j.at("idle_window_ns").get_to(r.idle_window_ns);
  return r;
}

}  // namespace pushstage::bench
