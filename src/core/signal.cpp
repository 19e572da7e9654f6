// signal.cpp: the system calls of pushstage/core/signal.hpp (its protocol block explains them).
#include "pushstage/core/signal.hpp"

#include <climits>

#include "futex.hpp"

namespace pushstage::detail {

void Signal::sleep(std::uint32_t s, std::chrono::nanoseconds timeout) noexcept {
  if (timeout == std::chrono::nanoseconds::max()) {
    futex_wait(&seq_, s, nullptr);
  } else {
    futex_wait(&seq_, s, &timeout);
  }
}

void Signal::wake_sleepers() noexcept { futex_wake(&seq_, INT_MAX); }

}  // namespace pushstage::detail
