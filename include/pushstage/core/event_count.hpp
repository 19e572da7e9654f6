// pushstage/core/event_count.hpp: the exact number of events buffered in a queue, pushed minus
// popped, kept without a counter that producers and consumers share: each producer slot counts
// its own pushes (P2), each consumer slot its own pops, plus one counter for tokenless pops and
// one for dropped events. It is the predicate a consumer re-checks before it parks (W2, S2 in
// core/queue_core.hpp), because moodycamel's failed try_dequeue proves nothing.
//
// Threading: every member is safe from any thread; a slot's counter is written by its lessee.
// Accuracy: buffered() sums the popped counters first and the pushed counters last, so it never
//           reads fewer events than are buffered, except events whose producer is between its
//           enqueue and its (P2); that producer then runs (P3) and wakes a consumer for them.
//           It may read more (events being popped meanwhile). Exact once producers and consumers
//           have stopped.
#pragma once

#include <atomic>
#include <cstdint>

#include "pushstage/core/cache_line.hpp"
#include "pushstage/core/slots.hpp"

namespace pushstage::detail {

class EventCount {
 public:
  [[nodiscard]] ProducerSlot& lease_producer() { return producers_.lease(); }
  [[nodiscard]] ConsumerSlot& lease_consumer() { return consumers_.lease(); }
  static void give_back(ProducerSlot& slot) noexcept { SlotList<ProducerSlot>::give_back(slot); }
  static void give_back(ConsumerSlot& slot) noexcept { SlotList<ConsumerSlot>::give_back(slot); }

  // (P2): n events enqueued on `slot`. A seq_cst RMW: its release half publishes the events to
  // the consumer whose (W2) reads the count; its StoreLoad half orders the enqueue before (P3).
  static void count_pushed(ProducerSlot& slot, std::uint64_t n) noexcept {
    slot.pushed.fetch_add(n, std::memory_order_seq_cst);  // P2 pairs with W2, S2
  }
  // (P2) without a read-modify-write, for processes with the asymmetric fence pair: a release
  // store by the slot's one writer (its lessee). The StoreLoad order before (P3) comes from the
  // pair: the producer's light fence after it, the consumer's heavy fence before its second
  // (W2)/(S2) read (core/queue_core.hpp).
  static void publish_pushed(ProducerSlot& slot, std::uint64_t n) noexcept {
    // relaxed load: our own last store. release: pairs with W2's acquire reads of the count.
    slot.pushed.store(slot.pushed.load(std::memory_order_relaxed) + n, std::memory_order_release);
  }
  // The lessee of `slot` popped n events. A plain store: one writer per slot.
  static void count_popped(ConsumerSlot& slot, std::uint64_t n) noexcept {
    // release: a reader that sees the count also sees the dequeue (W2 reads it with acquire).
    slot.popped.store(slot.popped.load(std::memory_order_relaxed) + n, std::memory_order_release);
  }
  // A consumer without a slot (tokenless try_pop) popped n events.
  void count_popped_shared(std::uint64_t n) noexcept {
    shared_popped_.fetch_add(n, std::memory_order_release);  // read at W2 like a slot's popped
  }
  // A producer dropped n buffered events (Overflow::DropOldest): they count as popped.
  void count_dropped(std::uint64_t n) noexcept {
    dropped_.fetch_add(n, std::memory_order_release);  // read at W2 like a slot's popped
  }

  // pushed - popped - dropped (see Accuracy). The (W2)/(S2) read.
  [[nodiscard]] std::int64_t buffered() const noexcept;
  // Statistics (popped excludes dropped).
  [[nodiscard]] std::uint64_t pushed() const noexcept;
  [[nodiscard]] std::uint64_t popped() const noexcept;
  [[nodiscard]] std::uint64_t dropped() const noexcept {
    return dropped_.load(std::memory_order_acquire);
  }

  [[nodiscard]] const SlotList<ProducerSlot>& producers() const noexcept { return producers_; }
  [[nodiscard]] const SlotList<ConsumerSlot>& consumers() const noexcept { return consumers_; }

 private:
  // Read-mostly: walked by tokenless pushes (a lease), (W2) and wakers; linked to rarely.
  alignas(kCacheLine) SlotList<ProducerSlot> producers_;
  SlotList<ConsumerSlot> consumers_;
  // Written by every tokenless pop: a line of its own.
  alignas(kCacheLine) std::atomic<std::uint64_t> shared_popped_{0};
  // Written by DropOldest pushes only.
  alignas(kCacheLine) std::atomic<std::uint64_t> dropped_{0};
};

}  // namespace pushstage::detail
