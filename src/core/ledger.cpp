// ledger.cpp: closing and retiring epochs (the protocol block is in pushstage/core/ledger.hpp).
#include "pushstage/core/ledger.hpp"

#include <utility>

namespace pushstage::detail {

Ledger::Ledger() {
  counters_[0].count.store(1, std::memory_order_relaxed);  // epoch 0's open unit; not yet shared
}

std::future<void> Ledger::barrier() {
  std::promise<void> passed;
  std::future<void> f = passed.get_future();
  const std::lock_guard lock(mutex_);
  const std::uint64_t e = current_.load(std::memory_order_relaxed);  // written under mutex_ only
  epochs_[e % kSlots].barriers.push_back(std::move(passed));
  if (e - oldest_ + 1 < kSlots) {
    close_current_locked();
  } else {
    close_wanted_ = true;  // the ring is full: closed once the oldest epoch retires (LG4)
  }
  return f;
}

void Ledger::close_current_locked() noexcept {
  const std::uint64_t e = current_.load(std::memory_order_relaxed);  // written under mutex_ only
  const std::uint64_t next = e + 1;
  Epoch& opening = epochs_[next % kSlots];
  opening.closed = false;
  opening.done = false;
  // LG2: the open unit of `next`, relaxed: the seq_cst store below publishes it to enter().
  slot(next).fetch_add(1, std::memory_order_relaxed);
  current_.store(next, std::memory_order_seq_cst);  // LG2 pairs with LG1's second read
  epochs_[e % kSlots].closed = true;
  // LG2: e's open unit, after the store above (seq_cst, as a leave; see the Ordering note).
  if (slot(e).fetch_sub(1, std::memory_order_seq_cst) == 1) check_locked(e);
}

void Ledger::report(std::size_t slot_index) noexcept {
  const std::lock_guard lock(mutex_);
  const std::uint64_t newest = current_.load(std::memory_order_relaxed);  // under mutex_
  for (std::uint64_t e = oldest_; e <= newest; ++e) {
    if (e % kSlots == slot_index) {
      check_locked(e);
      return;
    }
  }
  // A stale enter's undo on a slot no epoch holds: nothing to do.
}

void Ledger::check_locked(std::uint64_t e) noexcept {
  Epoch& epoch = epochs_[e % kSlots];
  // acquire: pairs with every leave's release (LG3) through the counter's release sequence.
  if (!epoch.closed || epoch.done || slot(e).load(std::memory_order_acquire) != 0) return;
  epoch.done = true;
  const std::uint64_t newest = current_.load(std::memory_order_relaxed);  // under mutex_
  while (oldest_ < newest && epochs_[oldest_ % kSlots].done) {
    Epoch& retired = epochs_[oldest_ % kSlots];
    for (std::promise<void>& p : retired.barriers) p.set_value();
    retired.barriers.clear();
    ++oldest_;
  }
  if (close_wanted_ && newest - oldest_ + 1 < kSlots) {
    close_wanted_ = false;
    close_current_locked();
  }
}

}  // namespace pushstage::detail
