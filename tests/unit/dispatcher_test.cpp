// dispatcher_test.cpp: the public API of Dispatcher<T>, member by member and option by option.
#include "pushstage/dispatcher.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "pushstage/cpus.hpp"
#include "test_payloads.hpp"

namespace pushstage {
namespace {

using namespace std::chrono_literals;
using test::Counted;
using test::MoveOnly;

DispatcherOptions no_spin() {
  DispatcherOptions o;
  o.spin = 0ns;  // consumers park at once: deterministic parking in tests
  return o;
}

// Waits (by yielding, bounded by ctest's TIMEOUT) until `n` consumers are parked.
template <class D>
void await_parked(const D& d, std::uint32_t n) {
  while (d.stats().parked != n) std::this_thread::yield();
}

TEST(Dispatcher, PushThenPopReturnsTheEvent) {
  Dispatcher<int> d;
  EXPECT_EQ(d.push(7), PushResult::Pushed);
  EXPECT_EQ(d.pop(), 7);
  EXPECT_EQ(d.try_pop(), std::nullopt);
}

TEST(Dispatcher, KeepsOneProducersOrder) {
  Dispatcher<int> d;
  auto producer = d.producer();
  auto consumer = d.consumer();
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(producer.push(i), PushResult::Pushed);
  for (int i = 0; i < 500; ++i) ASSERT_EQ(d.push(1000 + i), PushResult::Pushed);  // tokenless
  std::vector<int> from_handle;
  std::vector<int> from_thread;
  while (auto e = consumer.try_pop()) (*e < 1000 ? from_handle : from_thread).push_back(*e);
  ASSERT_EQ(from_handle.size(), 1000U);
  ASSERT_EQ(from_thread.size(), 500U);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(from_handle[static_cast<std::size_t>(i)], i);
  for (int i = 0; i < 500; ++i) EXPECT_EQ(from_thread[static_cast<std::size_t>(i)], 1000 + i);
}

TEST(Dispatcher, ConsumerRotatesToALightProducer) {
  // A heavy producer keeps its sub-queue full; one event of a light producer must not wait behind
  // the heavy backlog (moodycamel's default would serve 256 heavy events first).
  Dispatcher<int> d;
  auto heavy = d.producer();
  auto light = d.producer();
  auto consumer = d.consumer();
  int next = 0;
  for (int i = 0; i < 64; ++i) ASSERT_EQ(heavy.push(next++), PushResult::Pushed);
  ASSERT_TRUE(consumer.pop().has_value());  // the consumer settles on the heavy producer
  ASSERT_EQ(light.push(-1), PushResult::Pushed);
  int position = 0;
  for (;;) {
    ++position;
    // Two rotation quotas at most: the first rotation may land on the heavy producer again.
    ASSERT_LE(position, 2 * 16 + 1) << "the light producer's event is still waiting";
    if (*consumer.pop() == -1) break;
    ASSERT_EQ(heavy.push(next++), PushResult::Pushed);  // the backlog never shrinks
  }
}

TEST(Dispatcher, TryPopOnEmptyReturnsNullopt) {
  Dispatcher<int> d;
  EXPECT_EQ(d.try_pop(), std::nullopt);
  EXPECT_EQ(d.consumer().try_pop(), std::nullopt);
}

TEST(Dispatcher, PopForTimesOutOnEmpty) {
  Dispatcher<int> d(no_spin());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(d.pop_for(20ms), std::nullopt);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 20ms);  // a lower bound holds anywhere
  EXPECT_EQ(d.consumer().pop_for(-5ms), std::nullopt);        // negative: does not wait
  EXPECT_EQ(d.stats().parked, 0U);
  EXPECT_EQ(d.stats().spinning, 0U);
}

TEST(Dispatcher, PopForReturnsAnEventPushedWhileItWaits) {
  Dispatcher<int> d(no_spin());
  std::optional<int> got;
  std::thread consumer([&] { got = d.pop_for(std::chrono::hours(1)); });
  await_parked(d, 1);
  ASSERT_EQ(d.push(42), PushResult::Pushed);
  consumer.join();
  EXPECT_EQ(got, 42);
}

TEST(Dispatcher, PushWakesAParkedConsumer) {
  Dispatcher<int> d(no_spin());
  std::optional<int> got;
  std::thread consumer([&] { got = d.consumer().pop(); });
  await_parked(d, 1);
  EXPECT_EQ(d.stats().waiting(), 1U);
  ASSERT_EQ(d.push(5), PushResult::Pushed);
  consumer.join();
  EXPECT_EQ(got, 5);
  EXPECT_EQ(d.stats().waiting(), 0U);
}

// DispatcherOptions::fast_push: pushes publish their count with a plain store; a parked
// consumer is still woken, and one that parks after a burst still finds every event.
TEST(Dispatcher, FastPushWakesAParkedConsumerAndKeepsEveryEvent) {
  DispatcherOptions o = no_spin();
  o.fast_push = true;
  Dispatcher<int> d(o);
  std::vector<int> got;
  std::thread consumer([&] {
    auto c = d.consumer();
    while (std::optional<int> e = c.pop()) got.push_back(*e);
  });
  await_parked(d, 1);
  ASSERT_EQ(d.push(5), PushResult::Pushed);
  for (int i = 6; i < 1000; ++i) ASSERT_EQ(d.push(i), PushResult::Pushed);
  d.close();
  consumer.join();
  ASSERT_EQ(got.size(), 995U);
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], static_cast<int>(i) + 5);
  const DispatcherStats st = d.stats();
  EXPECT_EQ(st.pushed, 995U);
  EXPECT_EQ(st.popped, 995U);
}

// A Consumer handle's wait can be interrupted from another thread (pools use it to retire a
// consumer parked in its source without polling): take() returns Interrupted once, the consumer is
// no longer counted as waiting, and the next take() gets the next event.
TEST(Dispatcher, InterruptEndsAParkedConsumersTakeOnce) {
  Dispatcher<int> d(no_spin());
  auto c = d.consumer();
  const Interrupter stop = c.interrupter();
  TakeResult first = TakeResult::Got;
  std::thread consumer([&] {
    std::optional<int> e;
    first = c.take(e, std::chrono::steady_clock::time_point::max());
    EXPECT_EQ(e, std::nullopt);
  });
  await_parked(d, 1);
  stop.interrupt();
  consumer.join();
  EXPECT_EQ(first, TakeResult::Interrupted);
  EXPECT_EQ(d.stats().waiting(), 0U);
  ASSERT_EQ(d.push(9), PushResult::Pushed);
  std::optional<int> e;
  EXPECT_EQ(c.take(e, std::chrono::steady_clock::time_point::max()), TakeResult::Got);
  EXPECT_EQ(e, 9);
}

// An interrupt that comes before the wait is kept for it; pop() does not see interrupts at all.
TEST(Dispatcher, AnInterruptBeforeATakeIsKeptAndPopIgnoresIt) {
  Dispatcher<int> d;
  auto c = d.consumer();
  c.interrupter().interrupt();
  std::optional<int> e;
  EXPECT_EQ(c.take(e, std::chrono::steady_clock::time_point::max()), TakeResult::Interrupted);
  c.interrupter().interrupt();
  std::thread producer([&] {
    std::this_thread::sleep_for(5ms);
    ASSERT_EQ(d.push(4), PushResult::Pushed);
  });
  EXPECT_EQ(c.pop(), 4);  // the interrupt is still pending: pop() waits through it
  producer.join();
  EXPECT_EQ(c.take(e, std::chrono::steady_clock::time_point::max()), TakeResult::Interrupted);
  d.close();
  EXPECT_EQ(c.take(e, std::chrono::steady_clock::time_point::max()), TakeResult::Drained);
}

// wait_ready() waits for an event without taking it (manual demand takes credits only then).
TEST(Dispatcher, WaitReadyLeavesTheEventBuffered) {
  Dispatcher<int> d(no_spin());
  auto c = d.consumer();
  TakeResult ready = TakeResult::Interrupted;
  std::thread consumer([&] { ready = c.wait_ready(std::chrono::steady_clock::time_point::max()); });
  await_parked(d, 1);
  ASSERT_EQ(d.push(3), PushResult::Pushed);
  consumer.join();
  EXPECT_EQ(ready, TakeResult::Got);
  EXPECT_EQ(d.stats().buffered, 1U);
  EXPECT_EQ(c.try_pop(), 3);
  EXPECT_EQ(c.wait_ready(std::chrono::steady_clock::now()), TakeResult::TimedOut);
  d.close();
  EXPECT_EQ(c.wait_ready(std::chrono::steady_clock::time_point::max()), TakeResult::Drained);
}

// take() into a vector: at least one event, at most `max`, in push order.
TEST(Dispatcher, TakeMovesUpToMaxEvents) {
  Dispatcher<MoveOnly> d;
  auto c = d.consumer();
  for (std::uint64_t i = 0; i < 5; ++i) ASSERT_EQ(d.push(MoveOnly(i)), PushResult::Pushed);
  std::vector<MoveOnly> out;
  EXPECT_EQ(c.take(out, 3, std::chrono::steady_clock::time_point::max()), TakeResult::Got);
  ASSERT_EQ(out.size(), 3U);
  EXPECT_EQ(c.take(out, 3, std::chrono::steady_clock::time_point::max()), TakeResult::Got);
  ASSERT_EQ(out.size(), 5U);
  for (std::uint64_t i = 0; i < 5; ++i) EXPECT_EQ(*out[i].value, i);
  EXPECT_EQ(c.take(out, 3, std::chrono::steady_clock::now()), TakeResult::TimedOut);
}

// A push wakes the parked consumer on the pusher's own CPU before one that parked earlier on
// another CPU (wake_nearby); without wake_nearby, Fifo wakes the earlier one.
TEST(Dispatcher, APushWakesTheConsumerParkedOnItsOwnCpuFirst) {
  const std::vector<int> cpus = allowed_cpus();
  if (cpus.size() < 2) GTEST_SKIP() << "needs 2 CPUs";
  for (const bool nearby : {true, false}) {
    DispatcherOptions o = no_spin();
    o.wake_nearby = nearby;
    Dispatcher<int> d(o);
    std::atomic<int> woken_on{-1};
    auto park_on = [&](int cpu) {
      return std::thread([&, cpu] {
        ASSERT_TRUE(pin_this_thread(cpu));
        auto c = d.consumer();
        if (auto e = c.pop(); e && *e == 1) woken_on = cpu;
      });
    };
    std::thread far = park_on(cpus[0]);  // parks first: the oldest ticket
    await_parked(d, 1);
    std::thread near = park_on(cpus[1]);
    await_parked(d, 2);
    std::thread pusher([&] {
      ASSERT_TRUE(pin_this_thread(cpus[1]));
      ASSERT_EQ(d.push(1), PushResult::Pushed);
    });
    pusher.join();
    while (woken_on.load() < 0) std::this_thread::yield();
    EXPECT_EQ(woken_on.load(), nearby ? cpus[1] : cpus[0]) << "wake_nearby " << nearby;
    d.close();  // the other consumer gets nullopt
    far.join();
    near.join();
  }
}

TEST(Dispatcher, CloseRefusesLaterPushesAndLeavesTheEvent) {
  Dispatcher<MoveOnly> d;
  d.close();
  d.close();  // idempotent
  EXPECT_TRUE(d.closed());
  MoveOnly e(3);
  EXPECT_EQ(d.try_push(e), PushResult::Closed);
  ASSERT_NE(e.value, nullptr);
  EXPECT_EQ(*e.value, 3U);
  EXPECT_EQ(d.push(MoveOnly(4)), PushResult::Closed);
  std::vector<MoveOnly> many;
  many.emplace_back(1);
  EXPECT_EQ(d.push_bulk(many.begin(), many.end()), 0U);
  EXPECT_NE(many[0].value, nullptr);
  EXPECT_EQ(d.pop(), std::nullopt);
  EXPECT_EQ(d.stats().pushed, 0U);
}

// Every refusal after close() is counted, whatever the call: push, try_push, the rest of a
// push_bulk, and a bounded push that was waiting for room when close() released it.
TEST(Dispatcher, CountsEveryPushRefusedAfterClose) {
  DispatcherOptions o;
  o.capacity = 1;
  Dispatcher<int> d(o);
  ASSERT_EQ(d.push(1), PushResult::Pushed);  // full from here on
  PushResult blocked_result = PushResult::Pushed;
  std::thread blocked([&] { blocked_result = d.push(2); });  // waits for room
  // Best effort (either way the push is refused and counted): let it reach its wait for room.
  std::this_thread::sleep_for(20ms);
  d.close();
  blocked.join();
  EXPECT_EQ(blocked_result, PushResult::Closed);
  int e = 3;
  EXPECT_EQ(d.try_push(e), PushResult::Closed);
  EXPECT_EQ(d.push(4), PushResult::Closed);
  std::vector<int> many{5, 6, 7};
  EXPECT_EQ(d.push_bulk(many.begin(), many.end()), 0U);
  const DispatcherStats s = d.stats();
  EXPECT_EQ(s.pushed, 1U);
  EXPECT_EQ(s.rejected, 0U);
  EXPECT_EQ(s.refused_closed, 1U + 1U + 1U + 3U);
}

TEST(Dispatcher, DrainsBufferedEventsAfterClose) {
  Dispatcher<int> d;
  for (int i = 0; i < 10; ++i) ASSERT_EQ(d.push(i), PushResult::Pushed);
  d.close();
  for (int i = 0; i < 10; ++i) EXPECT_EQ(d.pop(), i);
  EXPECT_EQ(d.pop(), std::nullopt);
  EXPECT_EQ(d.consumer().pop(), std::nullopt);
}

TEST(Dispatcher, CloseWakesEveryParkedConsumer) {
  Dispatcher<int> d(no_spin());
  std::atomic<int> finished{0};
  std::vector<std::thread> consumers;
  for (int i = 0; i < 4; ++i) {
    consumers.emplace_back([&] {
      auto c = d.consumer();
      EXPECT_EQ(c.pop(), std::nullopt);
      finished.fetch_add(1);
    });
  }
  await_parked(d, 4);
  EXPECT_EQ(finished.load(), 0);
  d.close();
  for (auto& t : consumers) t.join();
  EXPECT_EQ(finished.load(), 4);
  EXPECT_EQ(d.stats().waiting(), 0U);
}

TEST(Dispatcher, MoveOnlyEventsThroughEveryPath) {
  Dispatcher<MoveOnly> d;
  auto p = d.producer();
  auto c = d.consumer();
  EXPECT_EQ(d.push(MoveOnly(1)), PushResult::Pushed);
  MoveOnly two(2);
  EXPECT_EQ(p.try_push(two), PushResult::Pushed);
  EXPECT_EQ(two.value, nullptr);  // taken
  std::vector<MoveOnly> bulk;
  for (std::uint64_t i = 3; i <= 5; ++i) bulk.emplace_back(i);
  EXPECT_EQ(p.push_bulk(bulk.begin(), bulk.end()), 3U);
  std::vector<std::uint64_t> seen;
  std::vector<MoveOnly> out;
  while (auto e = c.try_pop()) seen.push_back(*e->value);
  EXPECT_EQ(seen.size(), 5U);
  EXPECT_EQ(c.try_pop_bulk(std::back_inserter(out), 10), 0U);
}

TEST(Dispatcher, NeitherLeaksNorCopies) {
  Counted::reset();
  {
    Dispatcher<Counted> d;
    auto p = d.producer();
    for (std::uint64_t i = 0; i < 100; ++i) ASSERT_EQ(p.push(Counted(i)), PushResult::Pushed);
    std::vector<Counted> bulk;
    for (std::uint64_t i = 0; i < 50; ++i) bulk.emplace_back(i);
    ASSERT_EQ(d.push_bulk(bulk.begin(), bulk.end()), 50U);
    bulk.clear();
    for (int i = 0; i < 70; ++i) ASSERT_TRUE(d.pop().has_value());
    EXPECT_EQ(Counted::live.load(), 80);  // 80 still buffered
  }                                       // the dispatcher destroys the rest
  EXPECT_EQ(Counted::live.load(), 0);
  EXPECT_EQ(Counted::copies.load(), 0);
}

TEST(Dispatcher, StatsCountEveryOutcome) {
  DispatcherOptions o;
  o.capacity = 3;
  o.overflow = Overflow::Reject;
  Dispatcher<int> d(o);
  for (int i = 0; i < 5; ++i) (void)d.push(i);
  ASSERT_EQ(d.pop(), 0);
  const DispatcherStats s = d.stats();
  EXPECT_EQ(s.pushed, 3U);
  EXPECT_EQ(s.rejected, 2U);
  EXPECT_EQ(s.popped, 1U);
  EXPECT_EQ(s.buffered, 2U);
  EXPECT_EQ(s.dropped, 0U);
  EXPECT_EQ(s.waiting(), 0U);
}

TEST(Dispatcher, RejectKeepsCapacityAndTheEvent) {
  DispatcherOptions o;
  o.capacity = 4;
  o.overflow = Overflow::Reject;
  Dispatcher<MoveOnly> d(o);
  for (std::uint64_t i = 0; i < 4; ++i) ASSERT_EQ(d.push(MoveOnly(i)), PushResult::Pushed);
  EXPECT_EQ(d.push(MoveOnly(9)), PushResult::Rejected);
  MoveOnly keep(10);
  EXPECT_EQ(d.try_push(keep), PushResult::Rejected);
  ASSERT_NE(keep.value, nullptr);
  EXPECT_EQ(d.stats().buffered, 4U);
  ASSERT_TRUE(d.pop().has_value());
  EXPECT_EQ(d.try_push(keep), PushResult::Pushed);
  EXPECT_EQ(keep.value, nullptr);
}

TEST(Dispatcher, DropOldestKeepsTheNewest) {
  DispatcherOptions o;
  o.capacity = 3;
  o.overflow = Overflow::DropOldest;
  Dispatcher<Counted> d(o);
  Counted::reset();
  std::vector<PushResult> results;
  for (std::uint64_t i = 1; i <= 5; ++i) results.push_back(d.push(Counted(i)));
  EXPECT_EQ(results,
            (std::vector<PushResult>{PushResult::Pushed, PushResult::Pushed, PushResult::Pushed,
                                     PushResult::DroppedOldest, PushResult::DroppedOldest}));
  EXPECT_EQ(Counted::live.load(), 3);  // the dropped ones were destroyed
  for (std::uint64_t want = 3; want <= 5; ++want) EXPECT_EQ(d.pop()->value, want);
  EXPECT_EQ(d.stats().dropped, 2U);
  EXPECT_EQ(d.stats().pushed, 5U);
}

// Every event the dispatcher destroys without delivering goes to on_drop, with its reason, and is
// counted; nothing disappears unseen, nothing is copied, nothing leaks.
TEST(Dispatcher, OnDropReceivesEveryDroppedEvent) {
  Counted::reset();
  std::vector<std::pair<std::uint64_t, DropReason>> drops;
  auto record = [&](Counted&& e, DropReason why) { drops.emplace_back(e.value, why); };
  {
    DispatcherOptions o;
    o.capacity = 2;
    o.overflow = Overflow::DropOldest;
    Dispatcher<Counted> d(o, record);
    for (std::uint64_t i = 1; i <= 4; ++i) (void)d.push(Counted(i));  // drops 1 and 2
    std::vector<Counted> bulk;
    bulk.emplace_back(5);
    bulk.emplace_back(6);
    EXPECT_EQ(d.push_bulk(bulk.begin(), bulk.end()), 2U);  // drops 3 and 4
    EXPECT_EQ(d.pop()->value, 5U);
    d.close();
    EXPECT_EQ(d.push(Counted(7)), PushResult::Closed);
    EXPECT_EQ(d.stats().dropped, 4U);
  }  // 6 is still buffered: Destroyed
  EXPECT_EQ(drops, (std::vector<std::pair<std::uint64_t, DropReason>>{{1, DropReason::Oldest},
                                                                      {2, DropReason::Oldest},
                                                                      {3, DropReason::Oldest},
                                                                      {4, DropReason::Oldest},
                                                                      {7, DropReason::Closed},
                                                                      {6, DropReason::Destroyed}}));
  EXPECT_EQ(Counted::live.load(), 0);
  EXPECT_EQ(Counted::copies.load(), 0);
}

TEST(Dispatcher, OnDropReceivesRejectedPushesButNotTryPushes) {
  DispatcherOptions o;
  o.capacity = 1;
  o.overflow = Overflow::Reject;
  std::vector<std::uint64_t> rejected;
  Dispatcher<MoveOnly> d(o, [&](MoveOnly&& e, DropReason why) {
    if (why == DropReason::Rejected) rejected.push_back(*e.value);
  });
  ASSERT_EQ(d.push(MoveOnly(1)), PushResult::Pushed);
  EXPECT_EQ(d.push(MoveOnly(2)), PushResult::Rejected);
  MoveOnly keep(3);
  EXPECT_EQ(d.try_push(keep), PushResult::Rejected);  // stays with the caller
  ASSERT_NE(keep.value, nullptr);
  auto producer = d.producer();
  EXPECT_EQ(producer.push(MoveOnly(4)), PushResult::Rejected);
  EXPECT_EQ(rejected, (std::vector<std::uint64_t>{2, 4}));
  EXPECT_EQ(d.stats().rejected, 3U);
}

TEST(Dispatcher, DrainedOnlyOnceClosedAndEmpty) {
  Dispatcher<int> d;
  EXPECT_FALSE(d.drained());
  ASSERT_EQ(d.push(1), PushResult::Pushed);
  d.close();
  EXPECT_FALSE(d.drained());  // closed, but one event is still buffered
  EXPECT_EQ(d.pop(), 1);
  EXPECT_TRUE(d.drained());
  EXPECT_EQ(d.pop(), std::nullopt);
}

TEST(Dispatcher, BlockWaitsForRoom) {
  DispatcherOptions o = no_spin();
  o.capacity = 2;
  Dispatcher<int> d(o);
  ASSERT_EQ(d.push(1), PushResult::Pushed);
  ASSERT_EQ(d.push(2), PushResult::Pushed);
  int keep = 3;
  EXPECT_EQ(d.try_push(keep), PushResult::Rejected);  // try_push never waits
  std::atomic<bool> pushed{false};
  std::thread producer([&] {
    EXPECT_EQ(d.push(3), PushResult::Pushed);
    pushed = true;
  });
  EXPECT_EQ(d.stats().buffered, 2U);
  EXPECT_FALSE(pushed.load());  // no room yet: the push cannot have completed
  EXPECT_EQ(d.pop(), 1);
  producer.join();
  EXPECT_TRUE(pushed.load());
  // 2 and 3 come from different producers: no order between them.
  const int a = *d.pop();
  const int b = *d.pop();
  EXPECT_EQ(a + b, 5);
  EXPECT_EQ(d.try_pop(), std::nullopt);
}

TEST(Dispatcher, CloseReleasesABlockedProducer) {
  DispatcherOptions o;
  o.capacity = 1;
  Dispatcher<int> d(o);
  ASSERT_EQ(d.push(1), PushResult::Pushed);
  PushResult result = PushResult::Pushed;
  std::thread producer([&] { result = d.push(2); });
  std::this_thread::yield();
  d.close();
  producer.join();
  // Either it got in before close() (impossible: no room) or it saw close.
  EXPECT_EQ(result, PushResult::Closed);
  EXPECT_EQ(d.pop(), 1);
  EXPECT_EQ(d.pop(), std::nullopt);
}

TEST(Dispatcher, PushBulkUnderEachPolicy) {
  std::vector<int> events(25);
  for (int i = 0; i < 25; ++i) events[static_cast<std::size_t>(i)] = i;
  {
    Dispatcher<int> d;
    EXPECT_EQ(d.push_bulk(events.begin(), events.end()), 25U);
    EXPECT_EQ(d.stats().buffered, 25U);
  }
  {
    DispatcherOptions o;
    o.capacity = 10;
    o.overflow = Overflow::Reject;
    Dispatcher<int> d(o);
    EXPECT_EQ(d.push_bulk(events.begin(), events.end()), 10U);
    EXPECT_EQ(d.stats().rejected, 15U);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(d.pop(), i);  // the accepted prefix
  }
  {
    DispatcherOptions o;
    o.capacity = 10;
    o.overflow = Overflow::DropOldest;
    Dispatcher<int> d(o);
    EXPECT_EQ(d.push_bulk(events.begin(), events.end()), 25U);
    EXPECT_EQ(d.stats().dropped, 15U);
    EXPECT_EQ(d.stats().buffered, 10U);
  }
  {
    DispatcherOptions o;
    o.capacity = 10;
    Dispatcher<int> d(o);
    std::vector<int> got;
    std::thread consumer([&] {
      auto c = d.consumer();
      while (auto e = c.pop()) got.push_back(*e);
    });
    EXPECT_EQ(d.push_bulk(events.begin(), events.end()), 25U);  // waits for room in chunks
    d.close();
    consumer.join();
    EXPECT_EQ(got, events);
  }
}

// The ticket order alone: wake_nearby would rank the consumers by the CPU each parked on first
// (Dispatcher.APushWakesTheConsumerParkedOnItsOwnCpuFirst), and these threads are not pinned.
TEST(Dispatcher, WakeOrderPicksTheParkedConsumer) {
  for (const WakeOrder order : {WakeOrder::Fifo, WakeOrder::Lifo}) {
    DispatcherOptions o = no_spin();
    o.wake_order = order;
    o.wake_nearby = false;
    Dispatcher<int> d(o);
    std::atomic<int> receiver{-1};
    std::vector<std::thread> consumers;
    for (int i = 0; i < 3; ++i) {
      consumers.emplace_back([&, i] {
        if (d.consumer().pop().has_value()) receiver = i;
      });
      await_parked(d, static_cast<std::uint32_t>(i + 1));  // park in order 0, 1, 2
    }
    ASSERT_EQ(d.push(1), PushResult::Pushed);
    while (receiver.load() < 0) std::this_thread::yield();
    EXPECT_EQ(receiver.load(), order == WakeOrder::Fifo ? 0 : 2);
    d.close();
    for (auto& t : consumers) t.join();
  }
}

TEST(Dispatcher, InvalidOptionsNameTheField) {
  auto message_of = [](const DispatcherOptions& o) -> std::string {
    try {
      Dispatcher<int> d(o);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  DispatcherOptions o;
  o.spin = -1ns;
  EXPECT_NE(message_of(o).find("DispatcherOptions::spin must be >= 0"), std::string::npos);
  o = {};
  o.capacity = std::size_t{1} << 31;
  EXPECT_NE(message_of(o).find("DispatcherOptions::capacity must be in [0, 2147483647]"),
            std::string::npos);
  o = {};
  o.overflow = Overflow::Reject;
  EXPECT_NE(message_of(o).find("DispatcherOptions::overflow"), std::string::npos);
  o = {};
  o.max_spinners = static_cast<unsigned>(allowed_cpus().size()) + 1;
  EXPECT_NE(message_of(o).find("DispatcherOptions::max_spinners must be in [0, "),
            std::string::npos);
  o = {};
  o.wake_order = static_cast<WakeOrder>(7);
  EXPECT_NE(message_of(o).find("DispatcherOptions::wake_order"), std::string::npos);
  o = {};
  o.max_spinners = 0;
  EXPECT_EQ(message_of(o), "");  // no spinning at all is allowed
}

// Each field's refusal, message in full (the field, its range, the value given), and the values
// at the edges that are accepted.
TEST(Dispatcher, EveryRejectedOptionSaysWhyInFull) {
  auto message_of = [](const DispatcherOptions& o) -> std::string {
    try {
      Dispatcher<int> d(o);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "accepted";
  };
  const std::string cpus = std::to_string(allowed_cpus().size());
  DispatcherOptions o;
  o.spin = -1ns;
  EXPECT_EQ(message_of(o), "DispatcherOptions::spin must be >= 0 ns; got -1 ns");
  o = {};
  o.capacity = std::size_t{1} << 31;
  EXPECT_EQ(message_of(o),
            "DispatcherOptions::capacity must be in [0, 2147483647] (0 = unbounded); got "
            "2147483648");
  o.capacity = ~std::size_t{0};
  EXPECT_EQ(message_of(o),
            "DispatcherOptions::capacity must be in [0, 2147483647] (0 = unbounded); got "
            "18446744073709551615");
  o = {};
  o.capacity = 8;
  o.overflow = static_cast<Overflow>(3);
  EXPECT_EQ(message_of(o), "DispatcherOptions::overflow must be Block, Reject or DropOldest");
  for (const Overflow policy : {Overflow::Reject, Overflow::DropOldest}) {
    o = {};
    o.overflow = policy;
    EXPECT_EQ(message_of(o),
              "DispatcherOptions::overflow Reject and DropOldest need a bounded dispatcher: "
              "capacity in [1, 2147483647]; got capacity 0 (unbounded)");
  }
  o = {};
  o.wake_order = static_cast<WakeOrder>(2);
  EXPECT_EQ(message_of(o), "DispatcherOptions::wake_order must be Fifo or Lifo");
  o = {};
  o.max_spinners = static_cast<unsigned>(allowed_cpus().size()) + 1;
  EXPECT_EQ(message_of(o), "DispatcherOptions::max_spinners must be in [0, " + cpus +
                               "] (the CPUs this process may use); got " +
                               std::to_string(o.max_spinners));
  o.max_spinners = DispatcherOptions::kAutoSpinners - 1;
  EXPECT_EQ(message_of(o), "DispatcherOptions::max_spinners must be in [0, " + cpus +
                               "] (the CPUs this process may use); got 4294967294");
  // The edges that are accepted.
  o = {};
  o.capacity = 0x7FFF'FFFF;
  o.overflow = Overflow::Reject;
  o.spin = 0ns;
  o.max_spinners = static_cast<unsigned>(allowed_cpus().size());
  EXPECT_EQ(message_of(o), "accepted");
  o = {};
  o.capacity = 1;
  o.overflow = Overflow::DropOldest;
  o.wake_order = WakeOrder::Lifo;
  EXPECT_EQ(message_of(o), "accepted");
}

}  // namespace
}  // namespace pushstage
