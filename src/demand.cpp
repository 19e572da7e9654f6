// demand.cpp: the slow paths of the protocol described in pushstage/detail/demand.hpp (the tags
// below are its tags): registering to park, sleeping, waking, interrupting, close, room for blocked
// producers, options validation.
#include "pushstage/detail/demand.hpp"

#include <sched.h>

#include <climits>
#include <cstddef>
#include <stdexcept>
#include <string>

#include "asymmetric_fence.hpp"
#include "futex.hpp"
#include "pushstage/cpus.hpp"

namespace pushstage::detail {
namespace {

constexpr std::uint64_t kCapacityMax = 0x7FFF'FFFF;  // room_ keeps one bit for "closed"

[[noreturn]] void reject(const std::string& what) { throw std::invalid_argument(what); }

}  // namespace

// The layout Demand's members promise: the groups hot for different writers on different lines.
constexpr std::size_t line_of(std::size_t offset) { return offset / kCacheLine; }
struct DemandLayout {
  // Everything a push reads besides its own slot: demand_ and one read-mostly line.
  static_assert(line_of(offsetof(Demand, closed_)) == line_of(offsetof(Demand, consumer_slots_)) &&
                line_of(offsetof(Demand, closed_)) == line_of(offsetof(Demand, spin_)) &&
                line_of(offsetof(Demand, closed_)) != line_of(offsetof(Demand, demand_)));
  // What tokenless pops write shares its line with nothing.
  static_assert(offsetof(Demand, shared_popped_) % kCacheLine == 0 &&
                offsetof(Demand, park_seq_) == offsetof(Demand, shared_popped_) + kCacheLine);
  // Counters of the slow and refusing paths stay off the lines a push reads.
  static_assert(line_of(offsetof(Demand, refused_closed_)) ==
                    line_of(offsetof(Demand, park_seq_)) &&
                line_of(offsetof(Demand, room_)) != line_of(offsetof(Demand, refused_closed_)));
};

Demand::Demand(const DispatcherOptions& options)
    : bounded_(options.capacity != 0),
      asymmetric_(asymmetric_fence_available()),
      wake_order_(options.wake_order),
      overflow_(options.overflow),
      spin_(options.spin) {
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
  if (options.max_spinners == DispatcherOptions::kAutoSpinners) {
    max_spinners_ = cpus > 1 ? cpus - 1 : 1;
  } else if (options.max_spinners > cpus) {
    reject("DispatcherOptions::max_spinners must be in [0, " + std::to_string(cpus) +
           "] (the CPUs this process may use); got " + std::to_string(options.max_spinners));
  } else {
    max_spinners_ = options.max_spinners;
  }
  room_.store(static_cast<std::uint32_t>(options.capacity), std::memory_order_relaxed);
}

namespace {

template <class Slot>
void delete_all(std::atomic<Slot*>& head) {
  Slot* s = head.load(std::memory_order_acquire);
  while (s != nullptr) {
    Slot* next = s->next;
    delete s;
    s = next;
  }
}

// Leases a free slot of an append-only list, or appends a new one.
template <class Slot>
Slot& lease(std::atomic<Slot*>& head) {
  for (Slot* s = head.load(std::memory_order_seq_cst); s != nullptr; s = s->next) {
    bool expected = false;
    // acquire: pairs with return_slot's release, so we continue the previous owner's counter.
    if (!s->leased.load(std::memory_order_relaxed) &&
        s->leased.compare_exchange_strong(expected, true, std::memory_order_acquire,
                                          std::memory_order_relaxed)) {
      return *s;
    }
  }
  auto* s = new Slot;
  s->leased.store(true, std::memory_order_relaxed);
  s->next = head.load(std::memory_order_relaxed);
  // seq_cst (release at least): a reader that loads the head sees the slot initialised, and a
  // count advanced on this slot before a consumer's (W1) is reached by that consumer's (W2).
  while (!head.compare_exchange_weak(s->next, s, std::memory_order_seq_cst,
                                     std::memory_order_relaxed)) {
  }
  return *s;
}

}  // namespace

Demand::~Demand() {
  delete_all(producer_slots_);
  delete_all(consumer_slots_);
}

bool Demand::wait_for_room() noexcept {
  blocked_.fetch_add(1, std::memory_order_seq_cst);  // B1 pairs with R2
  bool open = true;
  for (;;) {
    const std::uint32_t r = room_.load(std::memory_order_seq_cst);  // B2 pairs with R1
    if ((r & kRoomClosed) != 0) {
      open = false;
      break;
    }
    if ((r & kRoomMask) != 0) break;
    futex_wait(&room_, r, nullptr);  // the kernel sleeps only while room_ still reads r
  }
  blocked_.fetch_sub(1, std::memory_order_relaxed);  // only makes a later R2 skip its wake
  return open;
}

void Demand::wake_blocked(std::uint32_t n) noexcept {
  futex_wake(&room_, n > static_cast<std::uint32_t>(INT_MAX) ? INT_MAX : static_cast<int>(n));
}

ProducerSlot& Demand::lease_producer_slot() { return lease(producer_slots_); }
ConsumerSlot& Demand::lease_consumer_slot() {
  ConsumerSlot& slot = lease(consumer_slots_);
  // A previous lessee's interrupt is not ours. relaxed: a late interrupter may still set it (a
  // spurious interrupt, which callers tolerate).
  slot.interrupt.store(0, std::memory_order_relaxed);
  return slot;
}

void Demand::return_slot(ProducerSlot& slot) noexcept {
  slot.leased.store(false, std::memory_order_release);  // pairs with lease()'s acquire
}
void Demand::return_slot(ConsumerSlot& slot) noexcept {
  slot.leased.store(false, std::memory_order_release);  // pairs with lease()'s acquire
}

bool Demand::try_begin_spin() noexcept {
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

std::uint64_t Demand::popped_total() const noexcept {
  // acquire: pairs with note_popped/note_popped_shared/note_dropped's release stores.
  std::uint64_t total =
      shared_popped_.load(std::memory_order_acquire) + dropped_.load(std::memory_order_acquire);
  for (ConsumerSlot* s = consumer_slots_.load(std::memory_order_acquire); s != nullptr;
       s = s->next) {
    total += s->popped.load(std::memory_order_acquire);
  }
  return total;
}

std::uint64_t Demand::pushed_total() const noexcept {
  std::uint64_t total = 0;
  // seq_cst: these loads are the (W2)/(S2) half of the Dekker pairs with (P2).
  for (ProducerSlot* s = producer_slots_.load(std::memory_order_seq_cst); s != nullptr;
       s = s->next) {
    total += s->pushed.load(std::memory_order_seq_cst);
  }
  return total;
}

std::int64_t Demand::buffered() const noexcept {
  // Popped counters first, pushed last: the pushed count can only have grown meanwhile, so the
  // result never under-counts events counted before the read (see the header). Both are sums of
  // 64-bit counters that never wrap in practice (2^64 events).
  const std::uint64_t popped = popped_total();
  const std::uint64_t pushed = pushed_total();
  return static_cast<std::int64_t>(pushed - popped);
}

Demand::Verdict Demand::prepare_park(ConsumerSlot& slot, bool& searching,
                                     bool interruptible) noexcept {
  // The futex word is reset before the ticket is published: a waker's X3 (which follows its CAS
  // on our ticket) is after this store in the word's modification order.
  slot.futex.store(0, std::memory_order_relaxed);
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
  const bool final = final_.load(std::memory_order_seq_cst);
  const std::int64_t events = buffered();
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

bool Demand::sleep(ConsumerSlot& slot, Clock::time_point deadline) noexcept {
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

void Demand::stop_searching() noexcept {
  const std::uint64_t d = demand_.fetch_sub(kSpinOne, std::memory_order_seq_cst);  // S1 pairs P3
  if (spinning_of(d) == 1 && parked_of(d) != 0) {
    // We were the last spinner: producers that saw us skipped their wakes. Wake one consumer for
    // each event still buffered (S2), so a burst does not wait for a chain of wakes.
    const std::int64_t events = buffered();  // S2 pairs with P2
    if (events > 0) {
      const auto n = static_cast<std::uint64_t>(events);
      wake(n < parked_of(d) ? n : parked_of(d));
    }
  }
}

void Demand::finish_drained(bool searching) noexcept {
  // No wake needed: a consumer parked before (K4) was woken by (K5), and one that registers later
  // sees final_ at its (W2) (Dekker: K4/K5 against W1/W2).
  if (searching) demand_.fetch_sub(kSpinOne, std::memory_order_seq_cst);
  notice_.notify_all();  // Notice: the dispatcher is drained (N1: our W2 read the final counts)
}

void Demand::notify_claimed(ConsumerSlot& slot) noexcept {
  demand_.fetch_add(kSpinOne - kParkedOne, std::memory_order_seq_cst);  // X2, before X3
  slot.futex.store(1, std::memory_order_release);                       // X3
  futex_wake(&slot.futex, 1);
}

void Demand::interrupt(ConsumerSlot& slot) noexcept {
  slot.interrupt.store(1, std::memory_order_seq_cst);                  // I1 pairs with W3
  std::uint64_t t = slot.wait_ticket.load(std::memory_order_seq_cst);  // I2 pairs with the ticket
  // X1: claim it, as a waker does; fails if the consumer cancelled or a waker came first (then it
  // is awake and polls the flag).
  if (t != 0 && slot.wait_ticket.compare_exchange_strong(t, 0, std::memory_order_acq_rel,
                                                         std::memory_order_relaxed)) {
    notify_claimed(slot);
  }
}

std::uint64_t Demand::wake(std::uint64_t n) noexcept {
  std::uint64_t woken = 0;
  const bool fifo = wake_order_ == WakeOrder::Fifo;
  while (woken < n) {
    ConsumerSlot* best = nullptr;
    std::uint64_t best_ticket = 0;
    for (ConsumerSlot* s = consumer_slots_.load(std::memory_order_acquire); s != nullptr;
         s = s->next) {
      // seq_cst: pairs with prepare_park's seq_cst store of the ticket (see there).
      const std::uint64_t t = s->wait_ticket.load(std::memory_order_seq_cst);
      if (t != 0 && (best == nullptr || (fifo ? t < best_ticket : t > best_ticket))) {
        best = s;
        best_ticket = t;
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

void Demand::wake_all() noexcept { wake(~std::uint64_t{0}); }

void Demand::backoff(unsigned& round) noexcept {
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

void Demand::yield_to_others() noexcept { sched_yield(); }

void Demand::close() noexcept {
  if (closed_.exchange(true, std::memory_order_seq_cst)) return;  // K1; the first close() does all
  if (bounded_) {
    // Producers blocked for room hold their pushing flag: release them before waiting (K3).
    room_.fetch_or(kRoomClosed, std::memory_order_seq_cst);  // pairs with B2
    if (blocked_.load(std::memory_order_seq_cst) != 0) futex_wake(&room_, INT_MAX);
  }
  heavy_fence();  // K2 pairs with P0's light fence
  // K3: wait for every push that read closed_ == false to finish. Pushes are short and never wait
  // for consumers (a Block wait ends at room_'s closed bit), so this is a bounded wait.
  for (ProducerSlot* s = producer_slots_.load(std::memory_order_seq_cst); s != nullptr;
       s = s->next) {
    while (s->pushing.load(std::memory_order_acquire) != 0) sched_yield();  // pairs with P4
  }
  final_.store(true, std::memory_order_seq_cst);                            // K4 pairs with W2
  if (parked_of(demand_.load(std::memory_order_seq_cst)) != 0) wake_all();  // K5 pairs with W1
  notice_.notify_all();  // Notice: closed (N1 is K4)
}

DispatcherStats Demand::stats() const noexcept {
  DispatcherStats st;
  std::uint64_t popped = shared_popped_.load(std::memory_order_acquire);
  for (ConsumerSlot* s = consumer_slots_.load(std::memory_order_acquire); s != nullptr;
       s = s->next) {
    popped += s->popped.load(std::memory_order_acquire);
  }
  st.popped = popped;
  st.dropped = dropped_.load(std::memory_order_acquire);
  st.rejected = rejected_.load(std::memory_order_relaxed);
  st.refused_closed = refused_closed_.load(std::memory_order_relaxed);
  st.pushed = pushed_total();  // read last: never fewer than popped + dropped
  const std::uint64_t out = st.popped + st.dropped;
  st.buffered = st.pushed > out ? st.pushed - out : 0;
  const std::uint64_t d = demand_.load(std::memory_order_acquire);
  st.parked = static_cast<std::uint32_t>(parked_of(d));
  st.spinning = static_cast<std::uint32_t>(spinning_of(d));
  return st;
}

}  // namespace pushstage::detail
