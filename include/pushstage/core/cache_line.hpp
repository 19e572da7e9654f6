// pushstage/core/cache_line.hpp: cache-line size and the spin-wait pause, for the templates.
// Threading: constants and a stateless function; safe everywhere.
#pragma once

#include <cstddef>

namespace pushstage::detail {

// The line size we pad hot atomics to. 64 bytes on every x86-64 and most AArch64 parts; we do
// not use std::hardware_destructive_interference_size (GCC 12 warns on it, Clang 14 with
// libstdc++ lacks it).
inline constexpr std::size_t kCacheLine = 64;

// One pause of a spin-wait loop: tells the core that we are spinning, so it saves power and yields
// pipeline resources to the sibling hyperthread.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#else
  asm volatile("" ::: "memory");
#endif
}

}  // namespace pushstage::detail
