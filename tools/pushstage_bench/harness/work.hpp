// work.hpp: the handlers' work: `ns` of a calibrated instruction loop (spin, CPU-bound work) or of
// sleep (like I/O). The in-process runs and the --broker workers do the same work.
// Threading: calibrate_spin_work() once, before starting threads or forking (it sets the rate the
//            loop runs at); do_work() from any thread afterwards.
#pragma once

#include <cstdint>

#include "harness/clocks.hpp"

namespace pushstage::bench {

enum class WorkMode { kSpin, kSleep };

// "spin" or "sleep": how the flags, the reports and the worker's arguments spell it.
[[nodiscard]] const char* work_mode_name(WorkMode mode) noexcept;

// Measures the spin loop (best of five) and returns its iterations per ns.
double calibrate_spin_work();

// n steps of a dependent multiply-add chain: no shortcut for the compiler, no memory traffic.
[[gnu::noinline]] std::uint64_t spin_iterations(std::uint64_t n) noexcept;

// Iterations of spin_iterations() per ns, as calibrate_spin_work() measured it (0 before).
extern double g_spin_iters_per_ns;

// `ns` of work. Inline: it runs between a handler's two stamps.
inline void do_work(WorkMode mode, std::int64_t ns) noexcept {
  if (mode == WorkMode::kSpin) {
    (void)spin_iterations(
        static_cast<std::uint64_t>(static_cast<double>(ns) * g_spin_iters_per_ns));
  } else {
    sleep_ns(ns);
  }
}

}  // namespace pushstage::bench
