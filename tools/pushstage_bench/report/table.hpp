// table.hpp: a finished case as a terminal table: metrics down, implementations across, and
// under the rows that compare, pushstage's value over each column's ("pushstage/this").
// Threading: plain functions.
#pragma once

#include <ostream>

#include "report/summary.hpp"

namespace pushstage::bench {

void print_case(std::ostream& out, const CaseResult& c);

}  // namespace pushstage::bench
