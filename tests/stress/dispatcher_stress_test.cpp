// dispatcher_stress_test.cpp: many producers and consumers racing on one Dispatcher.
// Every test is bounded by counts (ctest's TIMEOUT catches a hang, which is how a lost wakeup
// shows); sizes come from kEvents, divided by PUSHSTAGE_TEST_SCALE under sanitizers.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cstdint>
#include <latch>
#include <thread>
#include <vector>

#include "pushstage/dispatcher.hpp"

namespace pushstage {
namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t kEvents = 400'000 / PUSHSTAGE_TEST_SCALE;

struct Event {
  std::uint32_t producer;
  std::uint32_t seq;
};

struct Shape {
  unsigned producers;
  unsigned consumers;
  bool handles;  // Producer/Consumer handles, or the tokenless members
  std::chrono::nanoseconds spin;
  bool fast_push = false;  // DispatcherOptions::fast_push
};

// Per consumer: the last sequence number seen of each producer (order check) and counts.
struct ConsumerLog {
  std::vector<std::int64_t> last;
  std::uint64_t popped = 0;
  bool order_ok = true;
};

class ExactlyOnce : public ::testing::TestWithParam<Shape> {};

TEST_P(ExactlyOnce, EveryEventOnceInEachProducersOrder) {
  const Shape shape = GetParam();
  DispatcherOptions options;
  options.spin = shape.spin;
  options.fast_push = shape.fast_push;
  Dispatcher<Event> d(options);
  const std::uint64_t per_producer = kEvents / shape.producers;
  // seen[p][s] counts deliveries of event s of producer p.
  std::vector<std::vector<std::atomic<std::uint8_t>>> seen(shape.producers);
  for (auto& v : seen) v = std::vector<std::atomic<std::uint8_t>>(per_producer);
  std::vector<ConsumerLog> logs(shape.consumers);
  std::latch start(shape.producers + shape.consumers);

  std::vector<std::thread> threads;
  for (unsigned c = 0; c < shape.consumers; ++c) {
    threads.emplace_back([&, c] {
      ConsumerLog& log = logs[c];
      log.last.assign(shape.producers, -1);
      auto record = [&](const Event& e) {
        seen[e.producer][e.seq].fetch_add(1, std::memory_order_relaxed);
        if (static_cast<std::int64_t>(e.seq) <= log.last[e.producer]) log.order_ok = false;
        log.last[e.producer] = e.seq;
        ++log.popped;
      };
      start.arrive_and_wait();
      if (shape.handles) {
        auto consumer = d.consumer();
        while (auto e = consumer.pop()) record(*e);
      } else {
        while (auto e = d.pop()) record(*e);
      }
    });
  }
  std::vector<std::thread> producers;
  for (unsigned p = 0; p < shape.producers; ++p) {
    producers.emplace_back([&, p] {
      start.arrive_and_wait();
      if (shape.handles) {
        auto producer = d.producer();
        for (std::uint32_t s = 0; s < per_producer; ++s) {
          ASSERT_EQ(producer.push(Event{p, s}), PushResult::Pushed);
        }
      } else {
        for (std::uint32_t s = 0; s < per_producer; ++s) {
          ASSERT_EQ(d.push(Event{p, s}), PushResult::Pushed);
        }
      }
    });
  }
  for (auto& t : producers) t.join();
  d.close();
  for (auto& t : threads) t.join();

  std::uint64_t total = 0;
  for (const ConsumerLog& log : logs) {
    EXPECT_TRUE(log.order_ok);
    total += log.popped;
  }
  EXPECT_EQ(total, per_producer * shape.producers);
  for (unsigned p = 0; p < shape.producers; ++p) {
    for (std::uint64_t s = 0; s < per_producer; ++s) {
      ASSERT_EQ(seen[p][s].load(), 1) << "producer " << p << " event " << s;
    }
  }
  const DispatcherStats st = d.stats();
  EXPECT_EQ(st.pushed, total);
  EXPECT_EQ(st.popped, total);
  EXPECT_EQ(st.buffered, 0U);
  EXPECT_EQ(st.waiting(), 0U);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ExactlyOnce,
    ::testing::Values(Shape{1, 1, true, 20us}, Shape{2, 2, true, 20us}, Shape{1, 4, true, 20us},
                      Shape{4, 1, true, 20us}, Shape{3, 8, true, 20us}, Shape{2, 3, false, 20us},
                      Shape{2, 2, true, 0ns}, Shape{4, 6, true, 0ns}, Shape{1, 1, true, 20us, true},
                      Shape{2, 2, true, 20us, true}, Shape{1, 4, true, 20us, true},
                      Shape{2, 3, false, 20us, true}, Shape{4, 6, true, 0ns, true}),
    [](const ::testing::TestParamInfo<Shape>& param_info) {
      return std::to_string(param_info.param.producers) + "P" +
             std::to_string(param_info.param.consumers) + "C" +
             (param_info.param.handles ? "_handles" : "_tokenless") +
             (param_info.param.spin.count() == 0 ? "_nospin" : "_spin") +
             (param_info.param.fast_push ? "_fastpush" : "");
    });

// Close while producers push and consumers pop: every push that returned Pushed is popped once,
// nothing else is.
TEST(DispatcherStress, CloseWhileProducersAndConsumersRace) {
  constexpr unsigned kProducers = 3;
  constexpr unsigned kConsumers = 3;
  for (int round = 0; round < 20; ++round) {
    DispatcherOptions options;
    options.fast_push = round % 2 == 1;  // every other round: plain-store counts (W2', S2')
    Dispatcher<Event> d(options);
    std::vector<std::uint64_t> accepted(kProducers, 0);
    std::vector<std::vector<std::uint64_t>> got(kConsumers, std::vector<std::uint64_t>(kProducers));
    std::atomic<std::uint64_t> pushed_so_far{0};
    std::latch start(kProducers + kConsumers + 1);
    std::vector<std::thread> threads;
    for (unsigned p = 0; p < kProducers; ++p) {
      threads.emplace_back([&, p] {
        auto producer = d.producer();
        start.arrive_and_wait();
        for (std::uint32_t s = 0;; ++s) {
          if (producer.push(Event{p, s}) == PushResult::Closed) break;
          ++accepted[p];
          pushed_so_far.fetch_add(1, std::memory_order_relaxed);
        }
      });
    }
    for (unsigned c = 0; c < kConsumers; ++c) {
      threads.emplace_back([&, c] {
        auto consumer = d.consumer();
        start.arrive_and_wait();
        while (auto e = consumer.pop()) ++got[c][e->producer];
      });
    }
    start.arrive_and_wait();
    const std::uint64_t close_after = kEvents / 40 * static_cast<std::uint64_t>(round % 4 + 1);
    while (pushed_so_far.load(std::memory_order_relaxed) < close_after) std::this_thread::yield();
    d.close();
    for (auto& t : threads) t.join();
    for (unsigned p = 0; p < kProducers; ++p) {
      std::uint64_t total = 0;
      for (unsigned c = 0; c < kConsumers; ++c) total += got[c][p];
      EXPECT_EQ(total, accepted[p]) << "producer " << p << " round " << round;
    }
  }
}

// Bounded dispatchers under every policy: never more than `capacity` buffered, and every accepted
// event is either popped or (DropOldest) dropped.
class Bounded : public ::testing::TestWithParam<Overflow> {};

TEST_P(Bounded, CapacityHoldsAndNothingIsLost) {
  constexpr std::size_t kCapacity = 8;
  constexpr unsigned kProducers = 3;
  constexpr unsigned kConsumers = 2;
  DispatcherOptions options;
  options.capacity = kCapacity;
  options.overflow = GetParam();
  Dispatcher<Event> d(options);
  const std::uint64_t per_producer = kEvents / 4 / kProducers;
  // inside = accepted (counted after push returns) - popped (counted after pop returns). It lags
  // the real buffer by at most one event per consumer (popped, not yet counted).
  std::atomic<std::int64_t> inside{0};
  std::atomic<std::int64_t> worst{0};
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> rejected{0};
  std::atomic<std::uint64_t> popped{0};
  std::latch start(kProducers + kConsumers);
  std::vector<std::thread> consumers;
  for (unsigned c = 0; c < kConsumers; ++c) {
    consumers.emplace_back([&] {
      auto consumer = d.consumer();
      start.arrive_and_wait();
      while (consumer.pop()) {
        inside.fetch_sub(1);
        popped.fetch_add(1);
      }
    });
  }
  std::vector<std::thread> producers;
  for (unsigned p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      auto producer = d.producer();
      start.arrive_and_wait();
      for (std::uint32_t s = 0; s < per_producer; ++s) {
        const PushResult r = producer.push(Event{p, s});
        if (r == PushResult::Rejected) {
          rejected.fetch_add(1);
          continue;
        }
        ASSERT_TRUE(r == PushResult::Pushed || r == PushResult::DroppedOldest);
        accepted.fetch_add(1);
        if (r == PushResult::DroppedOldest) continue;  // one in, one dropped: inside unchanged
        const std::int64_t now = inside.fetch_add(1) + 1;
        std::int64_t w = worst.load();
        while (now > w && !worst.compare_exchange_weak(w, now)) {
        }
      }
    });
  }
  for (auto& t : producers) t.join();
  d.close();
  for (auto& t : consumers) t.join();
  const DispatcherStats st = d.stats();
  EXPECT_LE(worst.load(), static_cast<std::int64_t>(kCapacity + kConsumers));
  EXPECT_EQ(accepted.load() + rejected.load(), per_producer * kProducers);
  EXPECT_EQ(st.rejected, rejected.load());
  EXPECT_EQ(popped.load() + st.dropped, accepted.load());
  EXPECT_EQ(st.popped, popped.load());
  EXPECT_EQ(st.buffered, 0U);
  if (GetParam() == Overflow::Block) {
    EXPECT_EQ(rejected.load(), 0U);
    EXPECT_EQ(st.dropped, 0U);
  }
}

INSTANTIATE_TEST_SUITE_P(Policies, Bounded,
                         ::testing::Values(Overflow::Block, Overflow::Reject, Overflow::DropOldest),
                         [](const ::testing::TestParamInfo<Overflow>& param_info) {
                           switch (param_info.param) {
                             case Overflow::Block:
                               return std::string("Block");
                             case Overflow::Reject:
                               return std::string("Reject");
                             case Overflow::DropOldest:
                               return std::string("DropOldest");
                           }
                           return std::string("Unknown");
                         });

// The lost-wakeup hunt: bursts separated by idle gaps long enough for every consumer to park.
// A lost wakeup leaves an event stranded and the burst never completes (ctest TIMEOUT fails it).
// With fast_push, a push's count is a plain store and the parking consumer's heavy fence (W2') is
// what keeps the wake: the same hunt covers it.
struct WakeShape {
  std::chrono::nanoseconds spin;
  bool fast_push;
};
class LostWakeup : public ::testing::TestWithParam<WakeShape> {};

TEST_P(LostWakeup, EveryBurstIsConsumedAfterConsumersPark) {
  constexpr unsigned kConsumers = 3;
  constexpr unsigned kProducers = 2;
  const std::uint64_t bursts = 3000 / PUSHSTAGE_TEST_SCALE;
  DispatcherOptions options;
  options.spin = GetParam().spin;
  options.fast_push = GetParam().fast_push;
  Dispatcher<Event> d(options);
  std::atomic<std::uint64_t> consumed{0};
  std::vector<std::thread> consumers;
  for (unsigned c = 0; c < kConsumers; ++c) {
    consumers.emplace_back([&] {
      auto consumer = d.consumer();
      while (consumer.pop()) consumed.fetch_add(1, std::memory_order_relaxed);
    });
  }
  // Long-lived producers (tokenless pushes make one moodycamel sub-queue per thread), released
  // burst by burst: `go` starts a burst, `done` ends it.
  std::barrier go(kProducers + 1);
  std::barrier done(kProducers + 1);
  std::vector<std::thread> producers;
  for (unsigned p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (std::uint64_t b = 0; b < bursts; ++b) {
        go.arrive_and_wait();
        const auto size = static_cast<std::uint32_t>(1 + b % 4);  // 1..4 events each
        for (std::uint32_t s = 0; s < size; ++s) {
          EXPECT_EQ(d.push(Event{p, s}), PushResult::Pushed);
        }
        done.arrive_and_wait();
      }
    });
  }
  std::uint64_t expected = 0;
  for (std::uint64_t b = 0; b < bursts; ++b) {
    // Idle gap: wait until every consumer is parked (spinners time out after `spin`).
    while (d.stats().parked != kConsumers) std::this_thread::yield();
    go.arrive_and_wait();
    done.arrive_and_wait();
    expected += (1 + b % 4) * kProducers;
    while (consumed.load(std::memory_order_relaxed) != expected) std::this_thread::yield();
  }
  for (auto& t : producers) t.join();
  d.close();
  for (auto& t : consumers) t.join();
  EXPECT_EQ(consumed.load(), expected);
}

INSTANTIATE_TEST_SUITE_P(Spin, LostWakeup,
                         ::testing::Values(WakeShape{0ns, false}, WakeShape{5us, false},
                                           WakeShape{0ns, true}, WakeShape{5us, true}),
                         [](const ::testing::TestParamInfo<WakeShape>& param_info) {
                           return std::string(param_info.param.spin.count() == 0 ? "NoSpin"
                                                                                 : "Spin5us") +
                                  (param_info.param.fast_push ? "FastPush" : "");
                         });

}  // namespace
}  // namespace pushstage
