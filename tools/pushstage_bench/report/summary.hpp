// summary.hpp: the cases as they were run, and every repetition of one implementation in one case
// summarised: the table, the JSON and the SVG (report.hpp) show these.
// Threading: plain functions and value types.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "pushstage/histogram.hpp"
#include "run.hpp"

namespace pushstage::bench {

// One case of a scenario as it was run.
struct CaseSpec {
  std::string name;
  std::string description;  // one line: consumers, producers, work, arrivals, events, reps
  RunConfig config;
  std::size_t reps = 1;
  std::vector<Impl> impls;
};

// Every repetition of one implementation in one case. Distributions are merged histograms;
// scalars that exist per repetition are given as their median over repetitions.
struct ImplSummary {
  std::string impl;
  std::string column;
  std::vector<RunResult> runs;
  bool ok = true;
  std::vector<std::string> failures;

  std::uint64_t events = 0;  // over all repetitions
  double throughput = 0;     // median
  pushstage::Histogram dispatch;
  pushstage::Histogram response;
  pushstage::Histogram excess;
  std::uint64_t excess_negative = 0;
  double jain_busy = 1;          // median
  double jain_events = 1;        // median
  std::uint64_t min_events = 0;  // fewest events one consumer handled in one repetition
  std::uint64_t max_events = 0;
  std::vector<double> busy_by_rank_s;  // per consumer, busiest first, summed over repetitions
  double producer_p99_spread = 1;      // from merged per-producer histograms
  std::vector<std::uint64_t> producer_p99_ns;
  std::uint64_t fifo_inversions = 0;
  std::int64_t longest_wait_ns = 0;
  std::uint32_t longest_wait_producer = 0;
  double makespan_ratio = 0;  // worst repetition; batch only
  double cpu_us_per_event = 0;
  double cpu_consumers_us_per_event = 0;
  double idle_cpu_pct_per_consumer = 0;  // median; idle only
  std::int64_t peak_rss_kb = 0;
  std::int64_t rss_growth_kb = 0;
};

struct CaseResult {
  CaseSpec spec;
  std::vector<ImplSummary> impls;  // in spec.impls order
};

[[nodiscard]] ImplSummary summarise(const ImplInfo& impl, std::vector<RunResult> runs);

}  // namespace pushstage::bench
