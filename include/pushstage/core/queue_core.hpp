// pushstage/core/queue_core.hpp: the part of a queue that does not depend on the event type,
// composed of the core's four parts: EventCount (exact pushed and popped counts), CloseGate
// (refusing pushes, waiting for those in progress), Room (bounded capacity) and Parking (waiting
// and waking consumers). Dispatcher<T> owns one and calls it around every enqueue and dequeue of
// its moodycamel queue; KeyedDispatcher's ready set is another. The protocol below is the one
// place where the parts' ordered operations are described, numbered and paired.
//
// Threading: every member is safe from any thread, except where a member names its caller.
// Platform:  Linux (futex, membarrier).
//
// Protocol. The buffer is moodycamel's ConcurrentQueue. Its try_dequeue() may fail while an event
// is buffered (another consumer's attempt is being rolled back), so a failed try_dequeue is never
// the predicate a consumer re-checks before it parks. The exact predicate is a pair of counts:
//   pushed: one counter per producer slot, advanced by its owner after each enqueue (P2);
//   popped: one counter per consumer slot, advanced by its owner after each dequeue, plus a
//           shared counter for tokenless pops and one for dropped events.
// buffered = pushed - popped. A reader sums the popped counters first and the pushed counters
// last, so it never sees fewer events than are buffered, except events whose producer is between
// its enqueue and (P2); that producer performs (P3) afterwards and wakes a consumer for them.
// A Producer handle leases one producer slot for its lifetime; a thread's tokenless pushes use
// the one its cache keeps for the queue (core/thread_cache.hpp), or lease one for the call when
// that one is in a push already (a push from an on_drop callback) or the cache has gone.
// Parking's demand_ = | parked consumers: 32 bits | spinning consumers: 32 bits |.
//
// Producer, for n events (Dispatcher::push*), on its own slot:
//   (P0) pushing = 1, then a light fence, then read closed_: if set, pushing = 0 and fail.
//        Pairs with close's (K1)/(K2) (an asymmetric Dekker pair, see below).
//        enqueue into the moodycamel queue.
//   (P2) pushed += n, seq_cst RMW. Release: a consumer whose read of the count (W2) sees it also
//        sees the event. It is also the StoreLoad barrier that orders the enqueue before (P3).
//        With fast_push (DispatcherOptions) it is a release store by the slot's one writer and a
//        light fence after (P4) orders it before (P3): the asymmetric pair, whose heavy side is
//        (W2') and (S2') below.
//   (P4) pushing = 0, release: pairs with close's acquire read (K3).
//   (P3) d = demand_, seq_cst. If d has parked consumers and no spinning one: wake min(n, parked).
//        (P2)->(P3) and (W1)->(W2) are Dekker's pair: all four are seq_cst, so either (P3) sees the
//        consumer's registration or (W2) sees the new count. A spinning consumer makes the
//        producer skip the wake; the spinner inherits the duty at (S1).
// Consumer with nothing to pop (wait()):
//   pre-spin: poll the queue briefly, unregistered (the common short gap in a busy stream costs
//        no shared write).
//   spin: register as a spinner (CAS on demand_, at most max_spinners) and poll until the
//        consumer's spin window ends (adaptive: Parking::spin_window()); where gaps are longer
//        than the spin, the window shrinks and the consumer parks sooner.
//   (W1) demand_ += parked 1 (and -= spinning 1 if it was spinning), seq_cst; then publish a
//        park ticket in its slot (seq_cst), so wakers can claim only counted consumers.
//   (W2) read final_ (seq_cst), then buffered = popped (acquire) ... pushed (seq_cst).
//        buffered > 0:           cancel the registration and try again (maybe an event).
//        final_ and none left:   drained; cancel the registration and return nothing.
//        otherwise:              sleep on the slot's own futex word until a waker sets it.
//   (W2') fast_push only, when W2 saw nothing and not final_: heavy fence (membarrier), then read
//        final_ and buffered again and decide on these. Either a producer's (P3) came after the
//        fence and sees our (W1), or its (P2) store was made visible by it and is counted now.
//   (S1) a spinning (or woken) consumer that found an event or gives up: demand_ -= spinning 1,
//        seq_cst. If it was the last spinner and consumers are parked, (S2) re-read buffered
//        (seq_cst) and wake that many. Pairs with (P3): a producer that skipped its wake because
//        it saw a spinner has its (P2) before (S1), so (S2) sees its events. (S2') fast_push only,
//        when S2 read none: heavy fence, then read buffered again (as W2').
// Waker (wake()): pick the parked slot nearest the waker (with wake_nearby: parked on the
//   waker's CPU, then on one sharing its cache, as the slot's cpu recorded before W1 says; a
//   consumer passing on an event at S2 prefers another CPU), among equals the one with the oldest
//   (Fifo) or newest (Lifo) ticket; nearness is a policy, correctness never depends on it.
//   (X1) claim it: CAS its ticket to 0, acq_rel (a cancelling consumer races on the same CAS);
//   (X2) demand_: parked -1, spinning +1 (the woken consumer counts as a spinner until it finds an
//        event or parks again, so producers do not wake a second consumer for the same event);
//   (X3) slot futex word = 1, release, then FUTEX_WAKE on it. The consumer's acquire load of the
//        word pairs with (X3).
// Interrupt (interrupt(), from any thread): ends the slot lessee's current or next interruptible
//   wait (Consumer::take, wait_ready) once, with kInterrupted; pools use it to retire a consumer
//   parked in its source without polling. pop() and pop_for() are not interruptible.
//   (I1) slot.interrupt = 1, seq_cst; (I2) read the slot's ticket, seq_cst; if it is parked,
//        claim and wake it as a waker does (X1)-(X3).
//   (W3) a consumer about to park reads slot.interrupt (seq_cst) after publishing its ticket.
//        (I1)->(I2) and ticket->(W3) are Dekker's pair: either the interrupter sees the ticket
//        and wakes the consumer, or the consumer sees the flag and cancels its registration.
//        Spinning and woken consumers poll the flag. A consumer counted as a spinner (woken, or
//        cancelled with events maybe buffered) leaves through (S1)/(S2), so an event it was woken
//        for is passed on. The lessee clears the flag when it returns kInterrupted.
// Notice (notify(), wait_until()): a Signal (core/signal.hpp) for threads that wait for a
//   condition of their own that involves this dispatcher's end (a pool's manual demand): close()
//   and every consumer that finds the dispatcher drained notify it, so such waiters notice the
//   end without polling; others notify it when their own condition changes.
// Close (close(), rare, may wait for pushes in progress):
//   (K1) closed_ = true, seq_cst; bounded: room_'s closed bit, wake blocked producers.
//   (K2) heavy fence. With the light fence of (P0) this is Dekker's pair without a barrier on the
//        push path: membarrier(PRIVATE_EXPEDITED) makes every running thread of the process
//        execute a full barrier, so either a producer's (P0) store is visible to (K3) or its
//        read of closed_ comes after the barrier and sees (K1). (Without membarrier both fences
//        are seq_cst thread fences. The choice is made once, at registration; a membarrier call
//        that fails later is retried, never replaced by a one-sided fence: asymmetric_fence.hpp.)
//   (K3) wait until every producer slot reads pushing == 0 (acquire): every push that got past
//        (P0) has completed (P2).
//   (K4) final_ = true, seq_cst: counts are final from here on.
//   (K5) read demand_ (seq_cst) and wake every parked consumer. Pairs with (W1)/(W2): a consumer
//        that registers after (K4) sees final_ at (W2).
// Close across the library: every dispatch mode closes through (K1)-(K5), one gate with one set
//   of tags: a Dispatcher directly; a PartitionDispatcher partition by partition; a
//   BroadcastDispatcher subscriber by subscriber after (BC4), its pushes being Transactions whose
//   (P0) in every subscriber comes before any commit, so they stay all or nothing; a
//   KeyedDispatcher on its ready set, once its counting gate reads "closed, nothing unreleased"
//   (KY5/KY6), because until then a consumer holding a slot may hand it back to the ready set. So
//   close means the same everywhere: a push that starts after it is refused with Closed (counted
//   in refused_closed, given to on_drop), producers waiting for room are released, consumers see
//   Drained once everything accepted has been taken, nothing accepted is lost, and close() never
//   waits for a consumer.
// Bounded buffer: room_ = | closed: 1 bit | free room: 31 bits |, a futex word.
//   producer reserves room by CAS (never more than capacity buffered, exactly), then pushes;
//   consumer: (R1) room_ += n, seq_cst; (R2) read blocked_ (seq_cst), FUTEX_WAKE room_ if > 0.
//   blocked producer: (B1) blocked_ += 1, seq_cst; (B2) re-read room_ (seq_cst), FUTEX_WAIT on
//   room_ while it reads 0 (the kernel re-checks the value). (R1)/(R2) and (B1)/(B2) are Dekker's
//   pair. close() sets room_'s closed bit, so a FUTEX_WAIT for 0 cannot sleep through it.
// Invariants: an event counted by (P2) is popped by a consumer that saw it at (W2), or its
//   producer's (P3) saw a registered consumer and woke one (or a spinner that re-checks at (S2)).
//   No consumer stays parked once the dispatcher is closed and drained.
// Progress: push, try_push and try_pop are lock-free; waking is lock-free (CAS on slot tickets)
//   but costs a system call. A consumer parks only when the exact count says nothing is buffered.
//   close() waits for pushes that are in progress (not for consumers).
// Model: tools/model/wake.pml (Promela; checked by tools/model/check, a ctest labelled `model`)
//   models (P0)-(P4), (W1)-(W3), (S1)-(S2), (X1)-(X3), (I1)-(I2) and close with moodycamel's
//   spurious dequeue failures, and checks exactly-once delivery, no consumer parked forever (an
//   interrupted one included), nothing lost at close. Variants with the re-check removed, (P3)
//   before (P2), the ticket before (W1), close without (K3), or a park without (W3) each fail.
//   The model's interleavings are sequentially consistent, as the asymmetric pairs order (two
//   seq_cst fences' worth). With fast_push (-DFAST_PUSH) each producer's (P0), (P2) and (P4)
//   stores go through a store buffer of its own that its loads bypass, and a heavy fence drains
//   every buffer: it passes, and fails without (W2') (a lost wakeup) or without (S2') (a spinner
//   retired right after (S1) strands an event while another consumer is parked).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <utility>

#include "pushstage/core/cache_line.hpp"
#include "pushstage/core/close_gate.hpp"
#include "pushstage/core/event_count.hpp"
#include "pushstage/core/parking.hpp"
#include "pushstage/core/room.hpp"
#include "pushstage/core/slots.hpp"
#include "pushstage/dispatcher_options.hpp"

namespace pushstage::detail {

class QueueCore {
 public:
  using Clock = Parking::Clock;
  using WaitResult = Parking::WaitResult;

  // Validates options (std::invalid_argument naming the field and its range).
  explicit QueueCore(const DispatcherOptions& options);
  QueueCore(const QueueCore&) = delete;
  QueueCore& operator=(const QueueCore&) = delete;

  // ---- producer side ----

  [[nodiscard]] ProducerSlot& lease_producer_slot() { return counts_.lease_producer(); }
  static void return_slot(ProducerSlot& slot) noexcept { EventCount::give_back(slot); }

  // (P0). False when closed: the caller must not enqueue.
  [[nodiscard]] bool begin_push(ProducerSlot& slot) noexcept { return gate_.begin(slot); }
  // (P2)+(P4)+(P3): n events enqueued since begin_push().
  void end_push(ProducerSlot& slot, std::uint64_t n) noexcept {
    if (gate_.fast_push()) {
      EventCount::publish_pushed(slot, n);  // P2: a plain release store
      CloseGate::end(slot);                 // P4
      gate_.light_fence();                  // P2 before P3: pairs with W2's and S2's heavy fence
    } else {
      EventCount::count_pushed(slot, n);  // P2: seq_cst RMW, the StoreLoad barrier itself
      CloseGate::end(slot);               // P4
    }
    parking_.after_push(n);  // P3
  }
  // begin_push() succeeded but nothing was enqueued (full, closed, or a throw).
  static void abort_push(ProducerSlot& slot) noexcept { CloseGate::end(slot); }  // P4

  // ---- bounded room (only when bounded()) ----
  static constexpr std::uint32_t kRoomMaxRequest = Room::kMaxRequest;
  [[nodiscard]] bool bounded() const noexcept { return room_.bounded(); }
  [[nodiscard]] Overflow overflow() const noexcept { return room_.overflow(); }
  [[nodiscard]] std::uint32_t try_reserve(std::uint32_t n) noexcept { return room_.try_reserve(n); }
  void release_room(std::uint32_t n) noexcept { room_.release(n); }  // R1, R2
  bool wait_for_room() noexcept { return room_.wait(); }             // B1, B2; false once closed
  // Gives the CPU away once: for a producer whose room is held by pushes still enqueueing.
  static void yield_to_others() noexcept;
  void note_rejected(std::uint64_t n) noexcept {
    rejected_.fetch_add(n, std::memory_order_relaxed);  // a statistic only
  }
  void note_refused_closed(std::uint64_t n) noexcept {
    refused_closed_.fetch_add(n, std::memory_order_relaxed);  // a statistic only
  }
  // A producer dropped n buffered events (they count as popped for the exact predicate).
  void note_dropped(std::uint64_t n) noexcept { counts_.count_dropped(n); }

  // ---- consumer side ----

  // A slot for one consumer; never fails but for std::bad_alloc.
  [[nodiscard]] ConsumerSlot& lease_consumer_slot() {
    ConsumerSlot& slot = counts_.lease_consumer();
    Parking::reset(slot);
    return slot;
  }
  static void return_slot(ConsumerSlot& slot) noexcept { EventCount::give_back(slot); }
  static void note_popped(ConsumerSlot& slot, std::uint64_t n) noexcept {
    EventCount::count_popped(slot, n);
  }
  void note_popped_shared(std::uint64_t n) noexcept { counts_.count_popped_shared(n); }

  // Waits for an event (Parking::wait()); try_pop() attempts one dequeue and its bookkeeping.
  template <class TryPop>
  WaitResult wait(ConsumerSlot& slot, TryPop&& try_pop, Clock::time_point deadline,
                  bool interruptible = false) {
    return parking_.wait(slot, std::forward<TryPop>(try_pop), deadline, interruptible);
  }
  void interrupt(ConsumerSlot& slot) noexcept { parking_.interrupt(slot); }  // I1, I2

  // ---- notice ----
  void notify() noexcept { parking_.notify(); }
  template <class Pred>
  void wait_until(Pred&& pred) noexcept {
    parking_.wait_until(std::forward<Pred>(pred));
  }

  // ---- both ----

  // (K1)..(K5). Idempotent; waits for pushes in progress to finish. True for the call that
  // closed it.
  bool close() noexcept;
  [[nodiscard]] bool closed() const noexcept { return gate_.closed(); }
  // Closed and every accepted event popped (or dropped). Reads what (W2) reads, in the same order,
  // and writes nothing: false may be stale, true is final (counts are final after K4).
  [[nodiscard]] bool drained() const noexcept {
    return gate_.final() && counts_.buffered() <= 0;  // pairs with K4, P2
  }
  [[nodiscard]] DispatcherStats stats() const noexcept;

 private:
  // Each part keeps its hot fields on lines of its own (see each part); the members here are
  // ordered so that what a push reads (gate_, room_'s flags, parking_'s demand_) comes first.
  CloseGate gate_;
  Room room_;
  EventCount counts_;
  Parking parking_;
  // Statistics of refused pushes: written only on refusing paths.
  alignas(kCacheLine) std::atomic<std::uint64_t> rejected_{0};
  std::atomic<std::uint64_t> refused_closed_{0};
};

}  // namespace pushstage::detail
