// results_json.hpp: RunResult and Histogram to and from JSON, for the pipe from a forked run and
// for --json.
// Threading: plain functions.
#pragma once

#include <nlohmann/json.hpp>

#include "pushstage/histogram.hpp"
#include "run.hpp"

namespace pushstage::bench {

// {"count", "min", "max", "sum", "buckets": [[index, count], ...]}; buckets as in Histogram.
[[nodiscard]] nlohmann::json histogram_to_json(const pushstage::Histogram& h);
[[nodiscard]] pushstage::Histogram histogram_from_json(const nlohmann::json& j);

[[nodiscard]] nlohmann::json to_json(const RunResult& r);
// Throws nlohmann::json::exception or std::invalid_argument on malformed input.
[[nodiscard]] RunResult from_json(const nlohmann::json& j);

}  // namespace pushstage::bench
