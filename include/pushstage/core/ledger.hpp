// pushstage/core/ledger.hpp: counts what a Pipeline accepted and has not yet acknowledged, by
// epoch, so that a barrier knows when everything accepted before it is done (GenStage's
// sync_info, for every partition at once).
//
// Threading: every member is safe from any thread.
// Progress:  enter() and leave() never wait (a leave that completes an epoch takes a mutex);
//            barrier() never waits for messages.
//
// Epochs. A message enters the current epoch when it is accepted and leaves it once acknowledged.
// barrier() closes the current epoch and opens the next; the barrier is passed once every epoch up
// to the one it closed is empty. Counts live in a ring of kSlots counters (epoch % kSlots), each
// on its own cache line; while its epoch is the current one a counter also holds one "open" unit,
// so only a closed epoch can reach 0.
//   (LG1) enter: e = current_ (seq_cst); count[e] += 1 (seq_cst); read current_ again (seq_cst).
//         Still e: the message is in e. Else it undoes its add (a leave of e) and tries again.
//   (LG2) close (barrier(), under mutex_): count[e + 1] += 1, the open unit (relaxed: published by
//         the store that follows); current_ = e + 1 (seq_cst); count[e] -= 1, e's open unit
//         (seq_cst, as a leave).
//   (LG3) leave: count[e] -= n (acq_rel); the leave that takes a counter to 0 reports its slot.
//   (LG4) a report (under mutex_): the epoch that occupies the slot, if closed and its counter
//         reads 0 (acquire), is done; done epochs are retired oldest first, each passing its
//         barriers. A barrier that finds the ring full (kSlots epochs not retired, the current
//         one included) waits on the current epoch, which is closed as soon as the oldest
//         retires: such a barrier may also wait for messages that enter after it until then.
// Invariant: a counter is at least its open unit plus the messages of its epoch that have not
//   left. Every change is an add; a stale enter (one that read an old epoch, even one whose slot
//   was reused) adds 1 and later takes the same 1 away. So a closed epoch reads 0 only once each
//   of its messages has left; (LG4) re-reads the counter and asks which epoch holds the slot, so a
//   stale report completes nothing.
// Ordering: an enter that reads e twice around its add has its add before (LG2)'s store of
//   current_ in the single order of seq_cst operations, hence before (LG2)'s removal of the open
//   unit in count[e]'s modification order: e cannot be done before that message leaves. (LG3)'s
//   release and (LG4)'s acquire (the release sequence of the counter's read-modify-writes) make
//   everything an acknowledgement did happen-before the barrier's completion.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <future>
#include <mutex>
#include <vector>

#include "pushstage/core/cache_line.hpp"

namespace pushstage::detail {

class Ledger {
 public:
  static constexpr std::size_t kSlots = 32;

  Ledger();
  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  // (LG1): counts one message in the current epoch; returns the epoch, for leave().
  [[nodiscard]] std::uint64_t enter() noexcept {
    for (;;) {
      // LG1, all three seq_cst: the add and the second read pair with LG2's store of current_ and
      // its removal of the open unit (see Ordering).
      const std::uint64_t e = current_.load(std::memory_order_seq_cst);
      slot(e).fetch_add(1, std::memory_order_seq_cst);
      if (current_.load(std::memory_order_seq_cst) == e) [[likely]]
        return e;
      leave(e, 1);  // the epoch was closed meanwhile: the message belongs to the next one
    }
  }
  // (LG3): n messages of epoch e are done (acknowledged, or never accepted after all).
  void leave(std::uint64_t e, std::int64_t n = 1) noexcept {
    if (slot(e).fetch_sub(n, std::memory_order_acq_rel) == n) report(e % kSlots);  // LG3
  }

  // Closes the current epoch (LG2); the future is ready once every message that entered before
  // this call (every enter() that returned before it) has left. May throw std::bad_alloc.
  [[nodiscard]] std::future<void> barrier();

 private:
  struct Epoch {
    bool closed = false;
    bool done = false;
    std::vector<std::promise<void>> barriers;  // passed when this epoch and all before are done
  };
  struct alignas(kCacheLine) Counter {
    std::atomic<std::int64_t> count{0};
  };
  static_assert(sizeof(Counter) == kCacheLine);

  std::atomic<std::int64_t>& slot(std::uint64_t e) noexcept { return counters_[e % kSlots].count; }
  // (LG4).
  void report(std::size_t slot_index) noexcept;
  // (LG2) for the current epoch. Caller holds mutex_; the ring has a free slot.
  void close_current_locked() noexcept;
  // (LG4) for epoch e: done when closed and its counter reads 0; then retires what it can.
  void check_locked(std::uint64_t e) noexcept;

  Counter counters_[kSlots];
  // Written under mutex_ only (LG2); read by every enter().
  alignas(kCacheLine) std::atomic<std::uint64_t> current_{0};
  std::mutex mutex_;
  Epoch epochs_[kSlots];       // guarded by mutex_: epoch e at e % kSlots, for oldest_ <= e
  std::uint64_t oldest_ = 0;   // guarded by mutex_: the oldest epoch not retired
  bool close_wanted_ = false;  // guarded by mutex_: a barrier waits for a free slot
};

}  // namespace pushstage::detail
