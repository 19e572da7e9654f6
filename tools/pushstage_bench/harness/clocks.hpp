// clocks.hpp: what a run reads from the operating system: steady_clock stamps, CPU time of the
// process and of a thread, resident memory; and sleeping for a time or until a stamp.
// Threading: every function may be called from any thread.
// Timed path: now_ns() and sleep_ns() run between a handler's stamps and before an enqueue stamp,
//             so they are inline: a call into another file would add to every stamp.
#pragma once

#include <time.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <type_traits>

namespace pushstage::bench {

static_assert(std::is_same_v<std::chrono::steady_clock::duration, std::chrono::nanoseconds>,
              "stamps are steady_clock ticks taken as ns");

// steady_clock now, in ns since its epoch (the stamps every run records).
inline std::int64_t now_ns() noexcept {
  return std::chrono::steady_clock::now().time_since_epoch().count();
}

// Sleeps `ns` (nothing when ns <= 0), resuming after a signal.
inline void sleep_ns(std::int64_t ns) noexcept {
  if (ns <= 0) return;
  timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR) {
  }
}

// Sleeps until the now_ns() stamp `t` (steady_clock is CLOCK_MONOTONIC in libstdc++ on Linux).
inline void sleep_until_ns(std::int64_t t) noexcept {
  timespec ts{static_cast<time_t>(t / 1'000'000'000), static_cast<long>(t % 1'000'000'000)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

// Asks for 1 ns of timer slack on the calling thread, so that its sleeps end when asked.
void low_timer_slack() noexcept;

// CPU time of the whole process so far (getrusage: user + system), in ns.
std::int64_t process_cpu_ns() noexcept;
// CPU time of the calling thread so far, in ns.
std::int64_t thread_cpu_ns() noexcept;

// The process's peak resident set so far (getrusage), in KiB.
std::int64_t peak_rss_kb() noexcept;
// The process's resident set now (/proc/self/status), in KiB; 0 when it cannot be read.
std::int64_t current_rss_kb();

}  // namespace pushstage::bench
