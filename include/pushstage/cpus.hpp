// pushstage/cpus.hpp: which CPUs this process may run on, and pinning a thread to one of them.
// Threading: safe from any thread. Platform: Linux (sched_getaffinity).
#pragma once

#include <vector>

namespace pushstage {

// The CPUs in this process's affinity mask, ascending (what `taskset` or a cgroup allows).
[[nodiscard]] std::vector<int> allowed_cpus();

// Pins the calling thread to `cpu`. Returns false (and leaves the thread as it was) if the kernel
// refuses, for example because `cpu` is not in the affinity mask.
bool pin_this_thread(int cpu) noexcept;

}  // namespace pushstage
