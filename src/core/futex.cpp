// futex.cpp: FUTEX_WAIT / FUTEX_WAKE on a process-private 32-bit word.
#include "futex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

namespace pushstage::detail {
namespace {

// The kernel reads the word behind the atomic; std::atomic<uint32_t> is a plain, lock-free
// 32-bit object (asserted in core/slots.hpp), so its address is the word's address.
std::uint32_t* raw(std::atomic<std::uint32_t>* word) noexcept {
  return reinterpret_cast<std::uint32_t*>(
      word);  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
}

}  // namespace

bool futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                const std::chrono::nanoseconds* timeout) noexcept {
  timespec ts{};
  if (timeout != nullptr) {
    const auto ns = timeout->count() > 0 ? timeout->count() : 0;
    ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  }
  const long rc = syscall(SYS_futex, raw(word), FUTEX_WAIT_PRIVATE, expected,
                          timeout != nullptr ? &ts : nullptr, nullptr, 0);
  return !(rc == -1 && errno == ETIMEDOUT);
}

void futex_wake(std::atomic<std::uint32_t>* word, int count) noexcept {
  syscall(SYS_futex, raw(word), FUTEX_WAKE_PRIVATE, count, nullptr, nullptr, 0);
}

}  // namespace pushstage::detail
