// slots.cpp: leasing and freeing the slots of core/slots.hpp.
#include "pushstage/core/slots.hpp"

namespace pushstage::detail {

template <class Slot>
SlotList<Slot>::~SlotList() {
  Slot* s = head_.load(std::memory_order_acquire);
  while (s != nullptr) {
    Slot* next = s->next;
    delete s;
    s = next;
  }
}

template <class Slot>
Slot& SlotList<Slot>::lease() {
  for (Slot* s = head_.load(std::memory_order_seq_cst); s != nullptr; s = s->next) {
    bool expected = false;
    // acquire: pairs with give_back()'s release, so we continue the previous owner's counter.
    if (!s->leased.load(std::memory_order_relaxed) &&
        s->leased.compare_exchange_strong(expected, true, std::memory_order_acquire,
                                          std::memory_order_relaxed)) {
      return *s;
    }
  }
  auto* s = new Slot;
  s->leased.store(true, std::memory_order_relaxed);
  s->next = head_.load(std::memory_order_relaxed);
  // seq_cst (release at least): a reader that loads the head sees the slot initialised, and a
  // count advanced on this slot before a consumer's (W1) is reached by that consumer's (W2).
  while (!head_.compare_exchange_weak(s->next, s, std::memory_order_seq_cst,
                                      std::memory_order_relaxed)) {
  }
  return *s;
}

template class SlotList<ProducerSlot>;
template class SlotList<ConsumerSlot>;

}  // namespace pushstage::detail
