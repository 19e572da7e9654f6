// blocked_push.hpp: the check that close() never waits for a consumer, for any dispatch mode.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "pushstage/dispatcher_options.hpp"

namespace pushstage::test {

// Runs `push` (a push that waits for room nobody makes) on a thread of its own, lets it reach its
// wait (best effort: the check holds either way), then closes with `close` on another thread.
// close() must return (guarded by 10 s) and the push must return Closed. If close() waits,
// `make_room` is called so that the test can end, and the check fails.
template <class Push, class Close, class MakeRoom>
void expect_close_releases_a_blocked_push(Push push, Close close, MakeRoom make_room) {
  using namespace std::chrono_literals;
  std::promise<PushResult> blocked_result;
  std::thread blocked([&] { blocked_result.set_value(push()); });
  std::this_thread::sleep_for(20ms);
  auto closing = std::async(std::launch::async, close);
  const bool returned = closing.wait_for(10s) == std::future_status::ready;
  EXPECT_TRUE(returned) << "close() waited for a consumer";
  if (!returned) make_room();
  closing.wait();
  blocked.join();
  EXPECT_EQ(blocked_result.get_future().get(), PushResult::Closed);
}

}  // namespace pushstage::test
