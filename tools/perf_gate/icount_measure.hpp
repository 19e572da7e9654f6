// icount_measure.hpp: what the instruction-count drivers share (icount_driver.cpp and
// icount_tokenless.cpp): the fixed sizes, the check of each call's result and the measured loop.
#pragma once

#include <valgrind/callgrind.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>

namespace pushstage_icount {

// Events (or calls) each case measures. Fixed: the counts must repeat exactly.
inline constexpr std::uint64_t kOps = 1 << 15;
inline constexpr std::uint64_t kWarmup = 1 << 10;
inline constexpr std::size_t kBulk = 64;
inline constexpr std::size_t kBoundedCapacity = 1024;

// Counts calls that did not do what the case is about; any at all fails the driver.
extern std::uint64_t g_wrong;
inline void expect(bool ok) { g_wrong += ok ? 0 : 1; }

// Runs `body(ops)` once with instrumentation off (warm-up) and once counted.
template <class Body>
void measure(const char* name, std::uint64_t ops, std::uint64_t warmup, Body&& body) {
  body(warmup);
  CALLGRIND_START_INSTRUMENTATION;
  CALLGRIND_ZERO_STATS;
  body(ops);
  CALLGRIND_DUMP_STATS_AT(name);
  CALLGRIND_STOP_INSTRUMENTATION;
  std::printf("case %s ops %llu\n", name, static_cast<unsigned long long>(ops));
}

// Dispatcher::push and Dispatcher::try_pop without handles (icount_tokenless.cpp).
void push_pop_tokenless(const char* name);

}  // namespace pushstage_icount
