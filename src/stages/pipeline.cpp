// pipeline.cpp: the non-template part of Pipeline: options validation.
#include <stdexcept>
#include <string>

#include "pushstage/pool/pool_core.hpp"
#include "pushstage/stages/pipeline_options.hpp"

namespace pushstage::detail {

void check_pipeline_options(const PipelineShape& shape) {
  (void)plan_pool(*shape.processors, "PipelineOptions::processors.");
  if (!shape.has_handle_message) {
    throw std::invalid_argument("PipelineOptions::handle_message must not be empty");
  }
  if (!shape.batchers.empty() && !shape.has_handle_batch) {
    throw std::invalid_argument("PipelineOptions::handle_batch must not be empty when there are " +
                                std::to_string(shape.batchers.size()) + " batchers");
  }
  for (std::size_t i = 0; i < shape.batchers.size(); ++i) {
    const PipelineShape::BatcherShape& b = shape.batchers[i];
    const std::string field = "PipelineOptions::batchers[" + std::to_string(i) + "]";
    if (b.name.empty()) throw std::invalid_argument(field + ".name must not be empty");
    for (std::size_t j = 0; j < i; ++j) {
      if (shape.batchers[j].name == b.name) {
        throw std::invalid_argument(field + ".name must be unique; '" + std::string(b.name) +
                                    "' is also batchers[" + std::to_string(j) + "].name");
      }
    }
    check_batcher_options(*b.options, true, b.has_weight, field + ".options.");
    // A batcher's input that dropped or refused a message would lose it unacknowledged.
    if (b.options->input.overflow != Overflow::Block) {
      throw std::invalid_argument(field +
                                  ".options.input.overflow must be Overflow::Block (a pipeline "
                                  "acknowledges every message; a batcher must not drop one)");
    }
  }
  if (shape.shutdown < std::chrono::nanoseconds(0) || shape.shutdown > std::chrono::hours(24)) {
    throw std::invalid_argument(
        "PipelineOptions::shutdown must be in [0, 24 h] = [0, 86400000000000] ns; got " +
        std::to_string(shape.shutdown.count()) + " ns");
  }
}

std::string input_option_error(std::string_view what) {
  std::string s(what);
  const std::string from = "DispatcherOptions::";
  if (s.rfind(from, 0) == 0) return "PipelineOptions::input." + s.substr(from.size());
  return "PipelineOptions::input: " + s;
}

}  // namespace pushstage::detail
