// consumer_pool_stress_test.cpp: pools of pinned consumers, more of them than cores, racing
// producers and close. Bounded by counts; sizes scale down under sanitizers.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <latch>
#include <thread>
#include <vector>

#include "pushstage/dispatcher.hpp"
#include "pushstage/pool/consumer_pool.hpp"

namespace pushstage {
namespace {

constexpr std::uint64_t kEvents = 200'000 / PUSHSTAGE_TEST_SCALE;

struct Event {
  std::uint32_t producer;
  std::uint32_t seq;
};

struct PoolShape {
  unsigned producers;
  std::size_t consumers;
  std::size_t max_demand;
};

class PoolExactlyOnce : public ::testing::TestWithParam<PoolShape> {};

TEST_P(PoolExactlyOnce, EveryEventHandledOnceInProducerOrderPerConsumer) {
  const PoolShape shape = GetParam();
  Dispatcher<Event> d;
  const std::uint64_t per_producer = kEvents / shape.producers;
  std::vector<std::vector<std::atomic<std::uint8_t>>> seen(shape.producers);
  for (auto& v : seen) v = std::vector<std::atomic<std::uint8_t>>(per_producer);
  // Per (consumer thread, producer): the last sequence handled. Handlers of one consumer run
  // sequentially, so a thread_local index keeps it without locks.
  std::atomic<unsigned> next_index{0};
  std::vector<std::vector<std::int64_t>> last(shape.consumers,
                                              std::vector<std::int64_t>(shape.producers, -1));
  std::atomic<std::uint64_t> order_errors{0};
  PoolOptions options;
  options.consumers = shape.consumers;
  options.max_demand = shape.max_demand;
  ConsumerPool<Event> pool(d, options, [&](Event& e) {
    thread_local unsigned index = next_index.fetch_add(1);
    seen[e.producer][e.seq].fetch_add(1, std::memory_order_relaxed);
    std::int64_t& l = last[index][e.producer];
    if (static_cast<std::int64_t>(e.seq) <= l) order_errors.fetch_add(1);
    l = e.seq;
  });
  std::latch start(shape.producers);
  std::vector<std::thread> producers;
  for (unsigned p = 0; p < shape.producers; ++p) {
    producers.emplace_back([&, p] {
      auto producer = d.producer();
      start.arrive_and_wait();
      for (std::uint32_t s = 0; s < per_producer; ++s) {
        ASSERT_EQ(producer.push(Event{p, s}), PushResult::Pushed);
      }
    });
  }
  for (auto& t : producers) t.join();
  d.close();
  pool.join();
  EXPECT_EQ(order_errors.load(), 0U);
  std::uint64_t handled = 0;
  for (const ConsumerStats& s : pool.stats()) handled += s.handled;
  EXPECT_EQ(handled, per_producer * shape.producers);
  for (unsigned p = 0; p < shape.producers; ++p) {
    for (std::uint64_t s = 0; s < per_producer; ++s) ASSERT_EQ(seen[p][s].load(), 1);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, PoolExactlyOnce,
                         ::testing::Values(PoolShape{1, 1, 1}, PoolShape{2, 3, 1},
                                           PoolShape{1, 8, 1}, PoolShape{3, 4, 16},
                                           PoolShape{2, 2, 64}),
                         [](const ::testing::TestParamInfo<PoolShape>& param_info) {
                           return std::to_string(param_info.param.producers) + "P" +
                                  std::to_string(param_info.param.consumers) + "C_demand" +
                                  std::to_string(param_info.param.max_demand);
                         });

// Pools created and destroyed while producers run against a bounded dispatcher: destroying a
// pool ends its consumers (each handles what it holds) and leaves the source open, so producers
// go on until the test closes it. Every accepted event is handled or still buffered, never lost.
TEST(ConsumerPoolStress, DestroyWhileProducersRace) {
  for (int round = 0; round < 10; ++round) {
    DispatcherOptions options;
    options.capacity = 64;
    Dispatcher<Event> d(options);
    std::atomic<std::uint64_t> accepted{0};
    std::atomic<std::uint64_t> handled{0};
    std::vector<std::thread> producers;
    {
      PoolOptions po;
      po.consumers = 3;
      ConsumerPool<Event> pool(d, po, [&](Event&) { handled.fetch_add(1); });
      for (unsigned p = 0; p < 2; ++p) {
        producers.emplace_back([&, p] {
          for (std::uint32_t s = 0;; ++s) {
            if (d.push(Event{p, s}) != PushResult::Pushed) break;
            accepted.fetch_add(1);
          }
        });
      }
      while (accepted.load() < kEvents / 20) std::this_thread::yield();
    }  // destructor: the consumers end while producers still push
    EXPECT_FALSE(d.closed());
    d.close();  // releases the producers waiting for room
    for (auto& t : producers) t.join();
    EXPECT_EQ(handled.load() + d.stats().buffered, accepted.load()) << "round " << round;
  }
}

}  // namespace
}  // namespace pushstage
