// stage_test.cpp: Stage<In, Sink> and pipelines of stages: delivery, order, backpressure, close.
#include "pushstage/stage.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "pushstage/consumer_pool.hpp"
#include "test_payloads.hpp"

namespace pushstage {
namespace {

using namespace std::chrono_literals;
using test::MoveOnly;

DispatcherOptions bounded(std::size_t capacity) {
  DispatcherOptions o;
  o.capacity = capacity;
  return o;
}

PoolOptions one_consumer() {
  PoolOptions o;
  o.consumers = 1;
  return o;
}

// head -> to_string -> (twice) size -> tail: every event arrives, in order (one consumer each),
// and closing the head alone closes every stage in turn.
TEST(Stage, APipelineDeliversEverythingInOrderAndClosesInTurn) {
  Dispatcher<int> head(bounded(16));
  Dispatcher<std::string> middle(bounded(16));
  Dispatcher<std::size_t> tail(bounded(16));
  Stage to_string(head, middle, one_consumer(), [](int& e, Dispatcher<std::string>::Producer& out) {
    (void)out.push(std::to_string(e));
  });
  Stage sizes(middle, tail, one_consumer(),
              [](std::string& s, Dispatcher<std::size_t>::Producer& out) {
                (void)out.push(s.size());
                (void)out.push(s.size() * 10);
              });
  std::vector<std::size_t> seen;
  ConsumerPool<std::size_t> last(tail, one_consumer(), [&](std::size_t& e) { seen.push_back(e); });
  auto producer = head.producer();
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(producer.push(i), PushResult::Pushed);
  head.close();
  last.join();  // returns only after middle and tail were closed by their stages
  EXPECT_TRUE(head.drained());
  EXPECT_TRUE(middle.drained());
  EXPECT_TRUE(tail.drained());
  ASSERT_EQ(seen.size(), 2000U);
  for (int i = 0; i < 1000; ++i) {
    const std::size_t n = std::to_string(i).size();
    EXPECT_EQ(seen[2 * static_cast<std::size_t>(i)], n);
    EXPECT_EQ(seen[2 * static_cast<std::size_t>(i) + 1], n * 10);
  }
  EXPECT_EQ(to_string.stats()[0].handled, 1000U);
  EXPECT_EQ(sizes.stats()[0].handled, 1000U);
}

// A paused tail fills the bounded dispatchers behind it; the producer blocks; nothing is dropped
// or rejected anywhere; on resume everything arrives.
TEST(Stage, BackpressureReachesTheProducerAndDropsNothing) {
  Dispatcher<int> head(bounded(4));
  Dispatcher<int> middle(bounded(4));
  Stage pass(head, middle, one_consumer(),
             [](int& e, Dispatcher<int>::Producer& out) { (void)out.push(e); });
  std::atomic<int> handled{0};
  ConsumerPool<int> last(middle, one_consumer(), [&](int&) { handled.fetch_add(1); });
  last.pause();
  std::atomic<int> pushed{0};
  std::thread producer([&] {
    for (int i = 0; i < 100; ++i) {
      ASSERT_EQ(head.push(i), PushResult::Pushed);
      pushed.fetch_add(1);
    }
  });
  while (head.stats().buffered != 4 || middle.stats().buffered != 4) std::this_thread::yield();
  std::this_thread::sleep_for(20ms);
  // head 4 + middle 4 + at most one held by each consumer + the one the stage is emitting.
  EXPECT_LE(pushed.load(), 4 + 4 + 3);
  EXPECT_EQ(handled.load(), 0);
  last.resume();
  producer.join();
  head.close();
  last.join();
  EXPECT_EQ(handled.load(), 100);
  for (const DispatcherStats& s : {head.stats(), middle.stats()}) {
    EXPECT_EQ(s.rejected, 0U);
    EXPECT_EQ(s.dropped, 0U);
  }
}

TEST(Stage, BatchHandlersEmitWholeChunks) {
  Dispatcher<MoveOnly> head;
  Dispatcher<std::uint64_t> out;
  PoolOptions o = one_consumer();
  o.max_demand = 10;
  o.min_demand = 0;
  Stage sum(head, out, o,
            [](std::span<MoveOnly> events, Dispatcher<std::uint64_t>::Producer& emit) {
              std::uint64_t total = 0;
              for (MoveOnly& e : events) total += *e.value;
              (void)emit.push(total);
            });
  for (std::uint64_t i = 0; i < 100; ++i) ASSERT_EQ(head.push(MoveOnly(i)), PushResult::Pushed);
  head.close();
  sum.join();
  EXPECT_TRUE(out.closed());
  std::uint64_t total = 0;
  std::size_t batches = 0;
  while (auto e = out.try_pop()) {
    total += *e;
    ++batches;
  }
  EXPECT_EQ(total, 99U * 100 / 2);
  EXPECT_GE(batches, 10U);  // chunks of at most 10
}

// Two stages feed one sink: neither closes it; the user closes it after joining both.
TEST(Stage, SeveralStagesFeedOneSinkWhenTheyLeaveItOpen) {
  Dispatcher<int> a;
  Dispatcher<int> b;
  Dispatcher<int> merged;
  PoolOptions o;
  o.consumers = 2;
  o.close_sink = false;
  auto pass = [](int& e, Dispatcher<int>::Producer& out) { (void)out.push(e); };
  Stage from_a(a, merged, o, pass);
  Stage from_b(b, merged, o, pass);
  std::atomic<int> sum{0};
  ConsumerPool<int> last(merged, one_consumer(), [&](int& e) { sum.fetch_add(e); });
  for (int i = 1; i <= 100; ++i) {
    ASSERT_EQ(a.push(i), PushResult::Pushed);
    ASSERT_EQ(b.push(i), PushResult::Pushed);
  }
  a.close();
  from_a.join();
  EXPECT_FALSE(merged.closed());
  b.close();
  from_b.join();
  merged.close();
  last.join();
  EXPECT_EQ(sum.load(), 2 * 5050);
}

// Fan-in with the default close_sink: the sink closes only once the last of its upstream stages
// has drained, whatever order their sources close in, so no emit is refused (issue: 1-5 of 2,000
// events were lost, counted nowhere, when the first stage to drain closed the sink).
class FanIn : public ::testing::TestWithParam<int> {};

TEST_P(FanIn, TheSinkClosesAfterTheLastUpstreamDrains) {
  const int upstreams = GetParam();
  constexpr int kPerSource = 2000;
  std::vector<std::unique_ptr<Dispatcher<int>>> sources;
  for (int i = 0; i < upstreams; ++i) sources.push_back(std::make_unique<Dispatcher<int>>());
  std::atomic<int> dropped{0};
  Dispatcher<int> merged(DispatcherOptions{}, [&](int&&, DropReason) { dropped.fetch_add(1); });
  PoolOptions two;
  two.consumers = 2;
  two.pin = false;
  std::vector<std::unique_ptr<Stage<int, Dispatcher<int>>>> stages;
  for (auto& source : sources) {
    stages.push_back(std::make_unique<Stage<int, Dispatcher<int>>>(
        *source, merged, two, [](int& e, Dispatcher<int>::Producer& out) { (void)out.push(e); }));
  }
  std::atomic<int> handled{0};
  ConsumerPool<int> last(merged, two, [&](int&) { handled.fetch_add(1); });
  std::vector<std::thread> producers;
  for (std::size_t i = 0; i < sources.size(); ++i) {
    producers.emplace_back([&, i] {
      // The first source is pushed at once and closed; the others keep pushing, in slices with
      // pauses, long after the first stage has drained.
      for (int e = 0; e < kPerSource; ++e) {
        ASSERT_EQ(sources[i]->push(e), PushResult::Pushed);
        if (i > 0 && e % 200 == 199) {
          std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(i)));
        }
      }
      sources[i]->close();
    });
  }
  for (auto& t : producers) t.join();
  for (std::size_t i = 0; i + 1 < stages.size(); ++i) stages[i]->join();
  last.join();  // returns once the sink is closed and drained
  EXPECT_EQ(handled.load(), upstreams * kPerSource);
  EXPECT_EQ(dropped.load(), 0);
  EXPECT_EQ(merged.stats().refused_closed, 0U);
}

INSTANTIATE_TEST_SUITE_P(Upstreams, FanIn, ::testing::Values(2, 3));

// Emits refused by a sink that someone closed early reach the sink's on_drop: not lost unseen.
TEST(Stage, EmitsIntoAClosedSinkGoToItsOnDrop) {
  Dispatcher<int> head;
  std::atomic<int> dropped{0};
  Dispatcher<int> sink(DispatcherOptions{}, [&](int&&, DropReason why) {
    EXPECT_EQ(why, DropReason::Closed);
    dropped.fetch_add(1);
  });
  sink.close();
  Stage pass(head, sink, one_consumer(), [](int& e, Dispatcher<int>::Producer& out) {
    EXPECT_EQ(out.push(e), PushResult::Closed);
  });
  for (int i = 0; i < 10; ++i) ASSERT_EQ(head.push(i), PushResult::Pushed);
  head.close();
  pass.join();
  EXPECT_EQ(dropped.load(), 10);
}

// A stage refuses an empty handler (per event or per chunk) under its own name, before it starts:
// source and sink stay open.
TEST(Stage, AnEmptyHandlerIsReportedAsTheStages) {
  Dispatcher<int> head;
  Dispatcher<int> out;
  using Pass = Stage<int, Dispatcher<int>>;
  try {
    Pass stage(head, out, one_consumer(), Pass::Handler{});
    ADD_FAILURE() << "an empty handler was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "Stage: handler must not be empty");
  }
  try {
    Pass stage(head, out, one_consumer(), Pass::BatchHandler{});
    ADD_FAILURE() << "an empty batch handler was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "Stage: handler must not be empty");
  }
  EXPECT_FALSE(head.closed());
  EXPECT_FALSE(out.closed());
}

}  // namespace
}  // namespace pushstage
