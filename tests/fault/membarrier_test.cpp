// membarrier_test.cpp: close() never degrades one side of the asymmetric fence alone. Producers
// that chose the light fence (a compiler barrier) rely on close()'s membarrier; when that call
// fails, close() retries it and, if it keeps failing, aborts with a message instead of falling
// back to a thread fence that would pair with nothing (a push could then be accepted after close()
// returned). The failure is injected through the private hook of src/asymmetric_fence.hpp.
#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <optional>

#include "asymmetric_fence.hpp"
#include "pushstage/dispatcher.hpp"

namespace pushstage {
namespace {

std::atomic<int> calls{0};
std::atomic<int> failures_left{0};

long failing_membarrier(int cmd, unsigned flags, int cpu_id) {
  calls.fetch_add(1);
  if (failures_left.fetch_sub(1) > 0) {
    errno = ENOMEM;
    return -1;
  }
  return syscall(SYS_membarrier, cmd, flags, cpu_id);
}

class MembarrierFailure : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!detail::asymmetric_fence_available()) {
      GTEST_SKIP() << "membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) is not available here";
    }
    calls = 0;
  }
  void TearDown() override { detail::set_membarrier_call_for_testing(nullptr); }
};

TEST_F(MembarrierFailure, CloseRetriesUntilTheHeavyFenceSucceeds) {
  failures_left = 3;
  detail::set_membarrier_call_for_testing(&failing_membarrier);
  Dispatcher<int> d;
  ASSERT_EQ(d.push(1), PushResult::Pushed);
  d.close();
  EXPECT_EQ(calls.load(), 4) << "close() must retry a failed membarrier, not fall back";
  EXPECT_EQ(d.push(2), PushResult::Closed);
  EXPECT_EQ(d.pop(), std::optional<int>(1));
  EXPECT_EQ(d.pop(), std::nullopt);
}

TEST_F(MembarrierFailure, CloseAbortsWhenTheHeavyFenceKeepsFailing) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        failures_left = 1'000'000;
        detail::set_membarrier_call_for_testing(&failing_membarrier);
        Dispatcher<int> d;
        d.close();
      },
      "membarrier\\(MEMBARRIER_CMD_PRIVATE_EXPEDITED\\) failed 20 times .*aborting");
}

}  // namespace
}  // namespace pushstage
