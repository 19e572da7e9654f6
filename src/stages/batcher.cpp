// batcher.cpp: the non-template part of Batcher: options validation.
#include "pushstage/stages/batcher.hpp"

#include <stdexcept>
#include <string>

#include "pushstage/pool/pool_core.hpp"

namespace pushstage::detail {

void check_batcher_options(const BatcherOptions& options, bool has_handler) {
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
  // Before the pool is built from them (and before the capacity of the processors' buffer is
  // derived from consumers): the user set them as BatcherOptions::processors.
  (void)plan_pool(options.processors, "BatcherOptions::processors.");
  if (!has_handler) throw std::invalid_argument("Batcher: handler must not be empty");
}

}  // namespace pushstage::detail
