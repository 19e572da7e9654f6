// close_gate.cpp: the waiting half of close() (core/close_gate.hpp; tags: core/queue_core.hpp).
#include "pushstage/core/close_gate.hpp"

#include <sched.h>

#include "asymmetric_fence.hpp"

namespace pushstage::detail {

CloseGate::CloseGate(bool fast_push) noexcept
    : asymmetric_(asymmetric_fence_available()), fast_push_(fast_push && asymmetric_) {}

void CloseGate::finish_close(const SlotList<ProducerSlot>& producers) noexcept {
  heavy_fence();  // K2 pairs with P0's light fence
  // K3: wait for every push that read closed_ == false to end. Pushes are short and never wait for
  // consumers (a Block wait ends at the room's closed bit, set before this), so this is a bounded
  // wait.
  for (ProducerSlot* s = producers.first(std::memory_order_seq_cst); s != nullptr; s = s->next) {
    while (s->pushing.load(std::memory_order_acquire) != 0) sched_yield();  // pairs with P4
  }
  final_.store(true, std::memory_order_seq_cst);  // K4 pairs with W2
}

}  // namespace pushstage::detail
