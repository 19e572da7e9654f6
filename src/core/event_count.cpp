// event_count.cpp: the sums of core/event_count.hpp.
#include "pushstage/core/event_count.hpp"

namespace pushstage::detail {

std::uint64_t EventCount::popped() const noexcept {
  // acquire: pairs with the release stores of count_popped()/count_popped_shared().
  std::uint64_t total = shared_popped_.load(std::memory_order_acquire);
  for (ConsumerSlot* s = consumers_.first(std::memory_order_acquire); s != nullptr; s = s->next) {
    total += s->popped.load(std::memory_order_acquire);
  }
  return total;
}

std::uint64_t EventCount::pushed() const noexcept {
  std::uint64_t total = 0;
  // seq_cst: these loads are the (W2)/(S2) half of the Dekker pairs with (P2).
  for (ProducerSlot* s = producers_.first(std::memory_order_seq_cst); s != nullptr; s = s->next) {
    total += s->pushed.load(std::memory_order_seq_cst);
  }
  return total;
}

std::int64_t EventCount::buffered() const noexcept {
  // Popped (and dropped) first, pushed last: the pushed count can only have grown meanwhile, so
  // the result never under-counts events counted before the read (see Accuracy). 64-bit counters
  // never wrap in practice (2^64 events).
  const std::uint64_t out = popped() + dropped();
  const std::uint64_t in = pushed();
  return static_cast<std::int64_t>(in - out);
}

}  // namespace pushstage::detail
