// batcher.cpp: the non-template part of Batcher: options validation.
#include "pushstage/batcher.hpp"

#include <stdexcept>
#include <string>

namespace pushstage::detail {

void check_batcher_options(const BatcherOptions& options) {
  constexpr std::size_t kMaxBatch = 65536;
  if (options.batch_size < 1 || options.batch_size > kMaxBatch) {
    throw std::invalid_argument("BatcherOptions::batch_size must be in [1, " +
                                std::to_string(kMaxBatch) + "]; got " +
                                std::to_string(options.batch_size));
  }
  if (options.batch_timeout < std::chrono::microseconds(1) ||
      options.batch_timeout > std::chrono::hours(24)) {
    throw std::invalid_argument(
        "BatcherOptions::batch_timeout must be in [1 us, 24 h] = [1000, 86400000000000] ns; got " +
        std::to_string(options.batch_timeout.count()) + " ns");
  }
}

}  // namespace pushstage::detail
