// pushstage/core/upstreams.hpp: fan-in for a sink that several stages emit into (Stage with
// PoolOptions::close_sink). Each stage adds itself before it starts and removes itself once it
// will emit no more (its source drained, or the stage destroyed); the last one to leave closes the
// sink. So a sink fed by several stages closes after the last of them, whatever order they finish
// in. Every sink of the library (Dispatcher and the dispatch modes) derives from FanIn.
//
// Threading: both members are safe from any thread.
// Memory:    remove_upstream() is a release-acquire RMW: the remover that reaches 0 (and closes
//            the sink) comes after every earlier remover's emits, through the release sequence.
#pragma once

#include <atomic>
#include <cstdint>

namespace pushstage::detail {

// CRTP: Sink has close() noexcept.
template <class Sink>
class FanIn {
 public:
  // relaxed: a stage adds itself before it starts its threads (ordered by the thread start), and
  // only removers act on the count.
  void add_upstream() noexcept { count_.fetch_add(1, std::memory_order_relaxed); }
  void remove_upstream() noexcept {
    if (count_.fetch_sub(1, std::memory_order_acq_rel) == 1) static_cast<Sink*>(this)->close();
  }

 protected:
  FanIn() = default;
  ~FanIn() = default;

 private:
  std::atomic<std::uint32_t> count_{0};
};

}  // namespace pushstage::detail
