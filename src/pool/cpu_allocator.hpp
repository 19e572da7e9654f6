// cpu_allocator.hpp: how many pinned pool consumers of this process run on each CPU, so that pools
// started one after another spread over the CPUs instead of all starting on the first one.
// Threading: every member is safe from any thread. One mutex guards the counts: a consumer takes
//            its CPU when its thread starts and gives it back when it ends, never per event.
// Rule:      an automatic consumer takes, among the CPUs it may use, the one with the fewest
//            consumers counted (ties: the lowest id); a consumer with named CPUs
//            (PoolOptions::cpus) takes the one its index names, however loaded, and counts like any
//            other. Unpinned consumers are never counted.
// Not guaranteed: threads pinned by other means (pin_this_thread(), taskset, other processes) are
//            not seen; a CPU given up by the affinity mask keeps its count until given back.
#pragma once

#include <array>
#include <cstddef>
#include <mutex>
#include <span>
#include <vector>

namespace pushstage::detail {

class CpuAllocator {
 public:
  // CPU ids are in [0, kMaxCpus): the range of a cpu_set_t (checked in cpu_allocator.cpp).
  static constexpr int kMaxCpus = 1024;

  // The one allocator of this process.
  static CpuAllocator& instance() noexcept;

  // Counts one more consumer on the least loaded of `candidates` (ties: the lowest id) and returns
  // it. `candidates`: not empty, each in [0, kMaxCpus).
  int take_least_loaded(std::span<const int> candidates) noexcept;
  // Counts one more consumer on `cpu`, in [0, kMaxCpus).
  void take(int cpu) noexcept;
  // Counts one consumer fewer on `cpu`: one that take_least_loaded() or take() counted.
  void give_back(int cpu) noexcept;
  // The CPUs that `n` consumers would get now from take_least_loaded(candidates), one after
  // another. Counts nothing.
  [[nodiscard]] std::vector<int> preview(std::span<const int> candidates, std::size_t n) const;

 private:
  static int least_loaded(const std::array<std::size_t, kMaxCpus>& load,
                          std::span<const int> candidates) noexcept;

  mutable std::mutex mutex_;
  std::array<std::size_t, kMaxCpus> load_{};  // consumers counted per CPU id
};

}  // namespace pushstage::detail
