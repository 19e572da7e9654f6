// observer_test.cpp: what an Observer receives from each component: handler start, stop and
// exception, retries and dead letters, batches, drops and refusals with their reason, pause,
// resume, resize, close and drain; dispatch latency for stamped events; attached() before the
// first event and detached() after the last.
#include "pushstage/observe/observer.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "pushstage/pushstage.hpp"

namespace pushstage {
namespace {

using namespace std::chrono_literals;

struct Seen {
  Telemetry what;
  std::string component;
  std::size_t consumer;
  std::uint64_t count;
  std::chrono::nanoseconds duration;
  std::chrono::nanoseconds dispatch_latency;
  unsigned attempt;
  DropReason reason;
  FailureKind failure;
  BatchTrigger trigger;
  bool error;
  void* state;
};

// Keeps every event; attached() hands each component a number of its own as its state.
class Recorder final : public Observer {
 public:
  void* attached(const ComponentInfo& c) noexcept override {
    const std::lock_guard lock(mutex_);
    attached_.push_back(c.name);
    states_.push_back(std::make_unique<int>(static_cast<int>(states_.size())));
    by_name_[c.name] = states_.back().get();
    return states_.back().get();
  }
  void detached(const ComponentInfo& c) noexcept override {
    const std::lock_guard lock(mutex_);
    detached_.push_back(c.name);
    // An event after detached() would be a bug: detaching clears the state the events check.
    by_name_.erase(c.name);
  }
  void on_event(const TelemetryEvent& e) noexcept override {
    const std::lock_guard lock(mutex_);
    const auto it = by_name_.find(e.component.name);
    if (it == by_name_.end() || it->second != e.component.observer_state) ++stray_;
    events_.push_back({e.what, e.component.name, e.consumer, e.count, e.duration,
                       e.dispatch_latency, e.attempt, e.reason, e.failure, e.trigger,
                       static_cast<bool>(e.error), e.component.observer_state});
  }

  std::vector<Seen> events() const {
    const std::lock_guard lock(mutex_);
    return events_;
  }
  std::vector<Seen> of(Telemetry what) const {
    std::vector<Seen> out;
    for (const Seen& s : events()) {
      if (s.what == what) out.push_back(s);
    }
    return out;
  }
  std::size_t count(Telemetry what) const { return of(what).size(); }
  std::uint64_t total(Telemetry what) const {
    std::uint64_t n = 0;
    for (const Seen& s : of(what)) n += s.count;
    return n;
  }
  std::vector<std::string> attached_names() const {
    const std::lock_guard lock(mutex_);
    return attached_;
  }
  std::vector<std::string> detached_names() const {
    const std::lock_guard lock(mutex_);
    return detached_;
  }
  int stray() const {
    const std::lock_guard lock(mutex_);
    return stray_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<Seen> events_;
  std::vector<std::string> attached_;
  std::vector<std::string> detached_;
  std::vector<std::unique_ptr<int>> states_;
  std::map<std::string, void*> by_name_;
  int stray_ = 0;
};

PoolOptions observed_pool(const std::shared_ptr<Recorder>& r, std::string name,
                          std::size_t consumers = 1) {
  PoolOptions o;
  o.consumers = consumers;
  o.pin = false;
  o.name = std::move(name);
  o.observer = r;
  return o;
}

TEST(Observer, EachHandlerCallStartsAndStopsWithItsDuration) {
  constexpr int kEvents = 200;
  auto r = std::make_shared<Recorder>();
  {
    Dispatcher<int> d;
    ConsumerPool<int> pool(d, observed_pool(r, "o1.pool", 2), [](int&) {});
    for (int i = 0; i < kEvents; ++i) d.push(i);
    d.close();
    pool.join();
  }
  EXPECT_EQ(r->count(Telemetry::HandlerStart), std::size_t{kEvents});
  EXPECT_EQ(r->count(Telemetry::HandlerStop), std::size_t{kEvents});
  EXPECT_EQ(r->count(Telemetry::HandlerException), 0U);
  for (const Seen& s : r->of(Telemetry::HandlerStop)) {
    EXPECT_EQ(s.component, "o1.pool");
    EXPECT_EQ(s.count, 1U);
    EXPECT_EQ(s.attempt, 1U);
    EXPECT_GE(s.duration.count(), 0);
    EXPECT_LT(s.consumer, 2U);
  }
  // Events without a push stamp carry no dispatch latency.
  for (const Seen& s : r->of(Telemetry::HandlerStart)) EXPECT_EQ(s.dispatch_latency.count(), -1);
  EXPECT_EQ(r->count(Telemetry::Drained), 1U);
  EXPECT_EQ(r->stray(), 0);
  EXPECT_EQ(r->attached_names(), std::vector<std::string>{"o1.pool"});
  EXPECT_EQ(r->detached_names(), std::vector<std::string>{"o1.pool"});
}

TEST(Observer, BatchHandlerCallsCountTheirEvents) {
  constexpr int kEvents = 300;
  auto r = std::make_shared<Recorder>();
  Dispatcher<int> d;
  PoolOptions o = observed_pool(r, "o2.pool");
  o.max_demand = 16;
  std::atomic<int> seen{0};
  ConsumerPool<int> pool(
      d, o, [&](std::span<int> chunk) { seen.fetch_add(static_cast<int>(chunk.size())); });
  for (int i = 0; i < kEvents; ++i) d.push(i);
  d.close();
  pool.join();
  EXPECT_EQ(seen.load(), kEvents);
  EXPECT_EQ(r->total(Telemetry::HandlerStart), std::uint64_t{kEvents});
  EXPECT_EQ(r->total(Telemetry::HandlerStop), std::uint64_t{kEvents});
  for (const Seen& s : r->of(Telemetry::HandlerStart)) {
    EXPECT_GE(s.count, 1U);
    EXPECT_LE(s.count, 8U);  // chunks of max_demand - min_demand
  }
}

TEST(Observer, AThrowingHandlerReportsEachAttemptItsRetriesAndTheDeadLetter) {
  constexpr int kEvents = 5;
  auto r = std::make_shared<Recorder>();
  Dispatcher<int> d;
  PoolOptions o = observed_pool(r, "o3.pool");
  o.retry.max_attempts = 3;
  o.retry.backoff = 0ns;
  std::atomic<int> dead{0};
  ConsumerPool<int> pool(
      d, o, [](int&) { throw std::runtime_error("no"); },
      [&](int&, const Failure&) { dead.fetch_add(1); });
  for (int i = 0; i < kEvents; ++i) d.push(i);
  d.close();
  pool.join();
  EXPECT_EQ(dead.load(), kEvents);
  EXPECT_EQ(r->count(Telemetry::HandlerStart), std::size_t{3 * kEvents});
  EXPECT_EQ(r->count(Telemetry::HandlerException), std::size_t{3 * kEvents});
  EXPECT_EQ(r->count(Telemetry::HandlerStop), 0U);
  const auto retries = r->of(Telemetry::Retry);
  ASSERT_EQ(retries.size(), std::size_t{2 * kEvents});
  for (const Seen& s : retries) {
    EXPECT_TRUE(s.error);
    EXPECT_TRUE(s.attempt == 1 || s.attempt == 2);
  }
  const auto dead_letters = r->of(Telemetry::DeadLetter);
  ASSERT_EQ(dead_letters.size(), std::size_t{kEvents});
  for (const Seen& s : dead_letters) {
    EXPECT_EQ(s.attempt, 3U);
    EXPECT_EQ(s.failure, FailureKind::Threw);
    EXPECT_TRUE(s.error);
  }
  // Attempts are reported in order per event: 1, 2, 3.
  unsigned expected = 1;
  for (const Seen& s : r->of(Telemetry::HandlerException)) {
    EXPECT_EQ(s.attempt, expected);
    expected = expected == 3 ? 1 : expected + 1;
  }
}

struct Stamped {
  int value = 0;
  std::chrono::steady_clock::time_point pushed;
};
std::chrono::steady_clock::time_point pushstage_pushed_at(const Stamped& e) { return e.pushed; }
static_assert(StampedEvent<Stamped>);
static_assert(!StampedEvent<int>);

TEST(Observer, StampedEventsCarryTheirDispatchLatency) {
  constexpr int kEvents = 50;
  auto r = std::make_shared<Recorder>();
  Dispatcher<Stamped> d;
  ConsumerPool<Stamped> pool(d, observed_pool(r, "o4.pool"), [](Stamped&) {});
  const auto before = std::chrono::steady_clock::now();
  for (int i = 0; i < kEvents; ++i) d.push(Stamped{i, std::chrono::steady_clock::now()});
  d.close();
  pool.join();
  const auto bound = std::chrono::steady_clock::now() - before;
  const auto starts = r->of(Telemetry::HandlerStart);
  ASSERT_EQ(starts.size(), std::size_t{kEvents});
  for (const Seen& s : starts) {
    EXPECT_GE(s.dispatch_latency.count(), 0);
    EXPECT_LE(s.dispatch_latency, bound);  // within the test's own span, whatever the speed
  }
}

TEST(Observer, DropsAndRefusalsComeWithTheirReason) {
  auto r = std::make_shared<Recorder>();
  {
    DispatcherOptions o;
    o.name = "o5.drop_oldest";
    o.capacity = 2;
    o.overflow = Overflow::DropOldest;
    o.observer = r;
    Dispatcher<int> d(o);
    for (int i = 0; i < 5; ++i) EXPECT_NE(d.push(i), PushResult::Closed);  // 3 dropped
    d.close();
    d.close();  // a second close is not reported again
    EXPECT_EQ(d.push(9), PushResult::Closed);
  }  // 2 left buffered: dropped as Destroyed
  {
    DispatcherOptions o;
    o.name = "o5.reject";
    o.capacity = 1;
    o.overflow = Overflow::Reject;
    o.observer = r;
    Dispatcher<int> d(o);
    EXPECT_EQ(d.push(1), PushResult::Pushed);
    EXPECT_EQ(d.push(2), PushResult::Rejected);
    int kept = 3;
    EXPECT_EQ(d.try_push(kept), PushResult::Rejected);  // handed back: not reported
    EXPECT_EQ(d.stats().rejected, 2U);
  }
  std::map<std::pair<std::string, int>, int> n;
  for (const Seen& s : r->events()) {
    if (s.what == Telemetry::Dropped || s.what == Telemetry::Refused) {
      EXPECT_EQ(s.count, 1U);
      ++n[{s.component, static_cast<int>(s.reason)}];
    }
  }
  EXPECT_EQ((n[{"o5.drop_oldest", static_cast<int>(DropReason::Oldest)}]), 3);
  EXPECT_EQ((n[{"o5.drop_oldest", static_cast<int>(DropReason::Closed)}]), 1);
  EXPECT_EQ((n[{"o5.drop_oldest", static_cast<int>(DropReason::Destroyed)}]), 2);
  EXPECT_EQ((n[{"o5.reject", static_cast<int>(DropReason::Rejected)}]), 1);
  EXPECT_EQ((n[{"o5.reject", static_cast<int>(DropReason::Destroyed)}]), 1);
  EXPECT_EQ(r->count(Telemetry::Closed), 1U);
  for (const Seen& s : r->of(Telemetry::Refused)) {
    EXPECT_TRUE(s.reason == DropReason::Rejected || s.reason == DropReason::Closed);
  }
  for (const Seen& s : r->of(Telemetry::Dropped)) {
    EXPECT_TRUE(s.reason == DropReason::Oldest || s.reason == DropReason::Destroyed);
  }
  EXPECT_EQ(r->stray(), 0);
  EXPECT_EQ(r->detached_names().size(), 2U);
}

TEST(Observer, PauseResumeAndResizeAreReportedOncePerChange) {
  auto r = std::make_shared<Recorder>();
  Dispatcher<int> d;
  ConsumerPool<int> pool(d, observed_pool(r, "o6.pool"), [](int&) {});
  pool.pause();
  pool.pause();
  pool.resume();
  pool.resume();
  pool.resize(3);
  pool.resize(1);
  d.close();
  pool.join();
  EXPECT_EQ(r->count(Telemetry::Paused), 1U);
  EXPECT_EQ(r->count(Telemetry::Resumed), 1U);
  const auto resized = r->of(Telemetry::Resized);
  ASSERT_EQ(resized.size(), 2U);
  EXPECT_EQ(resized[0].count, 3U);
  EXPECT_EQ(resized[1].count, 1U);
  EXPECT_EQ(r->count(Telemetry::Drained), 1U);
}

TEST(Observer, ABatcherReportsEachBatchWithItsSizeAndTrigger) {
  auto r = std::make_shared<Recorder>();
  {
    BatcherOptions o;
    o.name = "o7.batch";
    o.batch_size = 4;
    o.batch_timeout = std::chrono::hours(1);
    o.processors.pin = false;
    o.observer = r;
    Batcher<int> b(o, [](Batcher<int>::Batch&) {});
    for (int i = 0; i < 10; ++i) b.push(i);
    b.close();
    b.join();
  }
  const auto starts = r->of(Telemetry::BatchStart);
  const auto stops = r->of(Telemetry::BatchStop);
  ASSERT_EQ(starts.size(), 3U);
  ASSERT_EQ(stops.size(), 3U);
  std::uint64_t events = 0;
  int full = 0;
  int at_close = 0;
  for (const Seen& s : stops) {
    EXPECT_EQ(s.component, "o7.batch");
    EXPECT_FALSE(s.error);
    events += s.count;
    full += s.trigger == BatchTrigger::Full ? 1 : 0;
    at_close += s.trigger == BatchTrigger::Close ? 1 : 0;
  }
  EXPECT_EQ(events, 10U);
  EXPECT_EQ(full, 2);
  EXPECT_EQ(at_close, 1);
  // The processors are a pool of their own, observed by the batcher's observer.
  std::size_t processor_calls = 0;
  for (const Seen& s : r->of(Telemetry::HandlerStop)) {
    if (s.component == "o7.batch.processors") ++processor_calls;
  }
  EXPECT_EQ(processor_calls, 3U);
  EXPECT_EQ(r->count(Telemetry::Closed), 1U);  // the batcher's close, once
  EXPECT_EQ(r->stray(), 0);
}

TEST(Observer, APartitionDispatcherReportsItsPartsDropsAsItsOwn) {
  auto r = std::make_shared<Recorder>();
  {
    DispatcherOptions o;
    o.name = "o8.parts";
    o.capacity = 1;
    o.overflow = Overflow::Reject;
    o.observer = r;
    PartitionDispatcher<int> parts(
        2, [](const int& v) { return std::size_t(v); }, o);
    EXPECT_EQ(parts.push(0), PushResult::Pushed);
    EXPECT_EQ(parts.push(2), PushResult::Rejected);  // partition 0 is full
    EXPECT_EQ(parts.push(1), PushResult::Pushed);
    parts.close();
    parts.close();
    EXPECT_EQ(parts.push(3), PushResult::Closed);
  }
  const auto refused = r->of(Telemetry::Refused);
  ASSERT_EQ(refused.size(), 2U);
  for (const Seen& s : refused) EXPECT_EQ(s.component, "o8.parts");
  EXPECT_EQ(r->count(Telemetry::Closed), 1U);
  EXPECT_EQ(r->count(Telemetry::Dropped), 2U);  // the two left at destruction
  EXPECT_EQ(r->attached_names(), std::vector<std::string>{"o8.parts"});
  EXPECT_EQ(r->stray(), 0);
}

TEST(Observer, WithoutAnObserverNothingChanges) {
  Dispatcher<int> d;
  PoolOptions o;
  o.pin = false;
  std::atomic<int> handled{0};
  ConsumerPool<int> pool(d, o, [&](int&) { handled.fetch_add(1); });
  for (int i = 0; i < 100; ++i) d.push(i);
  d.close();
  pool.join();
  EXPECT_EQ(handled.load(), 100);
  EXPECT_EQ(pool.stats()[0].handled, 100U);
}

}  // namespace
}  // namespace pushstage
