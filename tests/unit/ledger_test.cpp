// ledger_test.cpp: the epochs behind Pipeline::barrier() (core/ledger.hpp): a barrier passes once
// everything that entered before it has left, never earlier, in order, also when the ring of
// epochs is full; and under threads that enter, leave and take barriers at once.
#include "pushstage/core/ledger.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <future>
#include <latch>
#include <mutex>
#include <thread>
#include <vector>

namespace pushstage::detail {
namespace {

using namespace std::chrono_literals;

bool ready(const std::future<void>& f) { return f.wait_for(0s) == std::future_status::ready; }

TEST(Ledger, ABarrierWithNothingInFlightIsReadyAtOnce) {
  Ledger ledger;
  EXPECT_TRUE(ready(ledger.barrier()));
  const std::uint64_t e = ledger.enter();
  ledger.leave(e);
  EXPECT_TRUE(ready(ledger.barrier()));
}

TEST(Ledger, ABarrierWaitsForEverythingThatEnteredBeforeIt) {
  Ledger ledger;
  const std::uint64_t a = ledger.enter();
  const std::uint64_t b = ledger.enter();
  std::future<void> barrier = ledger.barrier();
  const std::uint64_t later = ledger.enter();
  EXPECT_NE(later, a);
  ledger.leave(later);  // what came after does not count
  EXPECT_FALSE(ready(barrier));
  ledger.leave(a);
  EXPECT_FALSE(ready(barrier));
  ledger.leave(b);
  EXPECT_TRUE(ready(barrier));
}

TEST(Ledger, BarriersPassInOrder) {
  Ledger ledger;
  const std::uint64_t first = ledger.enter();
  std::future<void> one = ledger.barrier();
  const std::uint64_t second = ledger.enter();
  std::future<void> two = ledger.barrier();
  ledger.leave(second);  // epoch 2 is empty, but epoch 1 is not: the second barrier waits too
  EXPECT_FALSE(ready(one));
  EXPECT_FALSE(ready(two));
  ledger.leave(first);
  EXPECT_TRUE(ready(one));
  EXPECT_TRUE(ready(two));
}

TEST(Ledger, LeavingManyAtOnceCounts) {
  Ledger ledger;
  const std::uint64_t e = ledger.enter();
  (void)ledger.enter();
  (void)ledger.enter();
  std::future<void> barrier = ledger.barrier();
  ledger.leave(e, 2);
  EXPECT_FALSE(ready(barrier));
  ledger.leave(e, 1);
  EXPECT_TRUE(ready(barrier));
}

// kSlots - 1 closed epochs that are not done, and the current one, fill the ring: a barrier then
// waits on the current epoch, which closes as soon as the oldest retires. It never passes before
// what entered before it has left.
TEST(Ledger, ABarrierOnAFullRingStillWaitsForEverythingBeforeIt) {
  Ledger ledger;
  std::vector<std::uint64_t> held;
  std::vector<std::future<void>> barriers;
  for (std::size_t i = 0; i + 1 < Ledger::kSlots; ++i) {
    held.push_back(ledger.enter());
    barriers.push_back(ledger.barrier());
  }
  std::future<void> waiting = ledger.barrier();  // the ring is full: waits on the current epoch
  const std::uint64_t last = ledger.enter();     // after it, but in that epoch too
  for (std::size_t i = held.size(); i-- > 1;) ledger.leave(held[i]);
  for (auto& b : barriers) EXPECT_FALSE(ready(b));
  EXPECT_FALSE(ready(waiting));
  ledger.leave(held[0]);  // everything the first kSlots barriers wait for has left
  for (auto& b : barriers) EXPECT_TRUE(ready(b));
  EXPECT_FALSE(ready(waiting));  // its epoch closed only now, with `last` in it
  ledger.leave(last);
  EXPECT_TRUE(ready(waiting));
  EXPECT_TRUE(ready(ledger.barrier()));
}

// Producers enter and hand each message to a leaver thread; a barrier thread notes how many each
// producer had entered (enter() returned) before it takes a barrier, and once it passes checks
// that every one of those has left. Sizes are small: the check is the order, not the load.
TEST(LedgerStress, EveryBarrierPassesOnlyAfterWhatEnteredBeforeIt) {
  constexpr std::size_t kProducers = 3;
  constexpr std::uint32_t kPerProducer = 20'000 / PUSHSTAGE_TEST_SCALE;
  Ledger ledger;
  struct Entry {
    std::size_t producer;
    std::uint32_t seq;
    std::uint64_t epoch;
  };
  std::mutex m;
  std::vector<Entry> queue;
  std::atomic<bool> producers_done{false};
  std::vector<std::vector<std::atomic<bool>>> left(kProducers);
  for (auto& l : left) l = std::vector<std::atomic<bool>>(kPerProducer);
  std::vector<std::atomic<std::uint32_t>> entered(kProducers);
  std::latch go(static_cast<std::ptrdiff_t>(kProducers) + 2);

  std::vector<std::thread> threads;
  for (std::size_t p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      go.arrive_and_wait();
      for (std::uint32_t s = 0; s < kPerProducer; ++s) {
        const std::uint64_t e = ledger.enter();
        entered[p].store(s + 1, std::memory_order_release);
        const std::lock_guard lock(m);
        queue.push_back({p, s, e});
      }
    });
  }
  std::thread leaver([&] {
    go.arrive_and_wait();
    std::uint64_t turn = 0;
    for (;;) {
      std::vector<Entry> batch;
      {
        const std::lock_guard lock(m);
        batch.swap(queue);
      }
      if (batch.empty()) {
        if (producers_done.load(std::memory_order_acquire)) {
          const std::lock_guard lock(m);
          if (queue.empty()) break;
        }
        std::this_thread::yield();
        continue;
      }
      // Leave out of order: newest first every other round.
      if (++turn % 2 == 0) std::reverse(batch.begin(), batch.end());
      for (const Entry& e : batch) {
        left[e.producer][e.seq].store(true, std::memory_order_relaxed);
        ledger.leave(e.epoch);  // release: the flag above is seen once the barrier passes
      }
    }
  });
  std::atomic<int> barriers_checked{0};
  std::thread barrier_taker([&] {
    go.arrive_and_wait();
    while (!producers_done.load(std::memory_order_acquire)) {
      std::uint32_t before[kProducers];
      for (std::size_t p = 0; p < kProducers; ++p)
        before[p] = entered[p].load(std::memory_order_acquire);
      std::future<void> b = ledger.barrier();
      ASSERT_EQ(b.wait_for(60s), std::future_status::ready);  // guards a hang only
      for (std::size_t p = 0; p < kProducers; ++p) {
        for (std::uint32_t s = 0; s < before[p]; ++s) {
          ASSERT_TRUE(left[p][s].load(std::memory_order_relaxed))
              << "barrier passed before producer " << p << "'s message " << s << " left";
        }
      }
      barriers_checked.fetch_add(1);
    }
  });
  for (std::thread& t : threads) t.join();
  producers_done.store(true, std::memory_order_release);
  leaver.join();
  barrier_taker.join();
  EXPECT_GT(barriers_checked.load(), 0);
  EXPECT_EQ(ledger.barrier().wait_for(0s), std::future_status::ready);
}

}  // namespace
}  // namespace pushstage::detail
