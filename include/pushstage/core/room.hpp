// pushstage/core/room.hpp: the room of a bounded queue, exactly: producers reserve room by CAS
// before they enqueue, so `capacity` is never exceeded, and consumers give it back as they pop.
// Producers under Overflow::Block sleep on the room word itself. Tags (R1)-(R2), (B1)-(B2): the
// protocol block in core/queue_core.hpp.
//
// Threading: every member is safe from any thread.
// Progress:  try_reserve() and release() never wait; wait() sleeps until room may be free or the
//            room is closed.
#pragma once

#include <atomic>
#include <cstdint>

#include "pushstage/core/cache_line.hpp"
#include "pushstage/dispatcher_options.hpp"

namespace pushstage::detail {

class Room {
 public:
  static constexpr std::uint32_t kMaxCapacity = 0x7FFF'FFFF;  // one bit of the word is "closed"
  static constexpr std::uint32_t kMaxRequest = kMaxCapacity;

  // capacity 0: unbounded (no member but bounded() may be used). The caller validated both.
  Room(std::uint32_t capacity, Overflow overflow) noexcept
      : room_(capacity), bounded_(capacity != 0), overflow_(overflow) {}

  [[nodiscard]] bool bounded() const noexcept { return bounded_; }
  [[nodiscard]] Overflow overflow() const noexcept { return overflow_; }

  // Reserves up to n units; returns how many (0: full). Ignores close: the caller's (P0) already
  // decided whether the push is accepted.
  [[nodiscard]] std::uint32_t try_reserve(std::uint32_t n) noexcept {
    std::uint32_t r = room_.load(std::memory_order_relaxed);
    for (;;) {
      const std::uint32_t free = r & kFree;
      if (free == 0) return 0;
      const std::uint32_t take = n < free ? n : free;
      // acquire: pairs with a consumer's (R1), so the place it freed is really free.
      if (room_.compare_exchange_weak(r, r - take, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
        return take;
      }
    }
  }
  // (R1)+(R2): n units come back (popped, or reserved and not used).
  void release(std::uint32_t n) noexcept {
    room_.fetch_add(n, std::memory_order_seq_cst);                     // R1 pairs with B2
    if (blocked_.load(std::memory_order_seq_cst) != 0) [[unlikely]] {  // R2 pairs with B1
      wake_blocked(n);
    }
  }
  // (B1)+(B2): sleeps until room may be free (true: try again) or the room is closed (false).
  bool wait() noexcept;
  // Sets the closed bit and wakes every blocked producer; their wait() returns false.
  void close() noexcept;

 private:
  static constexpr std::uint32_t kClosed = 0x8000'0000;
  static constexpr std::uint32_t kFree = 0x7FFF'FFFF;

  void wake_blocked(std::uint32_t n) noexcept;

  // room_ = | closed: 1 bit | free room: 31 bits |, a futex word: written by every bounded push
  // and pop (the bound itself), so bounded_ and overflow_, read by every push, share its line.
  alignas(kCacheLine) std::atomic<std::uint32_t> room_;
  std::atomic<std::uint32_t> blocked_{0};
  const bool bounded_;
  const Overflow overflow_;
};

}  // namespace pushstage::detail
