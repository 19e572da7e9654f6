// broadcast_dispatcher_test.cpp: BroadcastDispatcher alone, under pools, behind a Stage.
#include "pushstage/modes/broadcast_dispatcher.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "blocked_push.hpp"
#include "pushstage/pool/consumer_pool.hpp"
#include "pushstage/stages/stage.hpp"
#include "test_payloads.hpp"

namespace pushstage {
namespace {

using namespace std::chrono_literals;
using test::Counted;

TEST(BroadcastDispatcher, EverySubscriberGetsEveryEventInOrder) {
  Counted::reset();
  {
    BroadcastDispatcher<Counted> b(3);
    auto producer = b.producer();
    for (std::uint64_t i = 0; i < 100; ++i)
      ASSERT_EQ(producer.push(Counted(i)), PushResult::Pushed);
    for (std::size_t s = 0; s < 3; ++s) {
      for (std::uint64_t i = 0; i < 100; ++i) {
        auto e = b.subscriber(s).try_pop();
        ASSERT_TRUE(e.has_value());
        EXPECT_EQ(e->value, i);
      }
    }
    EXPECT_EQ(Counted::copies.load(), 200);  // copies for two subscribers, a move for the last
    EXPECT_EQ(b.stats().pushed, 100U);
  }
  EXPECT_EQ(Counted::live.load(), 0);
}

TEST(BroadcastDispatcher, SelectorsFilterWhatASubscriberReceives) {
  std::vector<BroadcastDispatcher<int>::Selector> selectors = {
      [](const int& e) { return e % 2 == 0; }, nullptr, [](const int& e) { return e > 100; }};
  BroadcastDispatcher<int> b(3, BroadcastDispatcher<int>::default_options(), selectors);
  for (int i = 0; i < 10; ++i) ASSERT_EQ(b.push(i), PushResult::Pushed);
  const BroadcastStats s = b.stats();
  EXPECT_EQ(s.subscribers[0].pushed, 5U);
  EXPECT_EQ(s.subscribers[1].pushed, 10U);
  EXPECT_EQ(s.subscribers[2].pushed, 0U);
  EXPECT_EQ(s.filtered, (std::vector<std::uint64_t>{5, 0, 10}));
  EXPECT_EQ(b.subscriber(0).try_pop(), 0);
  EXPECT_EQ(b.subscriber(0).try_pop(), 2);
}

// A paused subscriber fills its buffer; then every producer waits: the other subscriber gets at
// most a buffer's worth ahead. On resume, both get everything.
TEST(BroadcastDispatcher, TheSlowestSubscriberSetsThePace) {
  DispatcherOptions o;
  o.capacity = 4;
  BroadcastDispatcher<int> b(2, o);
  std::atomic<int> fast{0};
  std::atomic<int> slow{0};
  PoolOptions one;
  one.consumers = 1;
  ConsumerPool<int> fast_pool(b.subscriber(0), one, [&](int&) { fast.fetch_add(1); });
  ConsumerPool<int> slow_pool(b.subscriber(1), one, [&](int&) { slow.fetch_add(1); });
  slow_pool.pause();
  std::atomic<int> pushed{0};
  std::thread producer([&] {
    for (int i = 0; i < 100; ++i) {
      ASSERT_EQ(b.push(i), PushResult::Pushed);
      pushed.fetch_add(1);
    }
  });
  while (b.stats().subscribers[1].buffered < 4) std::this_thread::yield();
  std::this_thread::sleep_for(20ms);
  const BroadcastStats s = b.stats();
  // The paused subscriber's buffer is full; the fast one's may momentarily be too (a tie).
  EXPECT_GE(s.subscribers[1].buffered, s.subscribers[0].buffered);
  EXPECT_LE(pushed.load(), 4 + 1);  // the slow buffer, plus one taken by the paused consumer
  EXPECT_LE(fast.load(), 4 + 2);
  EXPECT_EQ(slow.load(), 0);
  slow_pool.resume();
  producer.join();
  b.close();
  fast_pool.join();
  slow_pool.join();
  EXPECT_EQ(fast.load(), 100);
  EXPECT_EQ(slow.load(), 100);
}

// Closing one subscriber's Dispatcher detaches it: the others go on receiving; each copy it
// refuses goes to on_drop (Closed) and is counted, through push() and producer handles alike.
TEST(BroadcastDispatcher, AClosedSubscriberIsDetachedAndItsCopiesGoToOnDrop) {
  std::vector<int> dropped;  // on_drop runs on the pushing thread: this one
  BroadcastDispatcher<int> b(3, BroadcastDispatcher<int>::default_options(), {},
                             [&](int&& e, DropReason why) {
                               EXPECT_EQ(why, DropReason::Closed);
                               dropped.push_back(e);
                             });
  b.subscriber(1).close();
  for (int i = 0; i < 3; ++i) ASSERT_EQ(b.push(i), PushResult::Pushed);
  auto producer = b.producer();
  for (int i = 3; i < 6; ++i) ASSERT_EQ(producer.push(i), PushResult::Pushed);
  b.subscriber(2).close();  // the last subscriber: it gets the event moved, not a copy
  ASSERT_EQ(b.push(6), PushResult::Pushed);
  ASSERT_EQ(producer.push(7), PushResult::Pushed);
  EXPECT_EQ(dropped, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 6, 7, 7}));
  const BroadcastStats s = b.stats();
  EXPECT_EQ(s.refused, (std::vector<std::uint64_t>{0, 8, 2}));
  EXPECT_EQ(s.subscribers[0].pushed, 8U);
  EXPECT_EQ(s.subscribers[2].pushed, 6U);
  auto drain = [&](std::size_t i) {  // two producers (tokenless and a handle): no order across
    std::vector<int> got;
    while (auto e = b.subscriber(i).try_pop()) got.push_back(*e);
    std::sort(got.begin(), got.end());
    return got;
  };
  EXPECT_EQ(drain(0), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(drain(2), (std::vector<int>{0, 1, 2, 3, 4, 5}));
  EXPECT_TRUE(b.subscriber(1).drained());
}

TEST(BroadcastDispatcher, CountsPushesRefusedAfterClose) {
  BroadcastDispatcher<int> b(2);
  ASSERT_EQ(b.push(1), PushResult::Pushed);
  b.close();
  EXPECT_EQ(b.push(2), PushResult::Closed);
  auto producer = b.producer();
  EXPECT_EQ(producer.push(3), PushResult::Closed);
  const BroadcastStats s = b.stats();
  EXPECT_EQ(s.pushed, 1U);
  EXPECT_EQ(s.refused_closed, 2U);
}

// close() never waits for a consumer: a producer waiting for room in a subscriber that nobody
// drains is released with Closed, and its event reaches no subscriber (all or nothing).
TEST(BroadcastDispatcher, CloseReleasesAProducerWaitingForRoomNobodyMakes) {
  DispatcherOptions one;
  one.capacity = 1;
  std::vector<int> dropped;
  std::mutex m;
  BroadcastDispatcher<int> b(2, one, {}, [&](int&& e, DropReason why) {
    EXPECT_EQ(why, DropReason::Closed);
    const std::lock_guard lock(m);
    dropped.push_back(e);
  });
  ASSERT_EQ(b.push(1), PushResult::Pushed);  // both subscribers are full from here on
  test::expect_close_releases_a_blocked_push([&] { return b.push(2); }, [&] { b.close(); },
                                             [&] {
                                               (void)b.subscriber(0).try_pop();
                                               (void)b.subscriber(1).try_pop();
                                             });
  EXPECT_EQ(dropped, std::vector<int>{2});
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(b.subscriber(i).try_pop(), std::optional<int>(1));
    EXPECT_EQ(b.subscriber(i).try_pop(), std::nullopt);
    EXPECT_TRUE(b.subscriber(i).drained());
  }
  EXPECT_EQ(b.stats().refused_closed, 1U);
}

// The same from inside a subscriber's handler: the handler's own subscriber is the full one.
TEST(BroadcastDispatcher, CloseFromAHandlerWhileAProducerWaitsForItsRoom) {
  DispatcherOptions one;
  one.capacity = 1;
  BroadcastDispatcher<int> b(2, one);
  std::atomic<int> handled0{0};
  std::atomic<int> handled1{0};
  std::atomic<bool> closed_in_handler{false};
  PoolOptions o;
  o.consumers = 2;
  o.pin = false;
  std::atomic<std::size_t> next{0};
  ConsumerPool<int> pool(b, o, [&](int& e) {
    thread_local const std::size_t me = next.fetch_add(1);
    if (e == 0 && !closed_in_handler.exchange(true)) {
      std::this_thread::sleep_for(50ms);  // best effort: the producer fills the other buffer
      b.close();
    }
    (me == 0 ? handled0 : handled1).fetch_add(1);
  });
  int pushed = 0;
  for (int i = 0; i < 100; ++i) {
    if (b.push(i) != PushResult::Pushed) break;
    ++pushed;
  }
  pool.join();
  EXPECT_TRUE(closed_in_handler.load());
  EXPECT_LT(pushed, 100);
  EXPECT_EQ(handled0.load(), pushed);
  EXPECT_EQ(handled1.load(), pushed);
}

TEST(BroadcastDispatcher, APoolHasOneConsumerPerSubscriber) {
  BroadcastDispatcher<int> b(3);
  PoolOptions o;
  o.consumers = 3;
  o.max_demand = 8;
  std::atomic<int> sum{0};
  ConsumerPool<int> pool(b, o, [&](int& e) { sum.fetch_add(e); });
  for (int i = 1; i <= 100; ++i) ASSERT_EQ(b.push(i), PushResult::Pushed);
  b.close();
  pool.join();
  EXPECT_EQ(sum.load(), 3 * 5050);
  EXPECT_TRUE(b.drained());
  EXPECT_EQ(b.push(1), PushResult::Closed);
}

TEST(BroadcastDispatcher, AStageCanEmitIntoIt) {
  Dispatcher<int> head;
  BroadcastDispatcher<int> fan(2);
  PoolOptions one;
  one.consumers = 1;
  Stage double_it(head, fan, one,
                  [](int& e, BroadcastDispatcher<int>::Producer& out) { (void)out.push(2 * e); });
  PoolOptions two;
  two.consumers = 2;
  std::atomic<int> sum{0};
  ConsumerPool<int> pool(fan, two, [&](int& e) { sum.fetch_add(e); });
  for (int i = 1; i <= 10; ++i) ASSERT_EQ(head.push(i), PushResult::Pushed);
  head.close();
  pool.join();
  EXPECT_EQ(sum.load(), 2 * 2 * 55);
}

TEST(BroadcastDispatcher, InvalidUseNamesTheOption) {
  auto message_of = [](auto&& make) -> std::string {
    try {
      make();
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message_of([] {
              BroadcastDispatcher<int> b(0);
            }).find("BroadcastDispatcher: subscribers must be in [1, 1024]; got 0"),
            std::string::npos);
  EXPECT_NE(message_of([] {
              BroadcastDispatcher<int> b(2, DispatcherOptions{});
            }).find("BroadcastDispatcher: options.capacity must be in [1, 2147483647]"),
            std::string::npos);
  EXPECT_NE(message_of([] {
              DispatcherOptions o;
              o.capacity = 8;
              o.overflow = Overflow::DropOldest;
              BroadcastDispatcher<int> b(2, o);
            }).find("BroadcastDispatcher: options.overflow must be Block"),
            std::string::npos);
  EXPECT_NE(message_of([] {
              BroadcastDispatcher<int> b(2, BroadcastDispatcher<int>::default_options(), {nullptr});
            }).find("selectors must be empty or one per subscriber (2); got 1"),
            std::string::npos);
  BroadcastDispatcher<int> b(2);
  EXPECT_NE(message_of([&] { ConsumerPool<int> pool(b, PoolOptions{}, [](int&) {}); })
                .find("PoolOptions::consumers must be 2, one per subscriber of the "
                      "BroadcastDispatcher; got 1"),
            std::string::npos);
}

}  // namespace
}  // namespace pushstage
