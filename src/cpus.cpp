// cpus.cpp: affinity queries and pinning with sched_{get,set}affinity; cache domains from hwloc.
//
// hwloc rather than reading /sys/devices/system/cpu by hand: it knows the cache hierarchy of every
// kernel and machine we may meet (and of VMs that describe theirs oddly), and it is one Debian
// package (libhwloc-dev).
#include "pushstage/cpus.hpp"

#include <hwloc.h>
#include <sched.h>

#include <algorithm>
#include <system_error>

namespace pushstage {
namespace {

// Per CPU (OS index): an id of its last-level cache, or -1. Built once, on first use.
class CacheDomains {
 public:
  CacheDomains() {
    hwloc_topology_t topology = nullptr;
    if (hwloc_topology_init(&topology) != 0) return;
    if (hwloc_topology_load(topology) == 0) {
      const int pus = hwloc_get_nbobjs_by_type(topology, HWLOC_OBJ_PU);
      for (int i = 0; i < pus; ++i) {
        const hwloc_obj_t pu =
            hwloc_get_obj_by_type(topology, HWLOC_OBJ_PU, static_cast<unsigned>(i));
        if (pu == nullptr || pu->os_index >= static_cast<unsigned>(CPU_SETSIZE)) continue;
        // The last-level cache: the cache ancestor farthest from the PU.
        hwloc_obj_t last = nullptr;
        for (hwloc_obj_t o = pu->parent; o != nullptr; o = o->parent) {
          if (hwloc_obj_type_is_cache(o->type) != 0) last = o;
        }
        if (last == nullptr) continue;
        if (id_.size() <= pu->os_index) id_.resize(pu->os_index + 1, -1);
        id_[pu->os_index] = static_cast<int>(last->gp_index);
      }
    }
    hwloc_topology_destroy(topology);
  }
  [[nodiscard]] int of(int cpu) const noexcept {
    return cpu >= 0 && static_cast<std::size_t>(cpu) < id_.size()
               ? id_[static_cast<std::size_t>(cpu)]
               : -1;
  }

 private:
  std::vector<int> id_;
};

const CacheDomains& cache_domains() {
  static const CacheDomains domains;  // thread-safe initialisation
  return domains;
}

}  // namespace

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) {
    throw std::system_error(errno, std::generic_category(), "sched_getaffinity");
  }
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  return cpus;
}

std::vector<int> cache_domain(int cpu) {
  const int id = detail::cache_domain_id(cpu);
  if (id < 0) return {cpu};
  std::vector<int> out;
  for (const int other : allowed_cpus()) {
    if (other == cpu || detail::cache_domain_id(other) == id) out.push_back(other);
  }
  if (std::find(out.begin(), out.end(), cpu) == out.end()) out.insert(out.begin(), cpu);
  return out;
}

bool pin_this_thread(int cpu) noexcept {
  if (cpu < 0 || cpu >= CPU_SETSIZE) return false;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof(set), &set) == 0;
}

bool pin_this_thread(const std::vector<int>& cpus) noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (const int cpu : cpus) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) return false;
    CPU_SET(cpu, &set);
  }
  return !cpus.empty() && sched_setaffinity(0, sizeof(set), &set) == 0;
}

namespace detail {
int cache_domain_id(int cpu) noexcept { return cache_domains().of(cpu); }
}  // namespace detail

}  // namespace pushstage
