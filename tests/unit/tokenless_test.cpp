// tokenless_test.cpp: Dispatcher's calls without a handle, which go through the handles each
// thread keeps for the dispatcher (core/thread_cache.hpp): order, fairness, and the lifetimes of
// threads and dispatchers around those handles (ASan's run checks that nothing is touched after it
// is freed and nothing leaks).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "pushstage/dispatcher.hpp"

namespace pushstage {
namespace {

using namespace std::chrono_literals;

// A light producer's event is not stuck behind a heavy producer's backlog: tokenless pops rotate
// over producers as a Consumer handle does (after at most 16 events of one). moodycamel's
// tokenless dequeue, which they used before, takes from the fullest producer: the light event
// came after the whole backlog.
TEST(Tokenless, PopsReachALightProducerBehindAHeavyOne) {
  constexpr int kBacklog = 1000;
  Dispatcher<int> d;
  // Both producers stay alive until the pops are done: a thread that exits gives its producer
  // back, and moodycamel hands it to the next thread that asks, behind the same backlog.
  std::atomic<int> pushed{0};
  std::atomic<bool> done{false};
  auto producer = [&](int first, int n) {
    for (int i = 0; i < n; ++i) EXPECT_EQ(d.push(first + i), PushResult::Pushed);
    pushed.fetch_add(1, std::memory_order_release);
    while (!done.load(std::memory_order_acquire)) std::this_thread::yield();
  };
  std::thread heavy(producer, 0, kBacklog);
  while (pushed.load(std::memory_order_acquire) != 1) std::this_thread::yield();
  std::thread light(producer, -1, 1);
  while (pushed.load(std::memory_order_acquire) != 2) std::this_thread::yield();
  int pops_before_light = 0;
  for (;;) {
    const std::optional<int> e = d.try_pop();
    ASSERT_TRUE(e.has_value());
    if (*e == -1) break;
    ++pops_before_light;
  }
  done.store(true, std::memory_order_release);
  heavy.join();
  light.join();
  EXPECT_LE(pops_before_light, 2 * 16);  // rotation after 16 (Dispatcher's QueueTraits)
}

// Each thread's tokenless pushes are one producer: a consumer sees them in push order.
TEST(Tokenless, EachThreadsPushesArePoppedInOrder) {
  constexpr int kThreads = 4;
  constexpr std::uint64_t kEach = 20000;
  Dispatcher<std::uint64_t> d;
  std::vector<std::thread> producers;
  for (std::uint64_t t = 0; t < kThreads; ++t) {
    producers.emplace_back([&d, t] {
      for (std::uint64_t i = 0; i < kEach; ++i) (void)d.push((t << 32) | i);
    });
  }
  std::vector<std::uint64_t> next(kThreads, 0);
  for (std::uint64_t n = 0; n < kThreads * kEach; ++n) {
    const std::optional<std::uint64_t> e = d.pop();
    ASSERT_TRUE(e.has_value());
    const std::uint64_t t = *e >> 32;
    ASSERT_LT(t, kThreads);
    ASSERT_EQ(*e & 0xffffffffU, next[t]) << "producer " << t;
    ++next[t];
  }
  for (std::thread& p : producers) p.join();
}

// Threads that come and go: each keeps handles while it lives and gives them back when it exits;
// every event still arrives once, and a dispatcher closed afterwards drains.
TEST(Tokenless, ThreadsThatExitGiveTheirHandlesBack) {
  constexpr int kThreads = 200;
  constexpr int kEach = 10;
  Dispatcher<int> d;
  std::atomic<int> popped{0};
  for (int t = 0; t < kThreads; ++t) {
    std::thread([&] {
      for (int i = 0; i < kEach; ++i) (void)d.push(i);
      for (int i = 0; i < kEach / 2; ++i) {
        if (d.pop_for(1s)) popped.fetch_add(1, std::memory_order_relaxed);
      }
    }).join();
  }
  d.close();
  while (d.pop()) popped.fetch_add(1, std::memory_order_relaxed);
  EXPECT_EQ(popped.load(), kThreads * kEach);
  EXPECT_TRUE(d.drained());
  const DispatcherStats st = d.stats();
  EXPECT_EQ(st.pushed, static_cast<std::uint64_t>(kThreads * kEach));
  EXPECT_EQ(st.popped, static_cast<std::uint64_t>(kThreads * kEach));
}

// A dispatcher destroyed while a thread keeps handles for it, then built again at the same
// address: the thread gets new handles, never the dead dispatcher's.
TEST(Tokenless, ADispatcherBuiltAgainAtTheSameAddressGetsNewHandles) {
  std::optional<Dispatcher<int>> d;
  std::atomic<int> round{-1};
  std::atomic<int> done{-1};
  constexpr int kRounds = 50;
  std::thread worker([&] {
    for (int r = 0; r < kRounds; ++r) {
      while (round.load(std::memory_order_acquire) != r) std::this_thread::yield();
      for (int i = 0; i < 3; ++i) (void)d->push(r * 10 + i);
      for (int i = 0; i < 3; ++i) {
        const std::optional<int> e = d->pop();
        EXPECT_EQ(e, std::optional<int>(r * 10 + i));
      }
      done.store(r, std::memory_order_release);
    }
  });
  const void* first_address = nullptr;
  for (int r = 0; r < kRounds; ++r) {
    d.emplace();
    if (r == 0) first_address = &*d;
    EXPECT_EQ(first_address, static_cast<const void*>(&*d));
    round.store(r, std::memory_order_release);
    while (done.load(std::memory_order_acquire) != r) std::this_thread::yield();
    EXPECT_EQ(d->stats().popped, 3U);
    d.reset();  // the worker still keeps handles for it
  }
  worker.join();
}

// A thread exits after the dispatcher it used was destroyed: its exit frees the handles' memory
// without touching the dispatcher (ASan reports a use after free otherwise).
TEST(Tokenless, AThreadOutlivingItsDispatcherExitsCleanly) {
  auto d = std::make_unique<Dispatcher<int>>();
  std::atomic<bool> used{false};
  std::atomic<bool> destroyed{false};
  std::thread t([&] {
    (void)d->push(1);
    EXPECT_EQ(d->pop(), std::optional<int>(1));
    used.store(true, std::memory_order_release);
    while (!destroyed.load(std::memory_order_acquire)) std::this_thread::yield();
  });
  while (!used.load(std::memory_order_acquire)) std::this_thread::yield();
  d.reset();
  destroyed.store(true, std::memory_order_release);
  t.join();
}

// One thread on more dispatchers than its cache's hot part holds: each keeps its own handles and
// its order.
TEST(Tokenless, AThreadUsingManyDispatchersKeepsEachOnesOrder) {
  constexpr int kDispatchers = 20;
  constexpr int kEach = 50;
  std::vector<std::unique_ptr<Dispatcher<int>>> ds;
  for (int i = 0; i < kDispatchers; ++i) ds.push_back(std::make_unique<Dispatcher<int>>());
  for (int i = 0; i < kEach; ++i) {
    for (auto& d : ds) (void)d->push(i);
  }
  for (int i = 0; i < kEach; ++i) {
    for (auto& d : ds) EXPECT_EQ(d->try_pop(), std::optional<int>(i));
  }
  for (auto& d : ds) EXPECT_FALSE(d->try_pop().has_value());
}

// A push made inside an on_drop callback of a push on the same thread (both tokenless, so both on
// the thread's one producer slot) does not end the outer push for close(): close() still waits for
// the outer push, so the outer event is counted by the time close() returns.
TEST(Tokenless, APushInsideOnDropDoesNotEndTheOuterPushForClose) {
  DispatcherOptions o;
  o.capacity = 2;
  o.overflow = Overflow::DropOldest;
  std::atomic<bool> in_drop{false};
  std::atomic<bool> nested_done{false};
  Dispatcher<int>* self = nullptr;
  Dispatcher<int> d(o, [&](int&& /*victim*/, DropReason why) {
    if (why != DropReason::Oldest || nested_done.exchange(true)) return;
    // The nested push drops the oldest too (its on_drop call returns at once, above).
    (void)self->push(100);
    in_drop.store(true, std::memory_order_release);
    std::this_thread::sleep_for(200ms);  // close() runs meanwhile and must wait for us
  });
  self = &d;
  ASSERT_EQ(d.push(1), PushResult::Pushed);
  ASSERT_EQ(d.push(2), PushResult::Pushed);
  std::thread outer([&] { EXPECT_EQ(d.push(3), PushResult::DroppedOldest); });
  while (!in_drop.load(std::memory_order_acquire)) std::this_thread::yield();
  d.close();
  // Pushed: 1, 2, 100 (nested), 3 (outer): the outer push ended before close() returned.
  EXPECT_EQ(d.stats().pushed, 4U);
  outer.join();
  EXPECT_EQ(d.stats().pushed, 4U);
}

}  // namespace
}  // namespace pushstage
