// pushstage/pool/rate_limiter.hpp: Broadway's rate limiting: at most `allowed` events per interval,
// shared by every pool that holds the limiter (PoolOptions::rate_limit), changeable while they run.
//
// Threading: every member is safe from any thread.
// Progress:  acquire() and acquire_up_to() sleep while the current window's allowance is spent;
//            try_acquire(), set_rate() and the getters never wait (beyond a short mutex hold).
// Ordering:  windows are fixed and back to back, window k spanning
//            [start + k * interval, start + (k + 1) * interval), where start is the
//            construction or the last set_rate(). At most `allowed` units are
//            granted per window, exactly. A pool takes a grant right before it calls the handler
//            for that event (or chunk), retries included, so handler calls follow the grants.
// Memory:    a mutex guards the window; grants publish nothing else.
// Not guaranteed: a bound over sliding intervals (like Broadway's: up to 2 x allowed across a
//            window boundary); which waiting thread is served first.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace pushstage {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  struct Rate {
    std::uint64_t allowed = 0;
    std::chrono::nanoseconds interval{0};
  };

  // allowed in [1, 2^62], interval in [1 us, 1 day]; std::invalid_argument names the one out of
  // range. The first window starts now.
  RateLimiter(std::uint64_t allowed, std::chrono::nanoseconds interval);
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // Takes n units, waiting for as many windows as it needs (n may exceed `allowed`).
  void acquire(std::uint64_t n = 1);
  // Takes between 1 and n units (n >= 1) from the current window, waiting for a window with room
  // if this one is spent. Returns how many it took; all of them are granted in one window.
  std::uint64_t acquire_up_to(std::uint64_t n);
  // Takes n units from the current window if it has room for all of them; never waits.
  [[nodiscard]] bool try_acquire(std::uint64_t n = 1);

  // Changes the rate and starts a new window now (what the old window granted no longer counts).
  // Threads waiting for room re-check at once. Same ranges as the constructor.
  void set_rate(std::uint64_t allowed, std::chrono::nanoseconds interval);
  [[nodiscard]] Rate rate() const;
  // Units granted since construction.
  [[nodiscard]] std::uint64_t granted() const;

 private:
  static void validate(std::uint64_t allowed, std::chrono::nanoseconds interval);
  // Moves the window forward to the one containing `now`. Caller holds mutex_.
  void roll(Clock::time_point now);

  mutable std::mutex mutex_;
  std::condition_variable room_;  // notified by set_rate(); waiters also wake at the window's end
  std::uint64_t allowed_;
  std::chrono::nanoseconds interval_;
  Clock::time_point window_start_;
  std::uint64_t used_ = 0;     // granted in the current window
  std::uint64_t granted_ = 0;  // granted in all
};

}  // namespace pushstage
