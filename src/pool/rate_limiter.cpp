// rate_limiter.cpp: the fixed-window counter of pushstage/pool/rate_limiter.hpp, under one mutex.
// Every member takes mutex_ for a few instructions; acquire() waits on room_ (a condition
// variable tied to mutex_) until the window ends or set_rate() notifies it, so neither a grant nor
// a rate change can be missed by a waiter.
#include "pushstage/pool/rate_limiter.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace pushstage {
namespace {

constexpr std::uint64_t kMaxAllowed = std::uint64_t{1} << 62;
constexpr std::chrono::nanoseconds kMinInterval = std::chrono::microseconds(1);
constexpr std::chrono::nanoseconds kMaxInterval = std::chrono::hours(24);

}  // namespace

void RateLimiter::validate(std::uint64_t allowed, std::chrono::nanoseconds interval) {
  if (allowed < 1 || allowed > kMaxAllowed) {
    throw std::invalid_argument("RateLimiter: allowed must be in [1, 2^62]; got " +
                                std::to_string(allowed));
  }
  if (interval < kMinInterval || interval > kMaxInterval) {
    throw std::invalid_argument(
        "RateLimiter: interval must be in [1 us, 24 h] = [1000, 86400000000000] ns; got " +
        std::to_string(interval.count()) + " ns");
  }
}

RateLimiter::RateLimiter(std::uint64_t allowed, std::chrono::nanoseconds interval)
    : allowed_(allowed), interval_(interval), window_start_(Clock::now()) {
  validate(allowed, interval);
}

void RateLimiter::roll(Clock::time_point now) {
  if (now - window_start_ < interval_) return;
  const auto windows = (now - window_start_) / interval_;
  window_start_ += windows * interval_;
  used_ = 0;
}

std::uint64_t RateLimiter::acquire_up_to(std::uint64_t n) {
  if (n == 0) return 0;
  std::unique_lock lock(mutex_);
  for (;;) {
    roll(Clock::now());
    if (used_ < allowed_) {
      const std::uint64_t take = std::min(n, allowed_ - used_);
      used_ += take;
      granted_ += take;
      return take;
    }
    // Spent: sleep until this window ends (or set_rate() starts a new one).
    room_.wait_until(lock, window_start_ + interval_);
  }
}

void RateLimiter::acquire(std::uint64_t n) {
  while (n != 0) n -= acquire_up_to(n);
}

bool RateLimiter::try_acquire(std::uint64_t n) {
  const std::lock_guard lock(mutex_);
  roll(Clock::now());
  if (n > allowed_ - used_) return false;
  used_ += n;
  granted_ += n;
  return true;
}

void RateLimiter::set_rate(std::uint64_t allowed, std::chrono::nanoseconds interval) {
  validate(allowed, interval);
  {
    const std::lock_guard lock(mutex_);
    allowed_ = allowed;
    interval_ = interval;
    window_start_ = Clock::now();
    used_ = 0;
  }
  room_.notify_all();
}

RateLimiter::Rate RateLimiter::rate() const {
  const std::lock_guard lock(mutex_);
  return {allowed_, interval_};
}

std::uint64_t RateLimiter::granted() const {
  const std::lock_guard lock(mutex_);
  return granted_;
}

}  // namespace pushstage
