// results_json.hpp: RunResult and Histogram to and from JSON, for the pipe from a forked run, for
// the --broker workers' reports, and for --json. A RunResult's keys are its field names; a
// Histogram is {"count", "min", "max", "sum", "buckets": [[index, count], ...]}, buckets as in
// Histogram.
// Threading: plain functions.
#pragma once

#include <nlohmann/json.hpp>

#include "pushstage/histogram.hpp"
#include "run.hpp"

namespace pushstage::bench {

[[nodiscard]] nlohmann::json histogram_to_json(const pushstage::Histogram& h);
[[nodiscard]] pushstage::Histogram histogram_from_json(const nlohmann::json& j);

[[nodiscard]] nlohmann::json to_json(const RunResult& r);
// Throws nlohmann::json::exception or std::invalid_argument on malformed input.
[[nodiscard]] RunResult from_json(const nlohmann::json& j);

}  // namespace pushstage::bench

// A Histogram as a field of a type that NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE converts, or in a
// std::vector: the same JSON as histogram_to_json().
NLOHMANN_JSON_NAMESPACE_BEGIN
template <>
struct adl_serializer<pushstage::Histogram> {
  static void to_json(json& j, const pushstage::Histogram& h) {
    j = pushstage::bench::histogram_to_json(h);
  }
  static void from_json(const json& j, pushstage::Histogram& h) {
    h = pushstage::bench::histogram_from_json(j);
  }
};
NLOHMANN_JSON_NAMESPACE_END
