// rate_limiter_test.cpp: RateLimiter alone and in pools. Windows of an hour make the counts exact
// on any machine (a window never ends during a test); the one timed test asserts a lower bound.
#include "pushstage/pool/rate_limiter.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include "pushstage/dispatcher.hpp"
#include "pushstage/pool/consumer_pool.hpp"

namespace pushstage {
namespace {

using namespace std::chrono_literals;

TEST(RateLimiter, GrantsAtMostTheAllowanceOfAWindow) {
  RateLimiter limiter(3, 1h);
  EXPECT_TRUE(limiter.try_acquire());
  EXPECT_TRUE(limiter.try_acquire(2));
  EXPECT_FALSE(limiter.try_acquire());
  EXPECT_EQ(limiter.granted(), 3U);
}

TEST(RateLimiter, AcquireUpToTakesWhatIsLeftInTheWindow) {
  RateLimiter limiter(5, 1h);
  EXPECT_EQ(limiter.acquire_up_to(3), 3U);
  EXPECT_EQ(limiter.acquire_up_to(10), 2U);
  EXPECT_FALSE(limiter.try_acquire());
}

TEST(RateLimiter, SetRateStartsANewWindowAndWakesWaiters) {
  RateLimiter limiter(1, 1h);
  limiter.acquire();
  std::atomic<bool> got{false};
  std::thread waiter([&] {
    limiter.acquire();  // the window is spent: waits for set_rate
    got.store(true);
  });
  std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(got.load());
  limiter.set_rate(10, 1h);
  waiter.join();
  EXPECT_TRUE(got.load());
  EXPECT_EQ(limiter.rate().allowed, 10U);
  EXPECT_EQ(limiter.rate().interval, 1h);
  EXPECT_EQ(limiter.granted(), 2U);
}

TEST(RateLimiter, AcquireSpreadsOverWindows) {
  // 20 units at 5 per 20 ms need at least 4 windows: at least 60 ms from the first window's start.
  // start is read before the limiter exists, so it is never later than that first window's start.
  const auto start = std::chrono::steady_clock::now();
  RateLimiter limiter(5, 20ms);
  limiter.acquire(20);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 60ms);
  EXPECT_EQ(limiter.granted(), 20U);
}

TEST(RateLimiter, InvalidRatesNameTheArgument) {
  auto message_of = [](std::uint64_t allowed, std::chrono::nanoseconds interval) -> std::string {
    try {
      RateLimiter limiter(allowed, interval);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message_of(0, 1s).find("RateLimiter: allowed must be in [1, 2^62]; got 0"),
            std::string::npos);
  EXPECT_NE(message_of(1, 10ns).find("RateLimiter: interval must be in [1 us, 24 h]"),
            std::string::npos);
  RateLimiter ok(1, 1s);
  EXPECT_THROW(ok.set_rate(1, 0ns), std::invalid_argument);
}

// A pool handles exactly the allowance and waits; raising the rate lets the rest through.
TEST(RateLimiter, LimitsAPoolAndChangesWhileItRuns) {
  for (const std::size_t max_demand : {std::size_t{1}, std::size_t{8}}) {
    Dispatcher<int> d;
    auto limiter = std::make_shared<RateLimiter>(10, 1h);
    PoolOptions o;
    o.consumers = 2;
    o.max_demand = max_demand;
    o.rate_limit = limiter;
    std::atomic<int> handled{0};
    ConsumerPool<int> pool(d, o, [&](int&) { handled.fetch_add(1); });
    for (int i = 0; i < 30; ++i) ASSERT_EQ(d.push(i), PushResult::Pushed);
    while (handled.load() < 10) std::this_thread::yield();
    std::this_thread::sleep_for(30ms);
    EXPECT_EQ(handled.load(), 10) << "max_demand " << max_demand;
    limiter->set_rate(1000, 1h);
    d.close();
    pool.join();
    EXPECT_EQ(handled.load(), 30);
    EXPECT_EQ(limiter->granted(), 30U);
  }
}

// A retry is a handler call too: it takes its grants again, for one event or a whole chunk.
TEST(RateLimiter, RetriesTakeTheirGrantsAgain) {
  PoolOptions o;
  o.consumers = 1;
  o.retry.max_attempts = 2;
  o.retry.backoff = 0ns;
  {
    Dispatcher<int> d;
    for (int i = 0; i < 10; ++i) ASSERT_EQ(d.push(i), PushResult::Pushed);
    d.close();
    o.rate_limit = std::make_shared<RateLimiter>(1000, 1h);
    bool thrown = false;  // the one consumer's
    ConsumerPool<int> pool(d, o, [&](int& e) {
      if (e == 3 && !std::exchange(thrown, true)) throw std::runtime_error("once");
    });
    pool.join();
    EXPECT_EQ(pool.stats()[0].handled, 10U);
    EXPECT_EQ(pool.stats()[0].retried, 1U);
    EXPECT_EQ(o.rate_limit->granted(), 11U);  // 10 events + 1 retry
  }
  {
    Dispatcher<int> d;
    for (int i = 0; i < 10; ++i) ASSERT_EQ(d.push(i), PushResult::Pushed);
    d.close();
    o.rate_limit = std::make_shared<RateLimiter>(1000, 1h);
    o.max_demand = 5;
    o.min_demand = 0;
    std::size_t retried_chunk = 0;  // the one consumer's
    ConsumerPool<int> pool(d, o, [&](std::span<int> events) {
      if (std::find(events.begin(), events.end(), 3) != events.end() && retried_chunk == 0) {
        retried_chunk = events.size();
        throw std::runtime_error("once");
      }
    });
    pool.join();
    EXPECT_EQ(pool.stats()[0].handled, 10U);
    EXPECT_EQ(pool.stats()[0].retried, 1U);
    ASSERT_NE(retried_chunk, 0U);
    EXPECT_EQ(o.rate_limit->granted(), 10U + retried_chunk);  // the whole chunk, again
  }
}

TEST(RateLimiter, OneLimiterLimitsSeveralPoolsTogether) {
  Dispatcher<int> a;
  Dispatcher<int> b;
  auto limiter = std::make_shared<RateLimiter>(12, 1h);
  PoolOptions o;
  o.rate_limit = limiter;
  std::atomic<int> handled{0};
  ConsumerPool<int> pa(a, o, [&](int&) { handled.fetch_add(1); });
  ConsumerPool<int> pb(
      b, o, [&](std::span<int> events) { handled.fetch_add(static_cast<int>(events.size())); });
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(a.push(i), PushResult::Pushed);
    ASSERT_EQ(b.push(i), PushResult::Pushed);
  }
  while (handled.load() < 12) std::this_thread::yield();
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(handled.load(), 12);
  limiter->set_rate(100, 1h);
  a.close();
  b.close();
  pa.join();
  pb.join();
  EXPECT_EQ(handled.load(), 40);
}

}  // namespace
}  // namespace pushstage
