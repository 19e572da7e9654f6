// partition_dispatcher_test.cpp: PartitionDispatcher alone, under a ConsumerPool, behind a Stage.
#include "pushstage/modes/partition_dispatcher.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "blocked_push.hpp"
#include "pushstage/pool/consumer_pool.hpp"
#include "pushstage/stages/stage.hpp"
#include "test_payloads.hpp"

namespace pushstage {
namespace {

using namespace std::chrono_literals;

struct Keyed {
  std::uint32_t key;
  std::uint32_t seq;
};

PartitionDispatcher<Keyed>::Hash by_key() {
  return [](const Keyed& e) { return std::size_t{e.key}; };
}

TEST(PartitionDispatcher, RoutesEachKeyToOnePartitionInOrder) {
  PartitionDispatcher<Keyed> d(4, by_key());
  EXPECT_EQ(d.partitions(), 4U);
  auto producer = d.producer();
  for (std::uint32_t s = 0; s < 10; ++s) {
    for (std::uint32_t k = 0; k < 8; ++k) ASSERT_EQ(producer.push(Keyed{k, s}), PushResult::Pushed);
  }
  for (std::size_t p = 0; p < 4; ++p) {
    std::map<std::uint32_t, std::uint32_t> next;
    while (auto e = d.partition(p).try_pop()) {
      EXPECT_EQ(e->key % 4, p);
      EXPECT_EQ(e->seq, next[e->key]++);
    }
    EXPECT_EQ(next.size(), 2U);  // keys p and p + 4
  }
}

// One consumer per partition: each key is handled by one thread, in push order.
TEST(PartitionDispatcher, APoolHasOneConsumerPerPartitionAndKeepsKeyOrder) {
  constexpr std::uint32_t kKeys = 16;
  constexpr std::uint32_t kPerKey = 500;
  PartitionDispatcher<Keyed> d(3, by_key());
  PoolOptions o;
  o.consumers = 3;
  o.max_demand = 4;
  std::mutex m;
  std::map<std::uint32_t, std::thread::id> owner;
  std::vector<std::uint32_t> next(kKeys, 0);
  std::atomic<std::uint64_t> order_errors{0};
  ConsumerPool<Keyed> pool(d, o, [&](Keyed& e) {
    const std::lock_guard lock(m);
    auto [it, fresh] = owner.emplace(e.key, std::this_thread::get_id());
    if (!fresh && it->second != std::this_thread::get_id()) order_errors.fetch_add(1);
    if (e.seq != next[e.key]++) order_errors.fetch_add(1);
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
  EXPECT_EQ(order_errors.load(), 0U);
  for (std::uint32_t k = 0; k < kKeys; ++k) EXPECT_EQ(next[k], kPerKey);
  EXPECT_TRUE(d.drained());
  EXPECT_EQ(d.stats().total().popped, kKeys * kPerKey);
}

TEST(PartitionDispatcher, StatsShowAHotPartition) {
  PartitionDispatcher<Keyed> d(4, by_key());
  for (std::uint32_t i = 0; i < 90; ++i) ASSERT_EQ(d.push(Keyed{2, i}), PushResult::Pushed);
  for (std::uint32_t k = 0; k < 10; ++k) ASSERT_EQ(d.push(Keyed{k, 0}), PushResult::Pushed);
  const PartitionStats s = d.stats();
  ASSERT_EQ(s.partitions.size(), 4U);
  EXPECT_EQ(s.hottest(), 2U);
  EXPECT_EQ(s.partitions[2].pushed, 92U);  // 90 + keys 2 and 6
  EXPECT_EQ(s.total().pushed, 100U);
  EXPECT_DOUBLE_EQ(s.skew(), 92.0 / 25.0);
  EXPECT_DOUBLE_EQ(PartitionStats{}.skew(), 1.0);
}

TEST(PartitionDispatcher, BoundedPartitionsDropIntoOnDrop) {
  DispatcherOptions o;
  o.capacity = 2;
  o.overflow = Overflow::Reject;
  std::atomic<int> rejected{0};
  PartitionDispatcher<Keyed> d(2, by_key(), o, [&](Keyed&& e, DropReason why) {
    if (why != DropReason::Rejected) return;  // Destroyed, at the end of the test
    EXPECT_EQ(e.key, 1U);
    rejected.fetch_add(1);
  });
  for (std::uint32_t i = 0; i < 5; ++i) (void)d.push(Keyed{1, i});  // partition 1 only
  EXPECT_EQ(d.push(Keyed{0, 0}), PushResult::Pushed);               // partition 0 has room
  EXPECT_EQ(rejected.load(), 3);
  EXPECT_EQ(d.stats().partitions[1].rejected, 3U);
}

TEST(PartitionDispatcher, CountsPushesRefusedAfterClose) {
  PartitionDispatcher<int> p(2, [](const int& e) { return static_cast<std::size_t>(e); });
  ASSERT_EQ(p.push(1), PushResult::Pushed);
  p.close();
  EXPECT_EQ(p.push(2), PushResult::Closed);
  EXPECT_EQ(p.push(3), PushResult::Closed);
  const PartitionStats s = p.stats();
  EXPECT_EQ(s.total().pushed, 1U);
  EXPECT_EQ(s.total().refused_closed, 2U);
  EXPECT_EQ(s.partitions[0].refused_closed, 1U);
  EXPECT_EQ(s.partitions[1].refused_closed, 1U);
}

// Like Dispatcher: close() releases a producer waiting for room in a partition nobody drains.
TEST(PartitionDispatcher, CloseReleasesAProducerWaitingForRoom) {
  DispatcherOptions one;
  one.capacity = 1;
  PartitionDispatcher<int> p(
      2, [](const int&) { return std::size_t{0}; }, one);
  ASSERT_EQ(p.push(1), PushResult::Pushed);
  test::expect_close_releases_a_blocked_push([&] { return p.push(2); }, [&] { p.close(); },
                                             [&] { (void)p.partition(0).try_pop(); });
  EXPECT_EQ(p.partition(0).try_pop(), std::optional<int>(1));
  EXPECT_TRUE(p.drained());
}

TEST(PartitionDispatcher, AStageCanEmitIntoPartitions) {
  Dispatcher<std::uint32_t> head;
  PartitionDispatcher<Keyed> parts(2, by_key());
  PoolOptions one;
  one.consumers = 1;
  Stage split(head, parts, one, [](std::uint32_t& e, PartitionDispatcher<Keyed>::Producer& out) {
    (void)out.push(Keyed{e % 2, e / 2});
  });
  PoolOptions two;
  two.consumers = 2;
  std::atomic<std::uint32_t> handled{0};
  ConsumerPool<Keyed> pool(parts, two, [&](Keyed&) { handled.fetch_add(1); });
  for (std::uint32_t i = 0; i < 100; ++i) ASSERT_EQ(head.push(i), PushResult::Pushed);
  head.close();
  pool.join();  // the stage closed every partition
  EXPECT_EQ(handled.load(), 100U);
  EXPECT_TRUE(parts.closed());
}

// Mirrors GenStage's partition_dispatcher_test "subscribes, asks and dispatches to partitions or
// none": named partitions, and a router that discards multiples of 3 (hash returning :none).
TEST(PartitionDispatcher, ARouterSendsToNamedPartitionsOrDiscards) {
  std::vector<int> dropped;  // on_drop runs on the pushing thread: this one
  PartitionDispatcher<int> d(
      {"odd", "even"},
      [](const int& e) {
        if (e % 3 == 0) return PartitionRoute::discard();
        return PartitionRoute::to(e % 2 == 0 ? 1U : 0U);
      },
      {},
      [&](int&& e, DropReason why) {
        if (why == DropReason::Discarded) dropped.push_back(e);
      });
  ASSERT_EQ(d.partitions(), 2U);
  EXPECT_EQ(d.index_of("odd"), 0U);
  EXPECT_EQ(d.index_of("even"), 1U);
  EXPECT_EQ(d.name(1), "even");
  auto producer = d.producer();
  for (int e = 1; e <= 12; ++e) {
    const PushResult want = e % 3 == 0 ? PushResult::Discarded : PushResult::Pushed;
    ASSERT_EQ(e % 2 == 0 ? d.push(e) : producer.push(e), want) << e;
  }
  EXPECT_EQ(dropped, (std::vector<int>{3, 6, 9, 12}));
  auto drain = [&](std::string_view name) {
    std::vector<int> got;
    while (auto e = d.partition(d.index_of(name)).try_pop()) got.push_back(*e);
    return got;
  };
  EXPECT_EQ(drain("even"), (std::vector<int>{2, 4, 8, 10}));
  EXPECT_EQ(drain("odd"), (std::vector<int>{1, 5, 7, 11}));
  const PartitionStats s = d.stats();
  EXPECT_EQ(s.discarded, 4U);
  EXPECT_EQ(s.total().pushed, 8U);
  EXPECT_EQ(d.partition_of(15), 2U);  // discarded: partitions()
  // try_push leaves a discarded event with the caller, counted.
  int keep = 18;
  EXPECT_EQ(d.try_push(keep), PushResult::Discarded);
  EXPECT_EQ(producer.try_push(keep), PushResult::Discarded);
  EXPECT_EQ(keep, 18);
  EXPECT_EQ(d.stats().discarded, 6U);
  EXPECT_EQ(dropped.size(), 4U);
}

// Mirrors "raises on unknown partition": a router naming a partition that does not exist is a
// bug, reported by the push that met it; nothing is pushed.
TEST(PartitionDispatcher, ARouterNamingNoPartitionThrows) {
  PartitionDispatcher<int> d(2, [](const int& e) { return PartitionRoute::to(std::size_t(e)); });
  ASSERT_EQ(d.push(1), PushResult::Pushed);
  try {
    (void)d.push(7);
    ADD_FAILURE() << "no throw";
  } catch (const std::out_of_range& e) {
    EXPECT_STREQ(e.what(),
                 "PartitionDispatcher: the router sent an event to partition 7; partitions are "
                 "[0, 1]");
  }
  EXPECT_EQ(d.stats().total().pushed, 1U);
}

// Mirrors "buffers events before subscription" and "subscribes, asks and cancels": a partition's
// consumer may change. The events its pool did not take wait in the partition and the next pool
// handles them, in push order, each once.
TEST(PartitionDispatcher, APartitionsConsumerMayChangeAndItsEventsWaitInOrder) {
  PartitionDispatcher<int> d(2, [](const int& e) { return std::size_t(e % 2); });
  std::mutex m;
  std::vector<int> handled;  // partition 0's events, in handling order
  auto handle = [&](int& e) {
    const std::lock_guard lock(m);
    handled.push_back(e);
  };
  auto count = [&] {
    const std::lock_guard lock(m);
    return handled.size();
  };
  for (int e = 0; e < 20; e += 2) ASSERT_EQ(d.push(e), PushResult::Pushed);
  {
    PoolOptions o;
    o.pin = false;
    o.demand = DemandMode::Manual;  // a first subscriber that asks for 5
    ConsumerPool<int> first(d.partition(0), o, handle);
    first.ask(5);
    while (count() < 5) std::this_thread::yield();
  }  // it leaves; the other 5 wait in the partition
  for (int e = 20; e < 40; e += 2) ASSERT_EQ(d.push(e), PushResult::Pushed);
  EXPECT_EQ(d.partition(0).stats().buffered, 15U);
  PoolOptions o;
  o.pin = false;
  o.max_demand = 4;
  ConsumerPool<int> second(d.partition(0), o, handle);
  d.close();
  second.join();
  std::vector<int> want;
  for (int e = 0; e < 40; e += 2) want.push_back(e);
  EXPECT_EQ(handled, want);
  EXPECT_EQ(d.partition(1).stats().buffered, 0U);
}

// Mirrors, for partitions, gen_stage_test "with shared (broadcast) demand" (subscribers of one
// producer with different max_demand): a pool over each partition, each with a max_demand of its
// own. Each gets its partition's events in order, in chunks no larger than its own max_demand.
TEST(PartitionDispatcher, EachPartitionsPoolHasItsOwnMaxDemand) {
  PartitionDispatcher<int> d(2, [](const int& e) { return std::size_t(e % 2); });
  struct Seen {
    std::mutex m;
    std::vector<int> events;
    std::size_t largest_chunk = 0;
  };
  Seen seen[2];
  const std::size_t max_demand[2] = {2, 16};
  std::vector<std::unique_ptr<ConsumerPool<int>>> pools;
  for (std::size_t p = 0; p < 2; ++p) {
    PoolOptions o;
    o.pin = false;
    o.max_demand = max_demand[p];
    o.min_demand = 0;
    o.start_paused = true;  // let the partitions fill, so that chunks may be large
    Seen& s = seen[p];
    pools.push_back(
        std::make_unique<ConsumerPool<int>>(d.partition(p), o, [&s](std::span<int> chunk) {
          const std::lock_guard lock(s.m);
          s.largest_chunk = std::max(s.largest_chunk, chunk.size());
          s.events.insert(s.events.end(), chunk.begin(), chunk.end());
        }));
  }
  for (int e = 0; e < 400; ++e) ASSERT_EQ(d.push(e), PushResult::Pushed);
  d.close();
  for (auto& pool : pools) {
    pool->resume();
    pool->join();
  }
  for (std::size_t p = 0; p < 2; ++p) {
    std::vector<int> want;
    for (int e = static_cast<int>(p); e < 400; e += 2) want.push_back(e);
    EXPECT_EQ(seen[p].events, want);
    EXPECT_LE(seen[p].largest_chunk, max_demand[p]);
  }
  EXPECT_EQ(seen[0].largest_chunk, 2U);  // the partition was full: every chunk as large as allowed
  EXPECT_GT(seen[1].largest_chunk, 2U);  // more than the other partition's pool may take
}

TEST(PartitionDispatcher, InvalidUseNamesTheOption) {
  auto message_of = [](auto&& make) -> std::string {
    try {
      make();
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message_of([] {
              PartitionDispatcher<Keyed> d(0, by_key());
            }).find("PartitionDispatcher: partitions must be in [1, 65536]; got 0"),
            std::string::npos);
  EXPECT_NE(message_of([] { PartitionDispatcher<Keyed> d(2, nullptr); }).find("hash"),
            std::string::npos);
  EXPECT_EQ(
      message_of([] { PartitionDispatcher<Keyed> d(2, PartitionDispatcher<Keyed>::Router{}); }),
      "PartitionDispatcher: router must not be empty");
  auto route = [](const Keyed&) { return PartitionRoute::to(0); };
  EXPECT_EQ(message_of([&] {
              PartitionDispatcher<Keyed> d({"a", ""}, route);
            }),
            "PartitionDispatcher: names[1] must not be empty");
  EXPECT_EQ(message_of([&] {
              PartitionDispatcher<Keyed> d({"a", "b", "a"}, route);
            }),
            "PartitionDispatcher: names must be distinct; 'a' is names[0] and names[2]");
  EXPECT_EQ(message_of([&] { PartitionDispatcher<Keyed> d(std::vector<std::string>{}, route); }),
            "PartitionDispatcher: partitions must be in [1, 65536]; got 0");
  PartitionDispatcher<Keyed> named({"odd", "even"}, route);
  EXPECT_EQ(message_of([&] { (void)named.index_of("oops"); }),
            "PartitionDispatcher: no partition is named 'oops'; partitions: odd, even");
  PartitionDispatcher<Keyed> d(3, by_key());
  EXPECT_NE(message_of([&] { ConsumerPool<Keyed> pool(d, PoolOptions{}, [](Keyed&) {}); })
                .find("PoolOptions::consumers must be 3, one per partition of the "
                      "PartitionDispatcher; got 1"),
            std::string::npos);
  PoolOptions o;
  o.consumers = 3;
  ConsumerPool<Keyed> pool(d, o, [](Keyed&) {});
  EXPECT_NE(message_of([&] { pool.resize(4); }).find("ConsumerPool::resize"), std::string::npos);
}

}  // namespace
}  // namespace pushstage
