// batcher.cpp: the non-template part of Batcher: options validation.
#include "pushstage/stages/batcher.hpp"

#include <stdexcept>
#include <string>

#include "pushstage/pool/pool_core.hpp"

namespace pushstage::detail {

void check_batcher_options(const BatcherOptions& options, bool has_handler, bool has_weight,
                           std::string_view prefix) {
  const std::string p(prefix);
  constexpr std::size_t kMaxBatch = 65536;
  if (options.batch_size < 1 || options.batch_size > kMaxBatch) {
    throw std::invalid_argument(p + "batch_size must be in [1, " + std::to_string(kMaxBatch) +
                                "]; got " + std::to_string(options.batch_size));
  }
  constexpr std::uint64_t kMaxWeight = std::uint64_t{1} << 62;
  if (has_weight && (options.batch_weight < 1 || options.batch_weight > kMaxWeight)) {
    throw std::invalid_argument(p +
                                "batch_weight must be in [1, 2^62] with a weight function; got " +
                                std::to_string(options.batch_weight));
  }
  if (!has_weight && options.batch_weight != 0) {
    throw std::invalid_argument(p + "batch_weight must be 0 without a weight function; got " +
                                std::to_string(options.batch_weight));
  }
  if (options.batch_timeout < std::chrono::microseconds(1) ||
      options.batch_timeout > std::chrono::hours(24)) {
    throw std::invalid_argument(
        p + "batch_timeout must be in [1 us, 24 h] = [1000, 86400000000000] ns; got " +
        std::to_string(options.batch_timeout.count()) + " ns");
  }
  if (options.flush != BatchFlush::OnTimeout && options.flush != BatchFlush::OnClose) {
    throw std::invalid_argument(p + "flush must be BatchFlush::OnTimeout or OnClose; got " +
                                std::to_string(static_cast<int>(options.flush)));
  }
  // Before the pool is built from them (and before the capacity of the processors' buffer is
  // derived from consumers): the user set them as BatcherOptions::processors.
  (void)plan_pool(options.processors, p + "processors.");
  if (!has_handler) throw std::invalid_argument("Batcher: handler must not be empty");
}

}  // namespace pushstage::detail
