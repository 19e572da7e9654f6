// pushstage/core/close_gate.hpp: how close() refuses new pushes and waits for the pushes already
// in progress, with no read-modify-write on the push path: (P0) and (P4) on the producer's own
// slot, (K1)-(K4) in close(). The protocol, with the tags, is in core/queue_core.hpp.
//
// Threading: begin() and end() are called by a producer slot's lessee; the rest from any thread.
// Progress:  begin() and end() never wait. finish_close() waits for pushes between their (P0) and
//            (P4), which never wait for consumers (a producer blocked for room is released first).
#pragma once

#include <atomic>

#include "pushstage/core/cache_line.hpp"
#include "pushstage/core/slots.hpp"

namespace pushstage::detail {

class CloseGate {
 public:
  // Decides, once per process, whether close() can use membarrier (then begin() needs only a
  // compiler barrier) or both sides use seq_cst fences. fast_push: (P2) is a plain store too
  // (DispatcherOptions::fast_push), when membarrier is available.
  explicit CloseGate(bool fast_push = false) noexcept;

  // (P0). False when closed: the caller must not enqueue.
  [[nodiscard]] bool begin(ProducerSlot& slot) noexcept {
    slot.pushing.store(1, std::memory_order_relaxed);  // P0; ordered by the light fence
    light_fence();                                     // pairs with K2
    if (closed_.load(std::memory_order_relaxed)) [[unlikely]] {
      slot.pushing.store(0, std::memory_order_release);
      return false;
    }
    return true;
  }
  // (P4): the push that began is over (enqueued and counted, or abandoned).
  static void end(ProducerSlot& slot) noexcept {
    slot.pushing.store(0, std::memory_order_release);  // P4 pairs with K3
  }

  // (K1). False if it was closed already: the first caller does the rest.
  [[nodiscard]] bool begin_close() noexcept {
    return !closed_.exchange(true, std::memory_order_seq_cst);  // K1
  }
  // (K2)-(K4): waits until every push that passed (P0) has ended, then makes the counts final.
  void finish_close(const SlotList<ProducerSlot>& producers) noexcept;

  [[nodiscard]] bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }
  // (P2) is a plain store, ordered before (P3) by the asymmetric pair: the light fence after it,
  // the heavy fence before a second (W2)/(S2) read (core/queue_core.hpp). Fixed at construction.
  [[nodiscard]] bool fast_push() const noexcept { return fast_push_; }
  // (W2)'s read of final_: seq_cst, Dekker with (K4)/(K5) against (W1).
  [[nodiscard]] bool final() const noexcept { return final_.load(std::memory_order_seq_cst); }

  // The push side of the asymmetric pairs (P0)/(K2) and (P2)->(P3)/(W2, S2): a compiler barrier
  // when the rare side can use membarrier, else a seq_cst thread fence.
  void light_fence() const noexcept {
    if (asymmetric_) {
      std::atomic_signal_fence(std::memory_order_seq_cst);
    } else {
      std::atomic_thread_fence(std::memory_order_seq_cst);
    }
  }

 private:
  // Read by every push; written once, by close().
  alignas(kCacheLine) std::atomic<bool> closed_{false};
  std::atomic<bool> final_{false};
  const bool asymmetric_;  // close() may use membarrier: (P0) needs only a compiler barrier
  const bool fast_push_;   // (P2) is a plain store (asymmetric_ and DispatcherOptions::fast_push)
};

}  // namespace pushstage::detail
