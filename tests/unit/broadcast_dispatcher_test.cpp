// broadcast_dispatcher_test.cpp: BroadcastDispatcher alone, under pools, behind a Stage.
#include "pushstage/modes/broadcast_dispatcher.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
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

// Mirrors GenStage's broadcast_dispatcher_test "subscribes and cancels".
TEST(BroadcastDispatcher, ASubscriberJoinsAndLeaves) {
  BroadcastDispatcher<int> b(0);
  EXPECT_EQ(b.subscribers(), 0U);
  {
    auto sub = b.subscribe();
    EXPECT_EQ(b.subscribers(), 1U);
    EXPECT_FALSE(sub.left());
    ASSERT_EQ(b.push(1), PushResult::Pushed);
    EXPECT_EQ(sub.dispatcher().try_pop(), std::optional<int>(1));
    sub.leave();
    EXPECT_TRUE(sub.left());
    EXPECT_EQ(b.subscribers(), 0U);
    EXPECT_TRUE(sub.dispatcher().drained());
    sub.leave();  // idempotent
  }
  const BroadcastStats s = b.stats();
  EXPECT_EQ(s.left, 1U);
  EXPECT_EQ(s.pushed, 1U);
  EXPECT_TRUE(s.subscribers.empty());
  EXPECT_FALSE(b.closed());
}

// Mirrors "subscribes, asks and dispatches to multiple consumers" (its late subscriber): a
// subscriber receives what is pushed after it joined, and the others are unaffected.
TEST(BroadcastDispatcher, ALateSubscriberReceivesWhatIsPushedAfterItJoined) {
  BroadcastDispatcher<int> b(1);
  auto producer = b.producer();
  ASSERT_EQ(producer.push(1), PushResult::Pushed);
  ASSERT_EQ(b.push(2), PushResult::Pushed);
  auto late = b.subscribe();
  ASSERT_EQ(producer.push(3), PushResult::Pushed);  // the handle notices the new subscriber
  ASSERT_EQ(b.push(4), PushResult::Pushed);
  auto drain = [](Dispatcher<int>& d) {
    std::vector<int> got;
    while (auto e = d.try_pop()) got.push_back(*e);
    std::sort(got.begin(), got.end());  // two producers: no order across them
    return got;
  };
  EXPECT_EQ(drain(b.subscriber(0)), (std::vector<int>{1, 2, 3, 4}));
  EXPECT_EQ(drain(late.dispatcher()), (std::vector<int>{3, 4}));
  EXPECT_EQ(b.stats().subscribers.size(), 2U);
}

// A subscriber that leaves hands what it had buffered to on_drop (Cancelled), exactly once, and
// the pushes after it skip it; the others miss nothing.
TEST(BroadcastDispatcher, ALeavingSubscribersBufferedCopiesGoToOnDrop) {
  Counted::reset();
  {
    std::vector<std::uint64_t> cancelled;
    BroadcastDispatcher<Counted> b(1, BroadcastDispatcher<Counted>::default_options(), {},
                                   [&](Counted&& e, DropReason why) {
                                     EXPECT_EQ(why, DropReason::Cancelled);
                                     cancelled.push_back(e.value);
                                   });
    auto sub = b.subscribe();
    auto producer = b.producer();
    for (std::uint64_t i = 0; i < 3; ++i) ASSERT_EQ(producer.push(Counted(i)), PushResult::Pushed);
    EXPECT_EQ(sub.dispatcher().try_pop()->value, 0U);  // its consumer took one
    sub.leave();
    EXPECT_EQ(cancelled, (std::vector<std::uint64_t>{1, 2}));
    for (std::uint64_t i = 3; i < 5; ++i) ASSERT_EQ(producer.push(Counted(i)), PushResult::Pushed);
    EXPECT_EQ(cancelled.size(), 2U);  // no copy for it any more
    for (std::uint64_t i = 0; i < 5; ++i) EXPECT_EQ(b.subscriber(0).try_pop()->value, i);
    const BroadcastStats s = b.stats();
    EXPECT_EQ(s.cancelled, 2U);
    EXPECT_EQ(s.subscribers.size(), 1U);
    EXPECT_EQ(sub.dispatcher().stats().pushed, 3U);
  }
  EXPECT_EQ(Counted::live.load(), 0);
}

// Mirrors gen_stage_test "with shared (broadcast) demand and synchronizer subscriber": a
// subscriber that takes nothing holds every producer back; once it leaves, the producer that
// waits for its room goes on, and the other subscriber receives every event, in order.
TEST(BroadcastDispatcher, TheOthersStopWaitingForASubscriberThatLeaves) {
  std::atomic<int> cancelled{0};
  BroadcastDispatcher<int> b(0, BroadcastDispatcher<int>::default_options(), {},
                             [&](int&&, DropReason why) {
                               EXPECT_EQ(why, DropReason::Cancelled);
                               cancelled.fetch_add(1);
                             });
  BroadcastDispatcher<int>::SubscriberOptions two;
  two.buffer.capacity = 2;
  auto stale = b.subscribe(two);  // never drained
  auto live = b.subscribe();
  PoolOptions o;
  o.pin = false;
  std::mutex m;
  std::vector<int> got;
  ConsumerPool<int> pool(live, o, [&](int& e) {
    const std::lock_guard lock(m);
    got.push_back(e);
  });
  std::atomic<int> pushed{0};
  std::thread producer([&] {
    auto p = b.producer();
    for (int i = 0; i < 100; ++i) {
      ASSERT_EQ(p.push(i), PushResult::Pushed);
      pushed.fetch_add(1);
    }
  });
  while (stale.dispatcher().stats().buffered < 2) std::this_thread::yield();
  std::this_thread::sleep_for(20ms);  // give a wrong broadcast time to push past the stale one
  EXPECT_EQ(pushed.load(), 2);
  stale.leave();
  producer.join();
  b.close();
  pool.join();
  std::vector<int> want(100);
  for (int i = 0; i < 100; ++i) want[static_cast<std::size_t>(i)] = i;
  EXPECT_EQ(got, want);
  EXPECT_EQ(cancelled.load(), 2);
  EXPECT_EQ(b.stats().cancelled, 2U);
}

// finish(): the subscriber takes no more, and its consumers take what it had buffered.
TEST(BroadcastDispatcher, AFinishedSubscribersConsumersTakeWhatItBuffered) {
  std::atomic<int> dropped{0};
  BroadcastDispatcher<int> b(1, BroadcastDispatcher<int>::default_options(), {},
                             [&](int&&, DropReason) { dropped.fetch_add(1); });
  auto sub = b.subscribe();
  for (int i = 0; i < 5; ++i) ASSERT_EQ(b.push(i), PushResult::Pushed);
  sub.finish();
  ASSERT_EQ(b.push(5), PushResult::Pushed);
  std::atomic<int> handled{0};
  {
    PoolOptions o;
    o.pin = false;
    ConsumerPool<int> pool(sub, o, [&](int&) { handled.fetch_add(1); });
    pool.join();  // it drains: finished subscriptions are closed
  }
  EXPECT_EQ(handled.load(), 5);
  EXPECT_EQ(dropped.load(), 0);
  EXPECT_EQ(b.subscriber(0).stats().buffered, 6U);
}

// Mirrors gen_stage_test "handle_cancel/3 with temporary subscription", "... with normal
// transient subscription", "... with non-normal transient subscription" and "... with permanent
// subscription", seen from the source: what the last subscriber's leaving does to it.
TEST(BroadcastDispatcher, CancelModesDecideWhatTheLastLeaveDoes) {
  auto options = [](CancelMode mode) {
    BroadcastDispatcher<int>::SubscriberOptions o;
    o.cancel = mode;
    return o;
  };
  {  // Temporary: stays open; pushes without subscribers are discarded, to on_drop.
    std::vector<int> discarded;
    BroadcastDispatcher<int> b(0, BroadcastDispatcher<int>::default_options(), {},
                               [&](int&& e, DropReason why) {
                                 EXPECT_EQ(why, DropReason::Discarded);
                                 discarded.push_back(e);
                               });
    EXPECT_EQ(b.push(1), PushResult::Discarded);  // none yet
    auto sub = b.subscribe(options(CancelMode::Temporary));
    sub.leave(LeaveReason::Failed);
    EXPECT_FALSE(b.closed());
    EXPECT_EQ(b.push(2), PushResult::Discarded);
    EXPECT_EQ(discarded, (std::vector<int>{1, 2}));
    EXPECT_EQ(b.stats().discarded, 2U);
  }
  {  // Permanent: the last leave closes it, whatever the reason.
    BroadcastDispatcher<int> b(0);
    auto first = b.subscribe(options(CancelMode::Permanent));
    auto second = b.subscribe(options(CancelMode::Permanent));
    first.leave();
    EXPECT_FALSE(b.closed());  // one is left
    second.leave();
    EXPECT_TRUE(b.closed());
    EXPECT_EQ(b.push(1), PushResult::Closed);
  }
  {  // Transient: closes only when the last leaves for another reason than Normal.
    BroadcastDispatcher<int> b(0);
    b.subscribe(options(CancelMode::Transient)).leave(LeaveReason::Normal);
    EXPECT_FALSE(b.closed());
    b.subscribe(options(CancelMode::Transient)).leave(LeaveReason::Failed);
    EXPECT_TRUE(b.closed());
  }
  {  // The constructor's subscribers never leave: a subscription leaving beside them closes
     // nothing.
    BroadcastDispatcher<int> b(1);
    b.subscribe(options(CancelMode::Permanent)).leave();
    EXPECT_FALSE(b.closed());
  }
}

TEST(BroadcastDispatcher, SubscribingToAClosedBroadcastGivesADrainedSubscription) {
  BroadcastDispatcher<int> b(0);
  auto before = b.subscribe();
  ASSERT_EQ(b.push(1), PushResult::Pushed);
  b.close();
  EXPECT_TRUE(before.dispatcher().closed());
  auto after = b.subscribe();
  EXPECT_TRUE(after.dispatcher().drained());
  PoolOptions o;
  o.pin = false;
  std::atomic<int> handled{0};
  ConsumerPool<int> pool(before, o, [&](int&) { handled.fetch_add(1); });
  pool.join();
  EXPECT_EQ(handled.load(), 1);
}

// Mirrors gen_stage_test "with shared (broadcast) demand" (one consumer with max_demand 10, the
// other 20): each subscription has its own pool, with its own demand; each gets every event.
TEST(BroadcastDispatcher, EachSubscriberHasItsOwnMaxDemand) {
  BroadcastDispatcher<int> b(0);
  auto ten = b.subscribe();
  auto twenty = b.subscribe();
  struct Seen {
    std::mutex m;
    std::vector<int> events;
    std::size_t largest_chunk = 0;
  };
  Seen seen10;
  Seen seen20;
  auto pool_over = [](BroadcastDispatcher<int>::Subscription& sub, std::size_t max_demand,
                      Seen& seen) {
    PoolOptions o;
    o.pin = false;
    o.max_demand = max_demand;
    o.min_demand = 0;
    return std::make_unique<ConsumerPool<int>>(sub, o, [&seen](std::span<int> chunk) {
      const std::lock_guard lock(seen.m);
      seen.largest_chunk = std::max(seen.largest_chunk, chunk.size());
      seen.events.insert(seen.events.end(), chunk.begin(), chunk.end());
    });
  };
  auto pool10 = pool_over(ten, 10, seen10);
  auto pool20 = pool_over(twenty, 20, seen20);
  auto producer = b.producer();
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(producer.push(i), PushResult::Pushed);
  b.close();
  pool10->join();
  pool20->join();
  std::vector<int> want(1000);
  for (int i = 0; i < 1000; ++i) want[static_cast<std::size_t>(i)] = i;
  EXPECT_EQ(seen10.events, want);
  EXPECT_EQ(seen20.events, want);
  EXPECT_LE(seen10.largest_chunk, 10U);
  EXPECT_LE(seen20.largest_chunk, 20U);
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
              BroadcastDispatcher<int> b(1025);
            }).find("BroadcastDispatcher: subscribers must be in [0, 1024]; got 1025"),
            std::string::npos);
  BroadcastDispatcher<int> none(0);
  EXPECT_EQ(message_of([&] {
              BroadcastDispatcher<int>::SubscriberOptions o;
              o.buffer.capacity = 0;
              (void)none.subscribe(o);
            }),
            "BroadcastDispatcher::subscribe: options.buffer.capacity must be in [1, 2147483647] (a "
            "bounded buffer per subscriber); got 0");
  EXPECT_EQ(message_of([&] {
              BroadcastDispatcher<int>::SubscriberOptions o;
              o.buffer.overflow = Overflow::Reject;
              (void)none.subscribe(o);
            }),
            "BroadcastDispatcher::subscribe: options.buffer.overflow must be Block (the slowest "
            "subscriber sets the pace)");
  {
    BroadcastDispatcher<int> full(1024);
    EXPECT_THROW((void)full.subscribe(), std::length_error);
  }
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
