// pushstage/detail/demand.hpp: the part of a dispatcher that does not depend on the event type:
// exact event counts, the demand counter, parking and waking, room in a bounded buffer, close.
// Dispatcher<T> owns one and calls it around every enqueue and dequeue of its moodycamel queue.
//
// Threading: every member is safe from any thread, except where a member names its caller.
// Platform:  Linux (futex).
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
// A Producer handle leases one producer slot for its lifetime; a tokenless push leases one for
// the call. demand_ = | parked consumers: 32 bits | spinning consumers: 32 bits |.
//
// Producer, for n events (Dispatcher::push*), on its own slot:
//   (P0) pushing = 1, then a light fence, then read closed_: if set, pushing = 0 and fail.
//        Pairs with close's (K1)/(K2) (an asymmetric Dekker pair, see below).
//        enqueue into the moodycamel queue.
//   (P2) pushed += n, seq_cst RMW. Release: a consumer whose read of the count (W2) sees it also
//        sees the event. It is also the StoreLoad barrier that orders the enqueue before (P3).
//   (P4) pushing = 0, release: pairs with close's acquire read (K3).
//   (P3) d = demand_, seq_cst. If d has parked consumers and no spinning one: wake min(n, parked).
//        (P2)->(P3) and (W1)->(W2) are Dekker's pair: all four are seq_cst, so either (P3) sees the
//        consumer's registration or (W2) sees the new count. A spinning consumer makes the
//        producer skip the wake; the spinner inherits the duty at (S1).
// Consumer with nothing to pop (wait()):
//   pre-spin: poll the queue briefly, unregistered (the common short gap in a busy stream costs
//        no shared write).
//   spin: register as a spinner (CAS on demand_, at most max_spinners) and poll until the
//        consumer's spin window ends. The window adapts (a local policy: correctness never depends
//        on how long anyone spins): it is the full spin_ after a spin found an event, halves
//        (down to spin_/32) each time a spin found nothing, and every 16th wait spins the full
//        spin_ to learn whether gaps have become short again. Where gaps are longer than spin_,
//        spinning is wasted CPU: the window shrinks and the consumer parks sooner.
//   (W1) demand_ += parked 1 (and -= spinning 1 if it was spinning), seq_cst; then publish a
//        park ticket in its slot (seq_cst), so wakers can claim only counted consumers.
//   (W2) read final_ (seq_cst), then buffered = popped (acquire) ... pushed (seq_cst).
//        buffered > 0:           cancel the registration and try again (maybe an event).
//        final_ and none left:   drained; cancel the registration and return nothing.
//        otherwise:              sleep on the slot's own futex word until a waker sets it.
//   (S1) a spinning (or woken) consumer that found an event or gives up: demand_ -= spinning 1,
//        seq_cst. If it was the last spinner and consumers are parked, (S2) re-read buffered
//        (seq_cst) and wake that many. Pairs with (P3): a producer that skipped its wake because
//        it saw a spinner has its (P2) before (S1), so (S2) sees its events.
// Waker (wake()): pick the parked slot with the oldest (Fifo) or newest (Lifo) ticket,
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
// Notice (notify(), wait_until()): a Signal (detail/signal.hpp) for threads that wait for a
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
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <utility>

#include "pushstage/detail/cache_line.hpp"
#include "pushstage/detail/signal.hpp"
#include "pushstage/dispatcher_options.hpp"

namespace pushstage::detail {

// A producer's record: its pushed counter and its pushing flag, both written only by the slot's
// lessee and read by consumers before parking and by close(). Slots live in an append-only list
// owned by Demand and are freed only with it.
struct alignas(kCacheLine) ProducerSlot {
  std::atomic<std::uint64_t> pushed{0};   // advanced by (P2)
  std::atomic<std::uint32_t> pushing{0};  // 1 between (P0) and (P4)
  std::atomic<bool> leased{false};
  ProducerSlot* next = nullptr;  // set before the slot is published, then immutable
};
static_assert(sizeof(ProducerSlot) == kCacheLine);

// A consumer's record: its popped counter (hot, written by the owner on every pop) and its
// parking record (read by wakers). Same lifetime rules as ProducerSlot, so a waker may touch a
// slot whose consumer has left.
struct alignas(kCacheLine) ConsumerSlot {
  std::atomic<std::uint64_t> popped{0};  // single writer: the consumer that leased the slot
  // The adaptive spin window (see wait()): plain fields, touched only by the slot's lessee (the
  // lease's release/acquire hands them from one lessee to the next).
  std::int64_t spin_window_ns = -1;  // < 0: the full DispatcherOptions::spin
  std::uint32_t waits = 0;           // wait() calls that reached the spin phase
  alignas(kCacheLine) std::atomic<std::uint64_t> wait_ticket{0};  // 0: not parked
  std::atomic<std::uint32_t> futex{0};                            // 1: notified by a waker
  std::atomic<std::uint32_t> interrupt{0};                        // 1: interrupt() pending (I1)
  std::atomic<bool> leased{false};
  ConsumerSlot* next = nullptr;  // set before the slot is published, then immutable
};
static_assert(sizeof(ConsumerSlot) == 2 * kCacheLine);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free &&
              sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));

class Demand {
 public:
  using Clock = std::chrono::steady_clock;

  // Validates options (std::invalid_argument naming the field and its range).
  explicit Demand(const DispatcherOptions& options);
  ~Demand();
  Demand(const Demand&) = delete;
  Demand& operator=(const Demand&) = delete;

  // ---- producer side ----

  ProducerSlot& lease_producer_slot();
  void return_slot(ProducerSlot& slot) noexcept;

  // (P0). False when closed: the caller must not enqueue.
  [[nodiscard]] bool begin_push(ProducerSlot& slot) noexcept {
    slot.pushing.store(1, std::memory_order_relaxed);  // P0; ordered by the light fence
    light_fence();                                     // pairs with K2
    if (closed_.load(std::memory_order_relaxed)) [[unlikely]] {
      slot.pushing.store(0, std::memory_order_release);
      return false;
    }
    return true;
  }

  // (P2)+(P4)+(P3): n events enqueued since begin_push().
  void end_push(ProducerSlot& slot, std::uint64_t n) noexcept {
    slot.pushed.fetch_add(n, std::memory_order_seq_cst);              // P2 pairs with W2, S2
    slot.pushing.store(0, std::memory_order_release);                 // P4 pairs with K3
    const std::uint64_t d = demand_.load(std::memory_order_seq_cst);  // P3 pairs with W1, S1
    if ((d & kParkedMask) != 0 && (d & kSpinMask) == 0) [[unlikely]] {
      wake(n < parked_of(d) ? n : parked_of(d));
    }
  }

  // begin_push() succeeded but nothing was enqueued (full, closed, or a throw).
  static void abort_push(ProducerSlot& slot) noexcept {
    slot.pushing.store(0, std::memory_order_release);  // P4 pairs with K3
  }

  // ---- bounded room (only when bounded()) ----
  static constexpr std::uint32_t kRoomMaxRequest = 0x7FFF'FFFF;
  [[nodiscard]] bool bounded() const noexcept { return bounded_; }
  [[nodiscard]] Overflow overflow() const noexcept { return overflow_; }
  // Reserves up to n units of room; returns how many (0: full). Ignores close: the caller's
  // begin_push() already decided whether the push is accepted.
  [[nodiscard]] std::uint32_t try_reserve(std::uint32_t n) noexcept {
    std::uint32_t r = room_.load(std::memory_order_relaxed);
    for (;;) {
      const std::uint32_t free = r & kRoomMask;
      if (free == 0) return 0;
      const std::uint32_t take = n < free ? n : free;
      // acquire: pairs with a consumer's (R1), so the slot it freed is really free.
      if (room_.compare_exchange_weak(r, r - take, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
        return take;
      }
    }
  }
  // (R1)+(R2): n buffered events left (popped or reserved and not used).
  void release_room(std::uint32_t n) noexcept {
    room_.fetch_add(n, std::memory_order_seq_cst);                     // R1 pairs with B2
    if (blocked_.load(std::memory_order_seq_cst) != 0) [[unlikely]] {  // R2 pairs with B1
      wake_blocked(n);
    }
  }
  // (B1)+(B2): parks a producer until room may be free. False once closed.
  bool wait_for_room() noexcept;
  // Gives the CPU away once: for a producer whose room is held by pushes still enqueueing.
  static void yield_to_others() noexcept;
  void note_rejected(std::uint64_t n) noexcept {
    rejected_.fetch_add(n, std::memory_order_relaxed);  // a statistic only
  }
  void note_refused_closed(std::uint64_t n) noexcept {
    refused_closed_.fetch_add(n, std::memory_order_relaxed);  // a statistic only
  }
  // A producer dropped n buffered events (they count as popped for the exact predicate).
  void note_dropped(std::uint64_t n) noexcept {
    dropped_.fetch_add(n, std::memory_order_release);  // read at W2 like a slot's popped
  }

  // ---- consumer side ----

  // A slot for one consumer; never fails (allocates when none is free).
  ConsumerSlot& lease_consumer_slot();
  void return_slot(ConsumerSlot& slot) noexcept;

  // The owner of `slot` popped n events. A plain store: one writer per slot.
  static void note_popped(ConsumerSlot& slot, std::uint64_t n) noexcept {
    // release: a reader that sees the count also sees the dequeue (W2 reads it with acquire).
    slot.popped.store(slot.popped.load(std::memory_order_relaxed) + n, std::memory_order_release);
  }
  // A consumer without a slot (tokenless try_pop) popped n events.
  void note_popped_shared(std::uint64_t n) noexcept {
    shared_popped_.fetch_add(n, std::memory_order_release);  // read at W2 like a slot's popped
  }

  enum class WaitResult { kGot, kDrained, kTimedOut, kInterrupted };

  // Waits for an event: the whole consumer protocol above. try_pop() attempts one dequeue (and its
  // bookkeeping) and returns true on success. `interruptible`: interrupt() ends the wait with
  // kInterrupted. Caller: the owner of `slot`.
  template <class TryPop>
  WaitResult wait(ConsumerSlot& slot, TryPop&& try_pop, Clock::time_point deadline,
                  bool interruptible = false);
  // (I1)+(I2). Safe from any thread, for any slot of this dispatcher (a slot outlives its lessee:
  // an interrupt that reaches the next lessee is spurious, and callers re-check their conditions).
  void interrupt(ConsumerSlot& slot) noexcept;

  // ---- notice (see the protocol block) ----
  void notify() noexcept { notice_.notify_all(); }
  // Waits until pred() holds; pred reads what it tests with seq_cst loads (Signal's A3).
  template <class Pred>
  void wait_until(Pred&& pred) noexcept {
    (void)notice_.wait_for(std::forward<Pred>(pred), std::chrono::nanoseconds::max());
  }

  // ---- both ----

  // (K1)..(K5). Idempotent; waits for pushes in progress to finish.
  void close() noexcept;
  [[nodiscard]] bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }
  // Closed and every accepted event popped (or dropped). Reads what (W2) reads, in the same order,
  // and writes nothing: false may be stale, true is final (counts are final after K4).
  [[nodiscard]] bool drained() const noexcept {
    return final_.load(std::memory_order_seq_cst) && buffered() <= 0;  // pairs with K4, P2
  }
  [[nodiscard]] DispatcherStats stats() const noexcept;

 private:
  enum class Verdict { kMaybeEvents, kDrained, kInterrupted, kPark };

  static constexpr std::uint64_t kSpinOne = 1;
  static constexpr std::uint64_t kSpinMask = 0xFFFF'FFFF;
  static constexpr std::uint64_t kParkedOne = std::uint64_t{1} << 32;
  static constexpr std::uint64_t kParkedMask = ~kSpinMask;
  static constexpr std::uint32_t kRoomClosed = 0x8000'0000;
  static constexpr std::uint32_t kRoomMask = 0x7FFF'FFFF;
  // Polls of the queue before a consumer registers as a spinner.
  static constexpr int kPreSpinPolls = 64;

  static std::uint64_t parked_of(std::uint64_t d) noexcept { return d >> 32; }
  static std::uint64_t spinning_of(std::uint64_t d) noexcept { return d & kSpinMask; }

  // The push side of the asymmetric pair (P0)/(K2): a compiler barrier when close() can use
  // membarrier, else a seq_cst thread fence.
  void light_fence() const noexcept {
    if (asymmetric_) {
      std::atomic_signal_fence(std::memory_order_seq_cst);
    } else {
      std::atomic_thread_fence(std::memory_order_seq_cst);
    }
  }

  // (W1)-(W3), and the cancel when the verdict is not kPark. Afterwards `searching` says whether
  // the consumer is counted as a spinner.
  Verdict prepare_park(ConsumerSlot& slot, bool& searching, bool interruptible) noexcept;
  // The lessee takes a pending interrupt (clears it); true if there was one.
  static bool take_interrupt(ConsumerSlot& slot) noexcept {
    // relaxed: (W3) is the ordered read; here the lessee only consumes what it already saw or
    // polls for it, and an interrupt that lands just after the clear is merged with this one.
    if (slot.interrupt.load(std::memory_order_relaxed) == 0) return false;
    slot.interrupt.store(0, std::memory_order_relaxed);
    return true;
  }
  // (X2)+(X3) for a slot whose ticket the caller claimed (X1).
  void notify_claimed(ConsumerSlot& slot) noexcept;
  // Sleeps until woken or the deadline; false: timed out and no longer registered.
  bool sleep(ConsumerSlot& slot, Clock::time_point deadline) noexcept;
  bool try_begin_spin() noexcept;
  // The adaptive spin window of the slot's lessee (see the protocol block).
  std::chrono::nanoseconds spin_window(ConsumerSlot& slot) const noexcept {
    if (slot.spin_window_ns < 0 || (++slot.waits & 15) == 0) return spin_;
    return std::chrono::nanoseconds(slot.spin_window_ns);
  }
  void shrink_spin_window(ConsumerSlot& slot) const noexcept {
    const std::int64_t floor = spin_.count() / 32;
    const std::int64_t half = (slot.spin_window_ns < 0 ? spin_.count() : slot.spin_window_ns) / 2;
    slot.spin_window_ns = half > floor ? half : floor;
  }
  // (S1)+(S2).
  void stop_searching() noexcept;
  // Drained: drop the spinner count, if any.
  void finish_drained(bool searching) noexcept;
  // Events buffered by the exact count (W2/S2); may over-count by events being popped.
  [[nodiscard]] std::int64_t buffered() const noexcept;
  [[nodiscard]] std::uint64_t popped_total() const noexcept;
  [[nodiscard]] std::uint64_t pushed_total() const noexcept;
  // Wakes up to n parked consumers in wake_order_; returns how many.
  std::uint64_t wake(std::uint64_t n) noexcept;
  void wake_all() noexcept;
  void wake_blocked(std::uint32_t n) noexcept;
  static void backoff(unsigned& round) noexcept;

  // Layout: each group below sits on cache lines of its own (asserted in demand.cpp), so that
  // what is written per event never shares a line with what every push reads.
  // The demand counter: producers read it on every push; consumers write it on the slow path only.
  alignas(kCacheLine) std::atomic<std::uint64_t> demand_{0};
  // Read-mostly: every push reads closed_ and the options; close() writes closed_ and final_ once;
  // a slot is linked into a list rarely (when every slot is leased). Nothing here changes per
  // event.
  alignas(kCacheLine) std::atomic<bool> closed_{false};
  std::atomic<bool> final_{false};
  bool bounded_;
  bool asymmetric_;  // close() may use membarrier: (P0) needs only a compiler barrier
  WakeOrder wake_order_;
  Overflow overflow_;
  std::uint32_t max_spinners_ = 0;
  std::chrono::nanoseconds spin_;
  std::atomic<ProducerSlot*> producer_slots_{nullptr};
  std::atomic<ConsumerSlot*> consumer_slots_{nullptr};
  // Written by every tokenless pop: a line of its own.
  alignas(kCacheLine) std::atomic<std::uint64_t> shared_popped_{0};
  // Written on slow or refusing paths only: parking, DropOldest, refusals.
  alignas(kCacheLine) std::atomic<std::uint64_t> park_seq_{0};
  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<std::uint64_t> rejected_{0};
  std::atomic<std::uint64_t> refused_closed_{0};
  // Bounded buffers only: the room, written by every push and pop (the bound itself).
  alignas(kCacheLine) std::atomic<std::uint32_t> room_{0};
  std::atomic<std::uint32_t> blocked_{0};
  // Waiters for the end (Notice): its own lines (Signal is cache-line aligned).
  Signal notice_;

  friend struct DemandLayout;  // demand.cpp asserts the layout above
};

template <class TryPop>
Demand::WaitResult Demand::wait(ConsumerSlot& slot, TryPop&& try_pop, Clock::time_point deadline,
                                bool interruptible) {
  if (interruptible && take_interrupt(slot)) return WaitResult::kInterrupted;
  for (int i = 0; i < kPreSpinPolls; ++i) {
    if (try_pop()) return WaitResult::kGot;
    cpu_relax();
  }
  bool searching = spin_.count() > 0 && try_begin_spin();
  Clock::time_point spin_until =
      searching ? Clock::now() + spin_window(slot) : Clock::time_point::min();
  bool first_spin = true;  // only the first spin phase of a wait adapts the window
  unsigned round = 0;
  // A pending interrupt ends the wait; counted as a spinner, we pass events on (S1/S2).
  auto interrupted = [&] {
    if (!interruptible || !take_interrupt(slot)) return false;
    if (searching) stop_searching();
    return true;
  };
  for (;;) {
    // Spin phase: only while counted as a spinner, and never past the caller's deadline.
    if (searching && spin_.count() > 0 &&
        spinning_of(demand_.load(std::memory_order_relaxed)) <= max_spinners_) {
      const Clock::time_point until = spin_until < deadline ? spin_until : deadline;
      for (unsigned polls = 0;; ++polls) {
        if (try_pop()) {
          if (first_spin) slot.spin_window_ns = -1;  // spinning paid: the full window again
          stop_searching();
          return WaitResult::kGot;
        }
        cpu_relax();
        if ((polls & 7) == 7) {
          if (interrupted()) return WaitResult::kInterrupted;
          if (Clock::now() >= until) break;
        }
      }
      if (first_spin && until == spin_until) shrink_spin_window(slot);
    }
    first_spin = false;
    if (Clock::now() >= deadline) {
      if (drained()) {  // a caller at its deadline still learns that nothing will come
        finish_drained(searching);
        return WaitResult::kDrained;
      }
      if (searching) stop_searching();
      return WaitResult::kTimedOut;
    }
    switch (prepare_park(slot, searching, interruptible)) {
      case Verdict::kDrained:
        finish_drained(searching);
        return WaitResult::kDrained;
      case Verdict::kInterrupted:
        (void)take_interrupt(slot);
        if (searching) stop_searching();
        return WaitResult::kInterrupted;
      case Verdict::kMaybeEvents:  // counted as a spinner again; an event is (probably) there
        if (try_pop()) {
          stop_searching();
          return WaitResult::kGot;
        }
        backoff(round);
        continue;
      case Verdict::kPark:
        if (!sleep(slot, deadline)) return WaitResult::kTimedOut;
        searching = true;  // the waker counted us as a spinner (X2)
        spin_until = Clock::now() + spin_;
        if (try_pop()) {
          stop_searching();
          return WaitResult::kGot;
        }
        if (interrupted()) return WaitResult::kInterrupted;
        continue;
    }
  }
}

}  // namespace pushstage::detail
