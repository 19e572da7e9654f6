// pushstage/core/slots.hpp: the records a queue core keeps per producer and per consumer, and
// the append-only list that leases them out. What each field is for, and who writes it, is said
// at the field; the protocol that uses them is in core/queue_core.hpp.
//
// Threading: lease() and give_back() are safe from any thread. A slot lives until its list is
//            destroyed, so a waker or an interrupter may touch a slot whose lessee has left.
#pragma once

#include <atomic>
#include <cstdint>

#include "pushstage/core/cache_line.hpp"

namespace pushstage::detail {

// A producer's record: its pushed counter and its pushing flag, both written only by the slot's
// lessee and read by consumers before parking and by close().
struct alignas(kCacheLine) ProducerSlot {
  std::atomic<std::uint64_t> pushed{0};   // advanced by (P2)
  std::atomic<std::uint32_t> pushing{0};  // 1 between (P0) and (P4)
  std::atomic<bool> leased{false};
  ProducerSlot* next = nullptr;  // set before the slot is published, then immutable
};
static_assert(sizeof(ProducerSlot) == kCacheLine);

// A consumer's record: its popped counter (hot: written by the lessee on every pop) on one line,
// its parking record (read and claimed by wakers and interrupters) on the next.
struct alignas(kCacheLine) ConsumerSlot {
  std::atomic<std::uint64_t> popped{0};  // single writer: the lessee
  // The adaptive spin window (core/parking.hpp): plain fields, touched only by the lessee (the
  // lease's release/acquire hands them from one lessee to the next).
  std::int64_t spin_window_ns = -1;  // < 0: the full DispatcherOptions::spin
  std::uint32_t waits = 0;           // waits that reached the spin phase
  alignas(kCacheLine) std::atomic<std::uint64_t> wait_ticket{0};  // 0: not parked (W1, X1)
  std::atomic<std::uint32_t> futex{0};                            // 1: notified by a waker (X3)
  std::atomic<std::uint32_t> interrupt{0};                        // 1: interrupt() pending (I1)
  std::atomic<int> cpu{-1};  // where the lessee parked (W1); read by wakers for the wake order
  std::atomic<bool> leased{false};
  ConsumerSlot* next = nullptr;  // set before the slot is published, then immutable
};
static_assert(sizeof(ConsumerSlot) == 2 * kCacheLine);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free &&
                  sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t),
              "the futex words are the atomics themselves");

// Append-only list of slots (ProducerSlot or ConsumerSlot). A slot is leased to one holder at a
// time; the list grows only when every slot is leased, and frees its slots when destroyed.
template <class Slot>
class SlotList {
 public:
  SlotList() = default;
  ~SlotList();
  SlotList(const SlotList&) = delete;
  SlotList& operator=(const SlotList&) = delete;

  // A free slot, or a new one linked in (throws std::bad_alloc). The new lessee continues the
  // previous one's counters.
  Slot& lease();
  static void give_back(Slot& slot) noexcept {
    slot.leased.store(false, std::memory_order_release);  // pairs with lease()'s acquire
  }
  // The first slot, for walking the list through `next`. seq_cst where the caller's read is a
  // half of a Dekker pair (a count at W2), acquire otherwise.
  [[nodiscard]] Slot* first(std::memory_order order) const noexcept { return head_.load(order); }

 private:
  std::atomic<Slot*> head_{nullptr};
};

extern template class SlotList<ProducerSlot>;
extern template class SlotList<ConsumerSlot>;

}  // namespace pushstage::detail
