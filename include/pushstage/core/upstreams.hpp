// pushstage/core/upstreams.hpp: fan-in bookkeeping for a sink that several stages emit into.
// Each stage adds itself before it starts and removes itself once it will emit no more; the sink
// closes when the last one leaves (Stage with PoolOptions::close_sink).
//
// Threading: both members are safe from any thread.
// Memory:    remove() is a release-acquire RMW: the remover that reaches 0 (and closes the sink)
//            comes after every earlier remover's emits, through the release sequence.
#pragma once

#include <atomic>
#include <cstdint>

namespace pushstage::detail {

class Upstreams {
 public:
  // relaxed: a stage adds itself before it starts its threads (ordered by the thread start), and
  // only removers act on the count.
  void add() noexcept { count_.fetch_add(1, std::memory_order_relaxed); }
  // True for the remover that leaves no upstream: it closes the sink.
  [[nodiscard]] bool remove() noexcept {
    return count_.fetch_sub(1, std::memory_order_acq_rel) == 1;
  }

 private:
  std::atomic<std::uint32_t> count_{0};
};

}  // namespace pushstage::detail
