// stage_stress_test.cpp: pipelines of stages under racing producers, closed while busy, resized
// and paused while they run. Bounded by counts; sizes scale down under sanitizers.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <latch>
#include <thread>
#include <vector>

#include "pushstage/dispatcher.hpp"
#include "pushstage/pool/consumer_pool.hpp"
#include "pushstage/stages/stage.hpp"

namespace pushstage {
namespace {

constexpr std::uint64_t kEvents = 300'000 / PUSHSTAGE_TEST_SCALE;
constexpr unsigned kProducers = 3;

struct Event {
  std::uint32_t producer;
  std::uint32_t seq;
};

DispatcherOptions bounded(std::size_t capacity) {
  DispatcherOptions o;
  o.capacity = capacity;
  return o;
}

// head -> stage (2 consumers, then resized) -> mid -> stage (batches) -> tail -> pool. The head is
// closed while producers still push: every push that was accepted arrives exactly once.
TEST(StageStress, CloseWhileBusyLosesNothing) {
  for (int round = 0; round < 3; ++round) {
    Dispatcher<Event> head(bounded(64));
    Dispatcher<Event> mid(bounded(32));
    Dispatcher<Event> tail(bounded(32));
    PoolOptions first;
    first.consumers = 2;
    Stage one(head, mid, first, [](Event& e, Dispatcher<Event>::Producer& out) {
      EXPECT_EQ(out.push(e), PushResult::Pushed);
    });
    PoolOptions second;
    second.consumers = 2;
    second.max_demand = 8;
    Stage two(mid, tail, second, [](std::span<Event> events, Dispatcher<Event>::Producer& out) {
      EXPECT_EQ(out.push_bulk(events.begin(), events.end()), events.size());
    });
    const std::uint64_t cap = kEvents;  // per producer, an upper bound
    std::vector<std::vector<std::atomic<std::uint8_t>>> seen(kProducers);
    for (auto& v : seen) v = std::vector<std::atomic<std::uint8_t>>(cap);
    PoolOptions last_options;
    last_options.consumers = 3;
    last_options.max_demand = 4;
    ConsumerPool<Event> last(tail, last_options, [&](Event& e) {
      seen[e.producer][e.seq].fetch_add(1, std::memory_order_relaxed);
    });

    std::vector<std::uint32_t> accepted(kProducers, 0);
    std::atomic<std::uint64_t> total{0};
    std::latch start(kProducers + 1);
    std::vector<std::thread> producers;
    for (unsigned p = 0; p < kProducers; ++p) {
      producers.emplace_back([&, p] {
        auto handle = head.producer();
        start.arrive_and_wait();
        for (std::uint32_t s = 0; s < cap; ++s) {
          if (handle.push(Event{p, s}) != PushResult::Pushed) break;  // closed
          accepted[p] = s + 1;
          total.fetch_add(1, std::memory_order_relaxed);
        }
      });
    }
    start.arrive_and_wait();
    while (total.load() < kEvents / 4) std::this_thread::yield();
    one.resize(3);
    last.pause();  // everything upstream fills and blocks; nothing may be lost meanwhile
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    last.resume();
    while (total.load() < kEvents / 2) std::this_thread::yield();
    one.resize(1);
    while (total.load() < 3 * kEvents / 4) std::this_thread::yield();
    head.close();  // producers are still pushing
    for (auto& t : producers) t.join();
    last.join();
    EXPECT_TRUE(mid.drained());
    EXPECT_TRUE(tail.drained());
    std::uint64_t handled = 0;
    for (const ConsumerStats& s : last.stats()) handled += s.handled;
    EXPECT_EQ(handled, total.load()) << "round " << round;
    for (unsigned p = 0; p < kProducers; ++p) {
      for (std::uint32_t s = 0; s < cap; ++s) {
        ASSERT_EQ(seen[p][s].load(), s < accepted[p] ? 1 : 0)
            << "round " << round << " producer " << p << " seq " << s;
      }
    }
  }
}

// Destroying a pipeline from its tail while producers run: each destructor ends its consumers
// (each handles and emits what it holds) and leaves its source open; the stage, once destroyed,
// leaves mid, which closes. Every accepted event is handled or, still buffered when the
// dispatchers go, seen by their on_drop: never lost, never both.
TEST(StageStress, DestroyingTheTailFirstLosesNothingUnseen) {
  for (int round = 0; round < 5; ++round) {
    std::atomic<std::uint64_t> dropped{0};  // accepted events that reached an on_drop
    auto count_drop = [&](Event&&, DropReason) { dropped.fetch_add(1); };
    // head's on_drop also sees the producer's last push, refused after close: not accepted.
    auto count_left = [&](Event&&, DropReason why) {
      if (why == DropReason::Destroyed) dropped.fetch_add(1);
    };
    std::atomic<std::uint64_t> handled{0};
    std::atomic<std::uint64_t> accepted{0};
    {
      Dispatcher<Event> head(bounded(64), count_left);
      Dispatcher<Event> mid(bounded(16), count_drop);
      std::thread producer;
      {
        PoolOptions o;
        o.consumers = 2;
        Stage pass(head, mid, o,
                   [](Event& e, Dispatcher<Event>::Producer& out) { (void)out.push(e); });
        {
          ConsumerPool<Event> last(mid, o, [&](Event&) { handled.fetch_add(1); });
          producer = std::thread([&] {
            for (std::uint32_t s = 0;; ++s) {
              if (head.push(Event{0, s}) != PushResult::Pushed) break;
              accepted.fetch_add(1);
            }
          });
          while (accepted.load() < kEvents / 50) std::this_thread::yield();
        }  // the tail goes first: mid stays open, the stage may fill it and wait for room
        mid.close();  // releases the stage's consumers if they wait for room in mid (refused)
      }               // then the stage: its consumers end, it leaves mid
      EXPECT_TRUE(mid.closed());
      EXPECT_FALSE(head.closed());
      head.close();  // releases the producer
      producer.join();
      EXPECT_EQ(mid.stats().refused_closed, dropped.load());  // refused so far: only by mid
    }  // the dispatchers go: what they still hold goes to on_drop
    EXPECT_EQ(handled.load() + dropped.load(), accepted.load()) << "round " << round;
  }
}

}  // namespace
}  // namespace pushstage
