// dispatch_modes_stress_test.cpp: the dispatch modes beyond demand under racing producers and
// close: exactly once (or once per subscriber), order per key, totals. Bounded by counts; sizes
// scale down under sanitizers.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <latch>
#include <thread>
#include <vector>

#include "pushstage/consumer_pool.hpp"
#include "pushstage/partition_dispatcher.hpp"

namespace pushstage {
namespace {

constexpr std::uint32_t kEvents = 240'000 / PUSHSTAGE_TEST_SCALE;
constexpr std::uint32_t kProducers = 3;
constexpr std::uint32_t kKeys = 64;

struct Event {
  std::uint32_t producer;
  std::uint32_t key;
  std::uint32_t seq;  // per (producer, key)
};

// Checks, per consumer thread, that each (producer, key) arrives in sequence, and counts.
class Ledger {
 public:
  explicit Ledger(std::uint32_t per_key) : seen_(kProducers * kKeys * per_key), per_key_(per_key) {}
  void record(const Event& e) {
    seen_[(e.producer * kKeys + e.key) * per_key_ + e.seq].fetch_add(1, std::memory_order_relaxed);
  }
  // Each event seen exactly `copies` times.
  void expect_each(std::uint8_t copies) const {
    for (std::size_t i = 0; i < seen_.size(); ++i) ASSERT_EQ(seen_[i].load(), copies) << i;
  }

 private:
  std::vector<std::atomic<std::uint8_t>> seen_;
  std::uint32_t per_key_;
};

// Producers push keys round-robin with a sequence per (producer, key).
template <class D>
void produce(D& d, std::uint32_t per_key) {
  std::latch start(kProducers);
  std::vector<std::thread> threads;
  for (std::uint32_t p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      auto handle = d.producer();
      start.arrive_and_wait();
      for (std::uint32_t s = 0; s < per_key; ++s) {
        for (std::uint32_t k = 0; k < kKeys; ++k) {
          ASSERT_EQ(handle.push(Event{p, k, s}), PushResult::Pushed);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
}

// Order per (producer, key) as seen by whoever handles the key.
struct KeyOrder {
  std::vector<std::atomic<std::int64_t>> last =
      std::vector<std::atomic<std::int64_t>>(kProducers * kKeys);
  std::atomic<std::uint64_t> errors{0};
  KeyOrder() {
    for (auto& l : last) l.store(-1);
  }
  void check(const Event& e) {
    std::atomic<std::int64_t>& l = last[e.producer * kKeys + e.key];
    // Only one thread handles a key at a time (the mode's promise), so load + store suffices.
    if (static_cast<std::int64_t>(e.seq) != l.load(std::memory_order_relaxed) + 1) {
      errors.fetch_add(1);
    }
    l.store(e.seq, std::memory_order_relaxed);
  }
};

TEST(DispatchModesStress, PartitionKeepsKeyOrderAndDeliversOnce) {
  const std::uint32_t per_key = kEvents / (kProducers * kKeys);
  DispatcherOptions bounded;
  bounded.capacity = 128;
  PartitionDispatcher<Event> d(
      4, [](const Event& e) { return std::size_t{e.key}; }, bounded);
  Ledger ledger(per_key);
  KeyOrder order;
  PoolOptions o;
  o.consumers = 4;
  o.max_demand = 16;
  ConsumerPool<Event> pool(d, o, [&](Event& e) {
    order.check(e);
    ledger.record(e);
  });
  produce(d, per_key);
  d.close();
  pool.join();
  EXPECT_EQ(order.errors.load(), 0U);
  ledger.expect_each(1);
  EXPECT_EQ(d.stats().total().popped, std::uint64_t{per_key} * kProducers * kKeys);
}

}  // namespace
}  // namespace pushstage
