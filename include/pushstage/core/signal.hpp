// pushstage/core/signal.hpp: wakes threads that wait for a condition other threads change
// (a pool's pause/resume, manual demand credits, retire requests). One futex word for any number
// of waiters; notify_all() costs a system call only when someone waits.
//
// Threading: every member is safe from any thread.
// Progress:  notify_all() never waits; wait_for() sleeps until notified, its predicate holds, or
//            the timeout passes.
//
// Protocol. A notifier N makes a waiter W's predicate true:
//   (N1) N writes the condition's state, seq_cst (the caller's write, before notify_all()).
//   (N2) N: seq_ += 1, seq_cst.
//   (N3) N: read waiters_, seq_cst; if non-zero, FUTEX_WAKE every thread sleeping on seq_.
//   (A1) W: waiters_ += 1, seq_cst.
//   (A2) W: s = seq_, seq_cst.
//   (A3) W: evaluate the predicate (its loads seq_cst); true: leave; else FUTEX_WAIT(seq_, s).
//   (A4) W: waiters_ -= 1, relaxed (it only makes a later N3 skip its system call).
// Invariant: a waiter whose (A3) misses (N1) is woken. (A1)/(N3) and (N1)/(A3) are Dekker's pair
//   (all four seq_cst): if (N3) reads no waiter, (A1) comes after (N3) in the total order, so
//   (A3) sees (N1). Otherwise N wakes W, and if W was not yet asleep its FUTEX_WAIT finds seq_ no
//   longer equal to s, because (A2) read seq_ before (N2) (else (A3) would have seen (N1)).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "pushstage/core/cache_line.hpp"

namespace pushstage::detail {

class Signal {
 public:
  using Clock = std::chrono::steady_clock;

  // (N2)+(N3). Call after the write that may make a waiter's predicate true (N1).
  void notify_all() noexcept {
    seq_.fetch_add(1, std::memory_order_seq_cst);                        // N2 pairs with A2
    if (waiters_.load(std::memory_order_seq_cst) != 0) wake_sleepers();  // N3 pairs with A1
  }

  // Waits until pred() is true or `timeout` has passed; returns pred(). pred() must read the
  // state it tests with seq_cst loads (A3).
  template <class Pred>
  bool wait_for(Pred&& pred, std::chrono::nanoseconds timeout) noexcept {
    if (pred()) return true;
    const Clock::time_point deadline = deadline_after(timeout);
    waiters_.fetch_add(1, std::memory_order_seq_cst);  // A1 pairs with N3
    bool ok = false;
    for (;;) {
      const std::uint32_t s = seq_.load(std::memory_order_seq_cst);  // A2 pairs with N2
      ok = pred();                                                   // A3 pairs with N1
      if (ok) break;
      const Clock::time_point now = Clock::now();
      if (now >= deadline) break;
      sleep(s, deadline == Clock::time_point::max() ? std::chrono::nanoseconds::max()
                                                    : deadline - now);
    }
    waiters_.fetch_sub(1, std::memory_order_relaxed);  // A4: only makes a later N3 skip its wake
    return ok;
  }

 private:
  static Clock::time_point deadline_after(std::chrono::nanoseconds timeout) noexcept {
    const Clock::time_point now = Clock::now();
    if (timeout >= Clock::time_point::max() - now) return Clock::time_point::max();
    return now + timeout;
  }
  // FUTEX_WAIT on seq_ while it reads s (max: no timeout). Returns on a wake, a timeout or
  // spuriously.
  void sleep(std::uint32_t s, std::chrono::nanoseconds timeout) noexcept;
  void wake_sleepers() noexcept;

  alignas(kCacheLine) std::atomic<std::uint32_t> seq_{0};
  std::atomic<std::uint32_t> waiters_{0};
};

}  // namespace pushstage::detail
