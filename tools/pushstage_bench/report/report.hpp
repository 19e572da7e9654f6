// report.hpp: finished cases shown three ways: a terminal table per case (table.cpp: metrics down,
// implementations across, and under the rows that compare, pushstage's value over each column's,
// "pushstage/this"); a JSON object per case for --json (case_json.cpp: its configuration, and per
// implementation the summary, pushstage's ratios to it and every run); one SVG page for --svg
// (svg.cpp: a row of panels per case: the dispatch latency CDF, busy time per consumer, the
// excess-over-ideal CDF; idle cases: idle CPU per consumer).
// Threading: plain functions.
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "report/summary.hpp"

namespace pushstage::bench {

void print_case(std::ostream& out, const CaseResult& c);

[[nodiscard]] nlohmann::json case_to_json(const CaseResult& c);

[[nodiscard]] std::string render_svg(const std::vector<CaseResult>& cases,
                                     const std::string& title);

}  // namespace pushstage::bench
