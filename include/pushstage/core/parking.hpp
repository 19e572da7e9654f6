// pushstage/core/parking.hpp: how consumers with nothing to take wait, and how they are woken:
// the demand word (parked and spinning consumers), the bounded, adaptive spin, a futex word per
// consumer slot, wakes by ticket (Fifo or Lifo, one consumer per event, no thundering herd),
// interrupts, and a notice for threads that wait for the queue's end. Tags (P3), (W1)-(W3),
// (S1)-(S2), (X1)-(X3), (I1)-(I2), (K5): the protocol block in core/queue_core.hpp.
//
// Threading: wait() is called by a consumer slot's lessee; everything else from any thread.
// Progress:  after_push() and interrupt() never wait (a wake is a system call); wait() spins for at
//            most the spin window, then sleeps until woken, interrupted, or its deadline.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <utility>

#include "pushstage/core/cache_line.hpp"
#include "pushstage/core/close_gate.hpp"
#include "pushstage/core/event_count.hpp"
#include "pushstage/core/signal.hpp"
#include "pushstage/core/slots.hpp"
#include "pushstage/dispatcher_options.hpp"

namespace pushstage::detail {

class Parking {
 public:
  using Clock = std::chrono::steady_clock;
  enum class WaitResult { kGot, kDrained, kTimedOut, kInterrupted };

  // `counts` and `gate` are the queue's own (W2 reads them); they outlive this object.
  // `max_spinners` is resolved (not kAutoSpinners); the caller validated the options.
  Parking(std::chrono::nanoseconds spin, std::uint32_t max_spinners, WakeOrder wake_order,
          bool wake_nearby, const EventCount& counts, const CloseGate& gate) noexcept
      : spin_(spin),
        max_spinners_(max_spinners),
        wake_order_(wake_order),
        wake_nearby_(wake_nearby),
        counts_(counts),
        gate_(gate) {}

  // (P3), after the producer's (P2) for n events: wakes min(n, parked) consumers if some are
  // parked and none spins.
  void after_push(std::uint64_t n) noexcept {
    const std::uint64_t d = demand_.load(std::memory_order_seq_cst);  // P3 pairs with W1, S1
    if ((d & kParkedMask) != 0 && (d & kSpinMask) == 0) [[unlikely]] {
      wake(n < parked_of(d) ? n : parked_of(d), Near::kWaker);
    }
  }

  // Waits for an event: pre-spin, spin, (W1)-(W3), sleep. try_pop() attempts one dequeue (and its
  // bookkeeping) and returns true on success. `interruptible`: interrupt() ends the wait with
  // kInterrupted. Caller: the lessee of `slot`.
  template <class TryPop>
  WaitResult wait(ConsumerSlot& slot, TryPop&& try_pop, Clock::time_point deadline,
                  bool interruptible);
  // (I1)+(I2). Safe from any thread, for any slot of this queue (a slot outlives its lessee: an
  // interrupt that reaches the next lessee is spurious, and callers re-check their conditions).
  void interrupt(ConsumerSlot& slot) noexcept;
  // (K5), after close()'s (K4): wakes every parked consumer, then notifies the notice.
  void wake_all_after_close() noexcept;
  // A new lessee starts without a previous lessee's interrupt.
  static void reset(ConsumerSlot& slot) noexcept {
    // relaxed: a late interrupter may still set it (a spurious interrupt, which callers tolerate).
    slot.interrupt.store(0, std::memory_order_relaxed);
  }

  // The notice: for threads that wait for a condition of their own involving the queue's end.
  void notify() noexcept { notice_.notify_all(); }
  // Waits until pred() holds; pred reads what it tests with seq_cst loads (Signal's A3).
  template <class Pred>
  void wait_until(Pred&& pred) noexcept {
    (void)notice_.wait_for(std::forward<Pred>(pred), std::chrono::nanoseconds::max());
  }

  [[nodiscard]] std::uint32_t parked() const noexcept {
    return static_cast<std::uint32_t>(parked_of(demand_.load(std::memory_order_acquire)));
  }
  [[nodiscard]] std::uint32_t spinning() const noexcept {
    return static_cast<std::uint32_t>(spinning_of(demand_.load(std::memory_order_acquire)));
  }

 private:
  enum class Verdict { kMaybeEvents, kDrained, kInterrupted, kPark };
  // Whom a wake prefers (with wake_nearby_): a producer, a consumer near itself (P3); a consumer
  // that leaves an event to another (S2), one on another CPU, so that they do not share one; a
  // close (K5), nobody.
  enum class Near { kWaker, kOtherCpu, kAny };

  // demand_ = | parked consumers: 32 bits | spinning consumers: 32 bits |.
  static constexpr std::uint64_t kSpinOne = 1;
  static constexpr std::uint64_t kSpinMask = 0xFFFF'FFFF;
  static constexpr std::uint64_t kParkedOne = std::uint64_t{1} << 32;
  static constexpr std::uint64_t kParkedMask = ~kSpinMask;
  // Polls of the queue before a consumer registers as a spinner.
  static constexpr int kPreSpinPolls = 64;

  static std::uint64_t parked_of(std::uint64_t d) noexcept { return d >> 32; }
  static std::uint64_t spinning_of(std::uint64_t d) noexcept { return d & kSpinMask; }

  // (W1)-(W3), and the cancel when the verdict is not kPark. Afterwards `searching` says whether
  // the consumer is counted as a spinner.
  Verdict prepare_park(ConsumerSlot& slot, bool& searching, bool interruptible) noexcept;
  // Sleeps until woken or the deadline; false: timed out and no longer registered.
  bool sleep(ConsumerSlot& slot, Clock::time_point deadline) noexcept;
  bool try_begin_spin() noexcept;
  // The lessee takes a pending interrupt (clears it); true if there was one.
  static bool take_interrupt(ConsumerSlot& slot) noexcept {
    // relaxed: (W3) is the ordered read; here the lessee only consumes what it already saw or
    // polls for it, and an interrupt that lands just after the clear is merged with this one.
    if (slot.interrupt.load(std::memory_order_relaxed) == 0) return false;
    slot.interrupt.store(0, std::memory_order_relaxed);
    return true;
  }
  // The adaptive spin window of the slot's lessee: the full spin_ after a spin found an event,
  // halved (down to spin_ / 32) each time a spin found nothing, and the full spin_ on every 16th
  // wait, to notice when gaps become short again. A local policy: correctness never depends on
  // how long anyone spins.
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
  // Drained: drop the spinner count, if any, and notify the notice.
  void finish_drained(bool searching) noexcept;
  // (X2)+(X3) for a slot whose ticket the caller claimed (X1).
  void notify_claimed(ConsumerSlot& slot) noexcept;
  // Wakes up to n parked consumers, the nearest first (Near), then in wake_order_; returns how
  // many.
  std::uint64_t wake(std::uint64_t n, Near near) noexcept;
  static void backoff(unsigned& round) noexcept;
  [[nodiscard]] bool drained() const noexcept {
    return gate_.final() && counts_.buffered() <= 0;  // W2's reads, in W2's order
  }

  // Read by every push (P3); written by consumers on the slow path only.
  alignas(kCacheLine) std::atomic<std::uint64_t> demand_{0};
  // Read-only after construction.
  alignas(kCacheLine) const std::chrono::nanoseconds spin_;
  const std::uint32_t max_spinners_;
  const WakeOrder wake_order_;
  const bool wake_nearby_;
  const EventCount& counts_;
  const CloseGate& gate_;
  // Written by every park (W1's ticket).
  alignas(kCacheLine) std::atomic<std::uint64_t> park_seq_{0};
  // Waiters for the queue's end: lines of their own (Signal is cache-line aligned).
  Signal notice_;
};

template <class TryPop>
Parking::WaitResult Parking::wait(ConsumerSlot& slot, TryPop&& try_pop, Clock::time_point deadline,
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
