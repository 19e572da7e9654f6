// svg.hpp: the finished cases as one SVG page (--svg), a row of panels per case: the dispatch
// latency CDF, busy time per consumer, the excess-over-ideal CDF (idle cases: idle CPU per
// consumer).
// Threading: plain functions.
#pragma once

#include <string>
#include <vector>

#include "report/summary.hpp"

namespace pushstage::bench {

[[nodiscard]] std::string render_svg(const std::vector<CaseResult>& cases,
                                     const std::string& title);

}  // namespace pushstage::bench
