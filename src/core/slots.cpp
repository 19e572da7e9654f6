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

namespace {
// acquire: pairs with give_back()'s release, so the new lessee continues the previous one's
// counter. The relaxed load first keeps a leased slot's line shared instead of taking it over.
template <class Slot>
bool try_lease(Slot& s) noexcept {
  bool expected = false;
  return !s.leased.load(std::memory_order_relaxed) &&
         s.leased.compare_exchange_strong(expected, true, std::memory_order_acquire,
                                          std::memory_order_relaxed);
}
}  // namespace

template <class Slot>
Slot& SlotList<Slot>::lease(Slot* hint) {
  if (hint != nullptr && try_lease(*hint)) return *hint;
  for (Slot* s = head_.load(std::memory_order_seq_cst); s != nullptr; s = s->next) {
    if (try_lease(*s)) return *s;
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
