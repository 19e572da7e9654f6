// demand_source.cpp: the non-template part of DemandSource: its argument checks.
#include "pushstage/modes/demand_source.hpp"

#include <stdexcept>

namespace pushstage::detail {

void throw_empty_demand_generator() {
  throw std::invalid_argument("DemandSource: generate must not be empty");
}

const DispatcherOptions& checked_demand_options(const DispatcherOptions& options) {
  if (options.overflow != Overflow::Block) {
    throw std::invalid_argument(
        "DemandSource: options.overflow must be Block (an event made for a waiting consumer must "
        "reach it)");
  }
  return options;
}

}  // namespace pushstage::detail
