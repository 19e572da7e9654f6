// work.cpp: see work.hpp.
#include "harness/work.hpp"

#include <algorithm>
#include <limits>

namespace pushstage::bench {

double g_spin_iters_per_ns = 0;

const char* work_mode_name(WorkMode mode) noexcept {
  return mode == WorkMode::kSpin ? "spin" : "sleep";
}

std::uint64_t spin_iterations(std::uint64_t n) noexcept {
  std::uint64_t x = 0x9E3779B97F4A7C15ULL;
  for (std::uint64_t i = 0; i < n; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;  // a dependent chain: no shortcut
    asm volatile("" : "+r"(x));
  }
  return x;
}

double calibrate_spin_work() {
  constexpr std::uint64_t kIterations = 5'000'000;
  std::int64_t best = std::numeric_limits<std::int64_t>::max();
  for (int trial = 0; trial < 5; ++trial) {
    const std::int64_t t = now_ns();
    (void)spin_iterations(kIterations);
    best = std::min(best, now_ns() - t);
  }
  g_spin_iters_per_ns =
      static_cast<double>(kIterations) / static_cast<double>(std::max<std::int64_t>(best, 1));
  return g_spin_iters_per_ns;
}

}  // namespace pushstage::bench
