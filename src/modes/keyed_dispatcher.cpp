// keyed_dispatcher.cpp: the non-template parts of KeyedDispatcher: options validation, the ready
// ring's allocation and the statistics.
#include "pushstage/modes/keyed_dispatcher.hpp"

#include <bit>
#include <stdexcept>
#include <string>

namespace pushstage {

namespace detail {

void check_keyed_options(std::size_t slots, bool has_hash, const DispatcherOptions& options) {
  constexpr std::size_t kMaxSlots = kMaxKeyedSlots;
  constexpr std::size_t kMaxCapacity = 0x7FFF'FFFF;
  if (slots < 1 || slots > kMaxSlots) {
    throw std::invalid_argument("KeyedDispatcher: slots must be in [1, " +
                                std::to_string(kMaxSlots) + "]; got " + std::to_string(slots));
  }
  if (!has_hash) throw std::invalid_argument("KeyedDispatcher: hash must not be empty");
  if (options.capacity > kMaxCapacity) {
    throw std::invalid_argument("KeyedDispatcher: options.capacity must be in [0, " +
                                std::to_string(kMaxCapacity) + "] (0 = unbounded); got " +
                                std::to_string(options.capacity));
  }
  if (options.overflow != Overflow::Block && options.overflow != Overflow::Reject) {
    throw std::invalid_argument(
        "KeyedDispatcher: options.overflow must be Block or Reject (dropping the oldest event "
        "would break a key's order)");
  }
  if (options.overflow == Overflow::Reject && options.capacity == 0) {
    throw std::invalid_argument(
        "KeyedDispatcher: options.overflow Reject needs a capacity in [1, " +
        std::to_string(kMaxCapacity) + "]; got capacity 0 (unbounded)");
  }
}

// At least 2 cells: a full cell's turn (t + 1) must differ from the turn of a cell freed for the
// append one lap later (t + capacity).
ReadyRing::ReadyRing(std::size_t slots)
    : mask_(std::bit_ceil(slots < 2 ? std::size_t{2} : slots) - 1),
      cells_(std::make_unique<std::atomic<std::uint64_t>[]>(mask_ + 1)) {
  // Cell i is free for the append at position i (turn i). Before any other thread can see them.
  for (std::uint64_t i = 0; i <= mask_; ++i) {
    cells_[i].store(i << kTurnShift, std::memory_order_relaxed);
  }
}

}  // namespace detail

std::size_t KeyedStats::hottest() const noexcept {
  std::size_t best = 0;
  for (std::size_t i = 1; i < slot_pushed.size(); ++i) {
    if (slot_pushed[i] > slot_pushed[best]) best = i;
  }
  return best;
}

}  // namespace pushstage
