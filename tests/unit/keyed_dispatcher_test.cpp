// keyed_dispatcher_test.cpp: KeyedDispatcher alone and under pools: per-key order on any consumer,
// a hot key that does not hold back the others, bounds, close.
#include "pushstage/modes/keyed_dispatcher.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
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
using test::MoveOnly;

struct Keyed {
  std::uint32_t key;
  std::uint32_t seq;
};

// A deadline `d` from now.
std::chrono::steady_clock::time_point in(std::chrono::nanoseconds d) {
  return std::chrono::steady_clock::now() + d;
}

KeyedDispatcher<Keyed>::Hash by_key() {
  return [](const Keyed& e) { return std::size_t{e.key}; };
}

TEST(KeyedDispatcher, AConsumerTakesOneSlotsEventsInOrderAndReleasesIt) {
  KeyedDispatcher<Keyed> d(4, by_key());
  for (std::uint32_t s = 0; s < 5; ++s) ASSERT_EQ(d.push(Keyed{1, s}), PushResult::Pushed);
  auto c = d.consumer();
  std::vector<Keyed> out;
  ASSERT_EQ(c.take(out, 3, in(0ns)), TakeResult::Got);
  ASSERT_EQ(out.size(), 3U);
  for (std::uint32_t s = 0; s < 3; ++s) EXPECT_EQ(out[s].seq, s);
  auto other = d.consumer();
  std::vector<Keyed> none;
  // The slot is held: nobody else can take its remaining events.
  EXPECT_EQ(other.take(none, 8, in(1ms)), TakeResult::TimedOut);
  c.release();
  ASSERT_EQ(other.take(none, 8, in(0ns)), TakeResult::Got);
  EXPECT_EQ(none.size(), 2U);
  EXPECT_EQ(none[0].seq, 3U);
  other.release();
  d.close();
  EXPECT_TRUE(d.drained());
  EXPECT_EQ(c.take(out, 1, in(0ns)), TakeResult::Drained);
  const KeyedStats s = d.stats();
  EXPECT_EQ(s.pushed, 5U);
  EXPECT_EQ(s.handled, 5U);
  EXPECT_EQ(s.hottest(), 1U);
}

// The hot key's handler waits until every cold event is handled: only possible if the other
// consumer serves the cold keys meanwhile (a partition per consumer could put them behind it). If
// that regresses, the wait gives up (after far longer than 300 trivial events take anywhere) and
// the test fails on the count instead of hanging.
TEST(KeyedDispatcher, AHotKeyDoesNotHoldBackTheOthers) {
  constexpr int kCold = 300;
  KeyedDispatcher<Keyed> d(16, by_key());
  PoolOptions o;
  o.consumers = 2;
  std::atomic<int> cold{0};
  std::atomic<int> hot{0};
  std::atomic<int> cold_while_hot_waited{-1};
  ConsumerPool<Keyed> pool(d, o, [&](Keyed& e) {
    if (e.key != 0) {
      cold.fetch_add(1);
      return;
    }
    if (e.seq == 0) {
      const auto give_up = std::chrono::steady_clock::now() + 20s;
      while (cold.load() < kCold && std::chrono::steady_clock::now() < give_up) {
        std::this_thread::yield();
      }
      cold_while_hot_waited.store(cold.load());
    }
    hot.fetch_add(1);
  });
  for (std::uint32_t s = 0; s < 50; ++s) ASSERT_EQ(d.push(Keyed{0, s}), PushResult::Pushed);
  for (int i = 0; i < kCold; ++i) {
    ASSERT_EQ(d.push(Keyed{1 + static_cast<std::uint32_t>(i % 15), 0}), PushResult::Pushed);
  }
  d.close();
  pool.join();
  EXPECT_EQ(cold_while_hot_waited.load(), kCold);  // all handled while the hot key was busy
  EXPECT_EQ(cold.load(), kCold);
  EXPECT_EQ(hot.load(), 50);
}

// Per key: never two handler calls at once, always in push order, whichever consumer serves it
// (which one does is up to the scheduler; AHotKeyDoesNotHoldBackTheOthers shows that keys move).
TEST(KeyedDispatcher, KeysMoveBetweenConsumersButKeepTheirOrder) {
  constexpr std::uint32_t kKeys = 6;
  constexpr std::uint32_t kPerKey = 2000;
  KeyedDispatcher<Keyed> d(kKeys, by_key());
  PoolOptions o;
  o.consumers = 3;
  o.max_demand = 4;
  std::vector<std::atomic<int>> inside(kKeys);
  std::vector<std::uint32_t> next(kKeys, 0);  // guarded by the key's exclusivity
  std::atomic<int> errors{0};
  ConsumerPool<Keyed> pool(d, o, [&](Keyed& e) {
    if (inside[e.key].fetch_add(1) != 0) errors.fetch_add(1);
    if (e.seq != next[e.key]++) errors.fetch_add(1);
    inside[e.key].fetch_sub(1);
  });
  std::thread producer([&] {
    auto p = d.producer();
    for (std::uint32_t s = 0; s < kPerKey; ++s) {
      for (std::uint32_t k = 0; k < kKeys; ++k) ASSERT_EQ(p.push(Keyed{k, s}), PushResult::Pushed);
    }
  });
  producer.join();
  d.close();
  pool.join();
  EXPECT_EQ(errors.load(), 0);
  for (std::uint32_t k = 0; k < kKeys; ++k) EXPECT_EQ(next[k], kPerKey);
}

TEST(KeyedDispatcher, BoundedRejectAndBlock) {
  DispatcherOptions o;
  o.capacity = 3;
  o.overflow = Overflow::Reject;
  std::atomic<int> rejected{0};
  KeyedDispatcher<MoveOnly> r(
      2, [](const MoveOnly& e) { return std::size_t{*e.value}; }, o,
      [&](MoveOnly&&, DropReason why) {
        if (why == DropReason::Rejected) rejected.fetch_add(1);
      });
  for (std::uint64_t i = 0; i < 5; ++i) (void)r.push(MoveOnly(i));
  EXPECT_EQ(rejected.load(), 2);
  EXPECT_EQ(r.stats().rejected, 2U);
  MoveOnly keep(9);
  EXPECT_EQ(r.try_push(keep), PushResult::Rejected);
  EXPECT_NE(keep.value, nullptr);

  o.overflow = Overflow::Block;
  KeyedDispatcher<Keyed> b(2, by_key(), o);
  for (std::uint32_t i = 0; i < 3; ++i) ASSERT_EQ(b.push(Keyed{i, 0}), PushResult::Pushed);
  std::atomic<bool> done{false};
  std::thread blocked([&] {
    EXPECT_EQ(b.push(Keyed{7, 0}), PushResult::Pushed);
    done.store(true);
  });
  std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(done.load());
  auto c = b.consumer();
  std::vector<Keyed> out;
  ASSERT_EQ(c.take(out, 8, in(0ns)), TakeResult::Got);
  c.release();  // frees room
  blocked.join();
  EXPECT_TRUE(done.load());
  b.close();
  EXPECT_EQ(b.push(Keyed{1, 1}), PushResult::Closed);
}

// A hash that throws for one key: the push throws to the caller before anything is counted, so
// the dispatcher still drains once closed, and every other event is handled.
TEST(KeyedDispatcher, AThrowingHashFailsThePushAndLeavesTheRestDraining) {
  auto hash = [](const Keyed& e) -> std::size_t {
    if (e.key == 13) throw std::runtime_error("no hash for 13");
    return e.key;
  };
  {
    KeyedDispatcher<Keyed> d(4, hash);
    ASSERT_EQ(d.push(Keyed{1, 0}), PushResult::Pushed);
    EXPECT_THROW((void)d.push(Keyed{13, 0}), std::runtime_error);
    Keyed kept{13, 1};
    EXPECT_THROW((void)d.try_push(kept), std::runtime_error);
    ASSERT_EQ(d.push(Keyed{2, 0}), PushResult::Pushed);
    d.close();
    auto c = d.consumer();
    std::vector<Keyed> out;
    while (c.take(out, 8, in(0ns)) == TakeResult::Got) c.release();
    EXPECT_EQ(out.size(), 2U);
    ASSERT_TRUE(d.drained());  // a leaked count would keep it open (and a pool's join waiting)
    EXPECT_EQ(d.stats().pushed, 2U);
  }
  KeyedDispatcher<Keyed> d(16, hash);
  PoolOptions o;
  o.consumers = 2;
  std::atomic<int> handled{0};
  ConsumerPool<Keyed> pool(d, o, [&](Keyed&) { handled.fetch_add(1); });
  for (std::uint32_t i = 0; i < 200; ++i) {
    if (i % 20 == 13) {
      EXPECT_THROW((void)d.push(Keyed{13, i}), std::runtime_error);
    } else {
      ASSERT_EQ(d.push(Keyed{i % 20, i}), PushResult::Pushed);
    }
  }
  d.close();
  pool.join();
  EXPECT_EQ(handled.load(), 190);
  EXPECT_TRUE(d.drained());
}

TEST(KeyedDispatcher, PoolsResizeAndStagesEmitIntoIt) {
  Dispatcher<std::uint32_t> head;
  KeyedDispatcher<Keyed> keyed(8, by_key());
  PoolOptions one;
  one.consumers = 1;
  Stage split(head, keyed, one, [](std::uint32_t& e, KeyedDispatcher<Keyed>::Producer& out) {
    (void)out.push(Keyed{e % 5, e / 5});
  });
  PoolOptions two;
  two.consumers = 2;
  two.max_demand = 3;
  std::atomic<int> handled{0};
  ConsumerPool<Keyed> pool(keyed, two, [&](Keyed&) { handled.fetch_add(1); });
  pool.resize(3);
  for (std::uint32_t i = 0; i < 500; ++i) ASSERT_EQ(head.push(i), PushResult::Pushed);
  pool.resize(1);
  head.close();
  pool.join();
  EXPECT_EQ(handled.load(), 500);
  EXPECT_TRUE(keyed.drained());
}

TEST(KeyedDispatcher, CountsPushesRefusedAfterClose) {
  KeyedDispatcher<Keyed> k(4, by_key());
  ASSERT_EQ(k.push(Keyed{1, 0}), PushResult::Pushed);
  k.close();
  EXPECT_EQ(k.push(Keyed{1, 1}), PushResult::Closed);
  Keyed e{2, 0};
  EXPECT_EQ(k.try_push(e), PushResult::Closed);
  const KeyedStats s = k.stats();
  EXPECT_EQ(s.pushed, 1U);
  EXPECT_EQ(s.refused_closed, 2U);
}

// close() never waits for consumers: a producer blocked for room is released with Closed.
TEST(KeyedDispatcher, CloseReleasesAProducerWaitingForRoom) {
  DispatcherOptions one;
  one.capacity = 1;
  KeyedDispatcher<Keyed> k(4, by_key(), one);
  ASSERT_EQ(k.push(Keyed{1, 0}), PushResult::Pushed);
  test::expect_close_releases_a_blocked_push(
      [&] {
        return k.push(Keyed{1, 1});
      },
      [&] { k.close(); }, [] {});
  EXPECT_EQ(k.stats().pushed, 1U);
}

TEST(KeyedDispatcher, InvalidUseNamesTheOption) {
  auto message_of = [](auto&& make) -> std::string {
    try {
      make();
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message_of([] {
              KeyedDispatcher<Keyed> d(0, by_key());
            }).find("KeyedDispatcher: slots must be in [1, 65536]; got 0"),
            std::string::npos);
  EXPECT_NE(message_of([] { KeyedDispatcher<Keyed> d(2, nullptr); }).find("hash"),
            std::string::npos);
  EXPECT_NE(message_of([] {
              DispatcherOptions o;
              o.capacity = 4;
              o.overflow = Overflow::DropOldest;
              KeyedDispatcher<Keyed> d(2, by_key(), o);
            }).find("KeyedDispatcher: options.overflow must be Block or Reject"),
            std::string::npos);
  EXPECT_NE(message_of([] {
              DispatcherOptions o;
              o.overflow = Overflow::Reject;
              KeyedDispatcher<Keyed> d(2, by_key(), o);
            }).find("options.overflow Reject needs a capacity"),
            std::string::npos);
}

}  // namespace
}  // namespace pushstage
