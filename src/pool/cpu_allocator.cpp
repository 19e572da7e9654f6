// cpu_allocator.cpp: the process-wide count of pinned consumers per CPU (see cpu_allocator.hpp).
#include "cpu_allocator.hpp"

#include <sched.h>

namespace pushstage::detail {

static_assert(CpuAllocator::kMaxCpus == CPU_SETSIZE, "a CPU id is an index into a cpu_set_t");

CpuAllocator& CpuAllocator::instance() noexcept {
  static CpuAllocator allocator;
  return allocator;
}

int CpuAllocator::least_loaded(const std::array<std::size_t, kMaxCpus>& load,
                               std::span<const int> candidates) noexcept {
  int best = candidates.front();
  for (const int cpu : candidates) {
    const auto c = static_cast<std::size_t>(cpu);
    const auto b = static_cast<std::size_t>(best);
    if (load[c] < load[b] || (load[c] == load[b] && cpu < best)) best = cpu;
  }
  return best;
}

int CpuAllocator::take_least_loaded(std::span<const int> candidates) noexcept {
  const std::lock_guard lock(mutex_);
  const int cpu = least_loaded(load_, candidates);
  ++load_[static_cast<std::size_t>(cpu)];
  return cpu;
}

void CpuAllocator::take(int cpu) noexcept {
  const std::lock_guard lock(mutex_);
  ++load_[static_cast<std::size_t>(cpu)];
}

void CpuAllocator::give_back(int cpu) noexcept {
  const std::lock_guard lock(mutex_);
  --load_[static_cast<std::size_t>(cpu)];
}

std::vector<int> CpuAllocator::preview(std::span<const int> candidates, std::size_t n) const {
  std::array<std::size_t, kMaxCpus> load{};
  {
    const std::lock_guard lock(mutex_);
    load = load_;
  }
  std::vector<int> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(least_loaded(load, candidates));
    ++load[static_cast<std::size_t>(out.back())];
  }
  return out;
}

}  // namespace pushstage::detail
