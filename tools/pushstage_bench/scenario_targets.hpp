// scenario_targets.hpp: the targets a finished scenario is judged against (reported, never
// enforced): one line per target, "<case>: <what> <pushstage's value> <op> <the bar>: met|MISSED",
// or a figure with "(no target)". scenarios.cpp's table names the function of each scenario.
// Threading: plain functions.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "report/summary.hpp"

namespace pushstage::bench {

// seed: pushstage's excess over ideal (p50, p99) at most the blocking and mutex peers'; Jain's
// index over busy time at least 0.98.
[[nodiscard]] std::vector<std::string> seed_targets(const std::vector<CaseResult>& results,
                                                    std::size_t cpus);
// fairness: pushstage's per-producer p99 spread at most 1.5.
[[nodiscard]] std::vector<std::string> fairness_targets(const std::vector<CaseResult>& results,
                                                        std::size_t cpus);
// oversubscribed: CPU per event at most moodycamel-blocking's; dispatch p50 at 4x cores at most
// twice that at cores.
[[nodiscard]] std::vector<std::string> oversubscribed_targets(
    const std::vector<CaseResult>& results, std::size_t cpus);
// idle: idle CPU per consumer (no target).
[[nodiscard]] std::vector<std::string> idle_targets(const std::vector<CaseResult>& results,
                                                    std::size_t cpus);
// pipeline, partition, broadcast: each shape's throughput and dispatch p50/p99 against the core
// dispatcher's (no target).
[[nodiscard]] std::vector<std::string> shape_targets(const std::vector<CaseResult>& results,
                                                     std::size_t cpus);

}  // namespace pushstage::bench
