// room.cpp: blocked producers (core/room.hpp; tags: core/queue_core.hpp).
#include "pushstage/core/room.hpp"

#include <climits>

#include "futex.hpp"

namespace pushstage::detail {

bool Room::wait() noexcept {
  blocked_.fetch_add(1, std::memory_order_seq_cst);  // B1 pairs with R2
  bool open = true;
  for (;;) {
    const std::uint32_t r = room_.load(std::memory_order_seq_cst);  // B2 pairs with R1
    if ((r & kClosed) != 0) {
      open = false;
      break;
    }
    if ((r & kFree) != 0) break;
    futex_wait(&room_, r, nullptr);  // the kernel sleeps only while room_ still reads r
  }
  blocked_.fetch_sub(1, std::memory_order_relaxed);  // only makes a later R2 skip its wake
  return open;
}

void Room::close() noexcept {
  // Producers blocked for room hold their pushing flag: close() releases them before it waits
  // for pushes in progress (K3).
  room_.fetch_or(kClosed, std::memory_order_seq_cst);  // pairs with B2
  if (blocked_.load(std::memory_order_seq_cst) != 0) futex_wake(&room_, INT_MAX);
}

void Room::wake_blocked(std::uint32_t n) noexcept {
  futex_wake(&room_, n > static_cast<std::uint32_t>(INT_MAX) ? INT_MAX : static_cast<int>(n));
}

}  // namespace pushstage::detail
