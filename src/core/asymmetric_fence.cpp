// asymmetric_fence.cpp: membarrier(2) registration and the heavy fence.
#include "asymmetric_fence.hpp"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace pushstage::detail {
namespace {

long system_membarrier(int cmd, unsigned flags, int cpu_id) {
  return syscall(SYS_membarrier, cmd, flags, cpu_id);
}

// relaxed: set by a test before it uses a dispatcher, read by heavy_fence() on the closing thread.
std::atomic<MembarrierCall> membarrier_call{&system_membarrier};

long membarrier(int cmd) noexcept {
  return membarrier_call.load(std::memory_order_relaxed)(cmd, 0U, 0);
}

bool register_once() noexcept {
  // Registration is not injectable: it decides the light side once and for all.
  const long supported = system_membarrier(MEMBARRIER_CMD_QUERY, 0U, 0);
  if (supported < 0 || (supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
  return system_membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0U, 0) == 0;
}

}  // namespace

bool asymmetric_fence_available() noexcept {
  static const bool available = register_once();  // thread-safe initialisation
  return available;
}

void heavy_fence() noexcept {
  if (!asymmetric_fence_available()) {
    std::atomic_thread_fence(std::memory_order_seq_cst);  // both sides use full fences
    return;
  }
  // Producers already use the light fence: a seq_cst fence here would pair with nothing. Retry:
  // 10 quick attempts, then sleeps of 1, 2, 4 .. 512 ms (about 1 s in all).
  constexpr int kQuick = 10;
  constexpr int kSlow = 10;
  int error = 0;
  for (int attempt = 0; attempt < kQuick + kSlow; ++attempt) {
    if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return;
    error = errno;
    if (attempt >= kQuick) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1 << (attempt - kQuick)));
    }
  }
  std::fprintf(stderr,
               "pushstage: membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) failed %d times (%s); "
               "close() cannot order itself after pushes in progress without it: aborting\n",
               kQuick + kSlow, std::strerror(error));
  std::abort();
}

void set_membarrier_call_for_testing(MembarrierCall call) noexcept {
  membarrier_call.store(call != nullptr ? call : &system_membarrier, std::memory_order_relaxed);
}

}  // namespace pushstage::detail
