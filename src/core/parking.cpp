// parking.cpp: the slow paths of core/parking.hpp: registering to park, sleeping, waking,
// interrupting (tags: the protocol block in core/queue_core.hpp).
#include "pushstage/core/parking.hpp"

#include <sched.h>

#include "asymmetric_fence.hpp"
#include "futex.hpp"
#include "pushstage/cpus.hpp"

namespace pushstage::detail {

bool Parking::try_begin_spin() noexcept {
  std::uint64_t d = demand_.load(std::memory_order_relaxed);
  while (spinning_of(d) < max_spinners_) {
    // seq_cst like every demand_ write that producers' (P3) decides on; a producer that sees this
    // spinner skips its wake, and the spinner re-checks at (W2) or (S2).
    if (demand_.compare_exchange_weak(d, d + kSpinOne, std::memory_order_seq_cst,
                                      std::memory_order_relaxed)) {
      return true;
    }
  }
  return false;
}

Parking::Verdict Parking::prepare_park(ConsumerSlot& slot, bool& searching,
                                       bool interruptible) noexcept {
  // The futex word is reset before the ticket is published: a waker's X3 (which follows its CAS
  // on our ticket) is after this store in the word's modification order.
  slot.futex.store(0, std::memory_order_relaxed);
  // relaxed: published by the ticket's seq_cst store below; only steers the wake order.
  if (wake_nearby_) slot.cpu.store(sched_getcpu(), std::memory_order_relaxed);
  demand_.fetch_add(kParkedOne - (searching ? kSpinOne : 0), std::memory_order_seq_cst);  // W1
  // relaxed: the ticket value only orders wakers (Fifo/Lifo); uniqueness comes from the RMW.
  const std::uint64_t ticket = park_seq_.fetch_add(1, std::memory_order_relaxed) + 1;
  // Published after W1, so a waker can claim us (X1, then X2: parked - 1) only once we are
  // counted; claiming first would let the parked count go wrong and make (K5) skip a parked
  // consumer (found by tools/model/wake.pml). seq_cst: a waker whose scan misses the ticket
  // scanned before it in the total order, so its (P2)/(K4)/(S2) precedes our (W2).
  slot.wait_ticket.store(ticket, std::memory_order_seq_cst);
  // W3: after the ticket (Dekker with I1/I2): an interrupt we miss here finds the ticket and wakes
  // us.
  const bool interrupted = interruptible && slot.interrupt.load(std::memory_order_seq_cst) != 0;
  // W2: final_ first: if it is set, every push has completed its (P2) and the counts read below
  // are complete. Pairs with K4 (Dekker with W1/K5) and, for the counts, with P2 (W1/P3).
  bool final = gate_.final();
  std::int64_t events = counts_.buffered();
  if (events <= 0 && !final && gate_.fast_push()) {
    // W2': nothing seen, so a push may sit between its P2 and a P3 that missed our W1: with the
    // asymmetric pair its P2 is a plain store, ordered before its P3 only by the light fence.
    // The heavy fence makes that store visible or the P3 see our W1; then read again.
    heavy_fence();
    final = gate_.final();
    events = counts_.buffered();
  }
  Verdict verdict = Verdict::kPark;
  if (events > 0) {
    verdict = Verdict::kMaybeEvents;
  } else if (final) {
    verdict = Verdict::kDrained;
  } else if (interrupted) {
    verdict = Verdict::kInterrupted;
  }
  if (verdict == Verdict::kPark) {
    searching = false;
    return verdict;
  }
  std::uint64_t expected = ticket;
  // Cancel; races a waker's X1 on the same word.
  if (slot.wait_ticket.compare_exchange_strong(expected, 0, std::memory_order_acq_rel,
                                               std::memory_order_relaxed)) {
    // Still ours: leave the parked count; with maybe-events become a spinner again, so that an
    // event we take makes us check (S1/S2) whether more are waiting for a wake.
    const bool spin_again = verdict == Verdict::kMaybeEvents;
    demand_.fetch_add((spin_again ? kSpinOne : 0) - kParkedOne, std::memory_order_seq_cst);
    searching = spin_again;
  } else {
    // A waker claimed us (X1) and counted us as a spinner (X2); take its notification (X3).
    while (slot.futex.load(std::memory_order_acquire) == 0) futex_wait(&slot.futex, 0, nullptr);
    searching = true;
  }
  return verdict;
}

bool Parking::sleep(ConsumerSlot& slot, Clock::time_point deadline) noexcept {
  for (;;) {
    if (slot.futex.load(std::memory_order_acquire) != 0) return true;  // pairs with X3
    if (deadline == Clock::time_point::max()) {
      futex_wait(&slot.futex, 0, nullptr);
      continue;
    }
    const auto now = Clock::now();
    if (now >= deadline) break;
    const std::chrono::nanoseconds left = deadline - now;
    futex_wait(&slot.futex, 0, &left);
  }
  // Timed out: cancel, unless a waker claimed us first (then its notification is on its way).
  std::uint64_t ticket = slot.wait_ticket.load(std::memory_order_relaxed);
  if (ticket != 0 && slot.wait_ticket.compare_exchange_strong(ticket, 0, std::memory_order_acq_rel,
                                                              std::memory_order_relaxed)) {
    // relaxed would do (the count only steers wakers), but keep demand_'s writes uniform.
    demand_.fetch_sub(kParkedOne, std::memory_order_seq_cst);
    return false;
  }
  while (slot.futex.load(std::memory_order_acquire) == 0) futex_wait(&slot.futex, 0, nullptr);
  return true;
}

void Parking::stop_searching() noexcept {
  const std::uint64_t d = demand_.fetch_sub(kSpinOne, std::memory_order_seq_cst);  // S1 pairs P3
  if (spinning_of(d) == 1 && parked_of(d) != 0) {
    // We were the last spinner: producers that saw us skipped their wakes. Wake one consumer for
    // each event still buffered (S2), so a burst does not wait for a chain of wakes.
    std::int64_t events = counts_.buffered();  // S2 pairs with P2
    if (events <= 0 && gate_.fast_push()) {
      // S2': as W2' in prepare_park: a producer that skipped its wake is counted. Most of
      // fast_push's cost where consumers park per event is this fence (the seed without it, three
      // pairs of runs: excess p50 0.99-1.01x the default's instead of 1.10-1.16x), but it is not
      // optional: we may never pop again (a pool retiring us, a thread done with pop()), and the
      // model (NO_HEAVY_S2 with INTERRUPT) shows the event then stranded beside a parked consumer.
      heavy_fence();
      events = counts_.buffered();
    }
    if (events > 0) {
      const auto n = static_cast<std::uint64_t>(events);
      wake(n < parked_of(d) ? n : parked_of(d), Near::kOtherCpu);
    }
  }
}

void Parking::finish_drained(bool searching) noexcept {
  // No wake needed: a consumer parked before (K4) was woken by (K5), and one that registers later
  // sees final_ at its (W2) (Dekker: K4/K5 against W1/W2).
  if (searching) demand_.fetch_sub(kSpinOne, std::memory_order_seq_cst);
  notice_.notify_all();  // the queue is drained (N1: our W2 read the final counts)
}

void Parking::notify_claimed(ConsumerSlot& slot) noexcept {
  demand_.fetch_add(kSpinOne - kParkedOne, std::memory_order_seq_cst);  // X2, before X3
  slot.futex.store(1, std::memory_order_release);                       // X3
  futex_wake(&slot.futex, 1);
}

void Parking::interrupt(ConsumerSlot& slot) noexcept {
  slot.interrupt.store(1, std::memory_order_seq_cst);                  // I1 pairs with W3
  std::uint64_t t = slot.wait_ticket.load(std::memory_order_seq_cst);  // I2 pairs with the ticket
  // X1: claim it, as a waker does; fails if the consumer cancelled or a waker came first (then it
  // is awake and polls the flag).
  if (t != 0 && slot.wait_ticket.compare_exchange_strong(t, 0, std::memory_order_acq_rel,
                                                         std::memory_order_relaxed)) {
    notify_claimed(slot);
  }
}

namespace {
// How near a parked consumer's CPU is to the waker's: 2 the same CPU, 1 the same cache domain, 0
// farther. For Near::kOtherCpu the same CPU ranks last.
int nearness(int cpu, int here, int here_domain, bool avoid_here) noexcept {
  if (cpu < 0 || here < 0) return 0;
  if (cpu == here) return avoid_here ? -1 : 2;
  return here_domain >= 0 && detail::cache_domain_id(cpu) == here_domain ? 1 : 0;
}
}  // namespace

std::uint64_t Parking::wake(std::uint64_t n, Near near) noexcept {
  std::uint64_t woken = 0;
  const bool fifo = wake_order_ == WakeOrder::Fifo;
  // The waker's CPU (sched_getcpu: the kernel's rseq area, no system call).
  const int here = wake_nearby_ && near != Near::kAny ? sched_getcpu() : -1;
  const int here_domain = here >= 0 ? detail::cache_domain_id(here) : -1;
  const bool avoid_here = near == Near::kOtherCpu;
  while (woken < n) {
    ConsumerSlot* best = nullptr;
    std::uint64_t best_ticket = 0;
    int best_near = -2;
    for (ConsumerSlot* s = counts_.consumers().first(std::memory_order_acquire); s != nullptr;
         s = s->next) {
      // seq_cst: pairs with prepare_park's seq_cst store of the ticket (see there).
      const std::uint64_t t = s->wait_ticket.load(std::memory_order_seq_cst);
      if (t == 0) continue;
      // relaxed: stored before the ticket we just read (seq_cst), so it is that park's CPU.
      const int rank = here < 0 ? 0
                                : nearness(s->cpu.load(std::memory_order_relaxed), here,
                                           here_domain, avoid_here);
      if (best == nullptr || rank > best_near ||
          (rank == best_near && (fifo ? t < best_ticket : t > best_ticket))) {
        best = s;
        best_ticket = t;
        best_near = rank;
      }
    }
    if (best == nullptr) break;
    // X1: claim; fails if the consumer cancelled or another waker claimed it first.
    if (!best->wait_ticket.compare_exchange_strong(best_ticket, 0, std::memory_order_acq_rel,
                                                   std::memory_order_relaxed)) {
      continue;
    }
#ifdef PUSHSTAGE_PERF_GATE_SLOW_WAKE  // defined only by the perf gate's self-test builds
    for (volatile int slow = 0; slow < PUSHSTAGE_PERF_GATE_SLOW_WAKE;) slow = slow + 1;
#endif
    notify_claimed(*best);  // X2, X3
    ++woken;
  }
  return woken;
}

void Parking::wake_all_after_close() noexcept {
  if (parked_of(demand_.load(std::memory_order_seq_cst)) != 0) {  // K5 pairs with W1
    wake(~std::uint64_t{0}, Near::kAny);
  }
  notice_.notify_all();  // the queue is closed (N1 is K4)
}

void Parking::backoff(unsigned& round) noexcept {
  // An event is counted but our dequeue failed: another consumer is mid-dequeue, or a popped
  // counter is not yet visible. Short pauses first, then give the CPU away (it may be the one
  // the other consumer needs, with more consumers than cores).
  if (round < 6) {
    for (unsigned i = 0; i < (1U << round); ++i) cpu_relax();
    ++round;
  } else {
    sched_yield();
  }
}

}  // namespace pushstage::detail
