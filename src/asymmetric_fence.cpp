// asymmetric_fence.cpp: membarrier(2) registration and the heavy fence.
#include "asymmetric_fence.hpp"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

namespace pushstage::detail {
namespace {

long membarrier(int cmd) noexcept { return syscall(SYS_membarrier, cmd, 0U, 0); }

bool register_once() noexcept {
  const long supported = membarrier(MEMBARRIER_CMD_QUERY);
  if (supported < 0 || (supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
  return membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

}  // namespace

bool asymmetric_fence_available() noexcept {
  static const bool available = register_once();  // thread-safe initialisation
  return available;
}

void heavy_fence() noexcept {
  if (!asymmetric_fence_available() || membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0) {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
}

}  // namespace pushstage::detail
