// queue_core.cpp: options validation, close and statistics of core/queue_core.hpp.
#include "pushstage/core/queue_core.hpp"

#include <sched.h>

#include <cstddef>
#include <stdexcept>
#include <string>

#include "pushstage/cpus.hpp"

namespace pushstage::detail {
namespace {

[[noreturn]] void reject(const std::string& what) { throw std::invalid_argument(what); }

// Throws std::invalid_argument naming the first field out of range; returns max_spinners resolved
// (kAutoSpinners: one less than the CPUs this process may use, at least 1).
std::uint32_t checked_spinners(const DispatcherOptions& options) {
  constexpr std::size_t kCapacityMax = Room::kMaxCapacity;
  if (options.spin.count() < 0) {
    reject("DispatcherOptions::spin must be >= 0 ns; got " + std::to_string(options.spin.count()) +
           " ns");
  }
  if (options.capacity > kCapacityMax) {
    reject("DispatcherOptions::capacity must be in [0, " + std::to_string(kCapacityMax) +
           "] (0 = unbounded); got " + std::to_string(options.capacity));
  }
  if (options.overflow != Overflow::Block && options.overflow != Overflow::Reject &&
      options.overflow != Overflow::DropOldest) {
    reject("DispatcherOptions::overflow must be Block, Reject or DropOldest");
  }
  if (options.overflow != Overflow::Block && options.capacity == 0) {
    reject(
        "DispatcherOptions::overflow Reject and DropOldest need a bounded dispatcher: capacity "
        "in [1, " +
        std::to_string(kCapacityMax) + "]; got capacity 0 (unbounded)");
  }
  if (options.wake_order != WakeOrder::Fifo && options.wake_order != WakeOrder::Lifo) {
    reject("DispatcherOptions::wake_order must be Fifo or Lifo");
  }
  const auto cpus = static_cast<unsigned>(allowed_cpus().size());
  if (options.max_spinners == DispatcherOptions::kAutoSpinners) return cpus > 1 ? cpus - 1 : 1;
  if (options.max_spinners > cpus) {
    reject("DispatcherOptions::max_spinners must be in [0, " + std::to_string(cpus) +
           "] (the CPUs this process may use); got " + std::to_string(options.max_spinners));
  }
  return options.max_spinners;
}

}  // namespace

QueueCore::QueueCore(const DispatcherOptions& options)
    : gate_(options.fast_push),
      room_(static_cast<std::uint32_t>((checked_spinners(options), options.capacity)),
            options.overflow),
      parking_(options.spin, checked_spinners(options), options.wake_order, options.wake_nearby,
               counts_, gate_) {
  // The cache topology is read on first use: here, where a failure may throw, not in a wake.
  if (options.wake_nearby) (void)cache_domain(0);
}

bool QueueCore::close() noexcept {
  if (!gate_.begin_close()) return false;  // K1; the first close() does all
  if (room_.bounded()) room_.close();  // blocked producers hold their pushing flag: release them
  gate_.finish_close(counts_.producers());  // K2, K3, K4
  parking_.wake_all_after_close();          // K5, and the notice
  return true;
}

void QueueCore::yield_to_others() noexcept { sched_yield(); }

DispatcherStats QueueCore::stats() const noexcept {
  DispatcherStats st;
  st.popped = counts_.popped();
  st.dropped = counts_.dropped();
  st.rejected = rejected_.load(std::memory_order_relaxed);
  st.refused_closed = refused_closed_.load(std::memory_order_relaxed);
  st.pushed = counts_.pushed();  // read last: never fewer than popped + dropped
  const std::uint64_t out = st.popped + st.dropped;
  st.buffered = st.pushed > out ? st.pushed - out : 0;
  st.parked = parking_.parked();
  st.spinning = parking_.spinning();
  return st;
}

}  // namespace pushstage::detail
