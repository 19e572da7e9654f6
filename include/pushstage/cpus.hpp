// pushstage/cpus.hpp: which CPUs this process may run on, which of them share a cache, and pinning
// a thread to one CPU or to a set.
// Threading: safe from any thread. Platform: Linux (sched_getaffinity); the cache topology comes
//            from hwloc, read once per process.
#pragma once

#include <vector>

namespace pushstage {

// The CPUs in this process's affinity mask, ascending (what `taskset` or a cgroup allows).
[[nodiscard]] std::vector<int> allowed_cpus();

// The CPUs of allowed_cpus() that share `cpu`'s last-level cache ("its cache domain"), ascending,
// `cpu` included; {cpu} alone when the topology says nothing about caches or `cpu` is unknown.
[[nodiscard]] std::vector<int> cache_domain(int cpu);

// Pins the calling thread to `cpu`. Returns false (and leaves the thread as it was) if the kernel
// refuses, for example because `cpu` is not in the affinity mask.
bool pin_this_thread(int cpu) noexcept;
// Pins the calling thread to the set `cpus` (the kernel picks among them). Same failures.
bool pin_this_thread(const std::vector<int>& cpus) noexcept;

namespace detail {
// The same number for the CPUs of one cache domain, different numbers for different domains, -1
// for a CPU the topology does not know: a table lookup, for waking the nearest parked consumer
// (core/parking.hpp).
[[nodiscard]] int cache_domain_id(int cpu) noexcept;
}  // namespace detail

}  // namespace pushstage
