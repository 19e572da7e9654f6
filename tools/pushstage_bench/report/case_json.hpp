// case_json.hpp: a finished case for --json: its configuration, and per implementation the
// summary, pushstage's ratios to it, and every run (results_json.hpp).
// Threading: plain functions.
#pragma once

#include <nlohmann/json.hpp>

#include "report/summary.hpp"

namespace pushstage::bench {

[[nodiscard]] nlohmann::json case_to_json(const CaseResult& c);

}  // namespace pushstage::bench
