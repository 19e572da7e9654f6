// dispatch_modes_stress_test.cpp: the dispatch modes beyond demand, and the demand-driven source,
// under racing producers (or consumers) and close: exactly once (or once per subscriber), order
// per key, totals. Bounded by counts; sizes scale down under sanitizers.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "pushstage/modes/broadcast_dispatcher.hpp"
#include "pushstage/modes/demand_source.hpp"
#include "pushstage/modes/keyed_dispatcher.hpp"
#include "pushstage/modes/partition_dispatcher.hpp"
#include "pushstage/pool/consumer_pool.hpp"

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

// Every subscriber gets every event once, in each producer's order, with small buffers so that the
// slowest subscriber keeps blocking the producers.
TEST(DispatchModesStress, BroadcastDeliversEachEventToEverySubscriber) {
  const std::uint32_t per_key = kEvents / (kProducers * kKeys * 4);
  DispatcherOptions small;
  small.capacity = 16;
  BroadcastDispatcher<Event> b(3, small);
  std::vector<std::unique_ptr<Ledger>> ledgers;
  std::vector<std::unique_ptr<KeyOrder>> orders;
  for (int i = 0; i < 3; ++i) {
    ledgers.push_back(std::make_unique<Ledger>(per_key));
    orders.push_back(std::make_unique<KeyOrder>());
  }
  std::vector<std::unique_ptr<ConsumerPool<Event>>> pools;
  for (std::size_t i = 0; i < 3; ++i) {
    PoolOptions o;
    o.consumers = 1;
    o.max_demand = i == 0 ? 1 : 8;
    pools.push_back(std::make_unique<ConsumerPool<Event>>(b.subscriber(i), o, [&, i](Event& e) {
      orders[i]->check(e);
      ledgers[i]->record(e);
    }));
  }
  produce(b, per_key);
  b.close();
  for (auto& p : pools) p->join();
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(orders[i]->errors.load(), 0U);
    ledgers[i]->expect_each(1);
  }
}

// close() while producers push: all or nothing. Each accepted push reached all three
// subscribers; a refused one reached none.
// All or nothing, per event id of a broadcast to 3 subscribers: each saw it once (delivered), or
// none did (never pushed, 0; or refused, which the producer marks 100 in every row). Returns how
// many were delivered; fails the test on an event that reached some subscribers and not others.
std::uint64_t delivered_everywhere(
    const std::vector<std::vector<std::atomic<std::uint8_t>>>& seen) {
  std::uint64_t delivered = 0;
  for (std::size_t id = 0; id < seen[0].size(); ++id) {
    const std::uint8_t a = seen[0][id].load();
    for (std::size_t s = 1; s < seen.size(); ++s)
      EXPECT_EQ(seen[s][id].load(), a) << "event " << id;
    EXPECT_TRUE(a == 0 || a == 1 || a == 100) << "event " << id << " seen " << int{a};
    delivered += a == 1 ? 1 : 0;
  }
  return delivered;
}

TEST(DispatchModesStress, BroadcastCloseIsAllOrNothing) {
  for (int round = 0; round < 5; ++round) {
    DispatcherOptions small;
    small.capacity = 8;
    BroadcastDispatcher<std::uint32_t> b(3, small);
    std::vector<std::vector<std::atomic<std::uint8_t>>> seen(3);
    const std::uint32_t cap = kEvents;
    for (auto& v : seen) v = std::vector<std::atomic<std::uint8_t>>(cap);
    PoolOptions o;
    o.consumers = 3;
    o.max_demand = 4;
    std::atomic<std::size_t> next{0};
    ConsumerPool<std::uint32_t> pool(b, o, [&](std::uint32_t& e) {
      thread_local std::size_t me = next.fetch_add(1);
      seen[me][e].fetch_add(1, std::memory_order_relaxed);
    });
    std::atomic<std::uint32_t> ticket{0};
    std::atomic<std::uint64_t> accepted{0};
    std::vector<std::thread> producers;
    for (std::uint32_t p = 0; p < kProducers; ++p) {
      producers.emplace_back([&] {
        auto handle = b.producer();
        for (;;) {
          const std::uint32_t id = ticket.fetch_add(1);
          if (id >= cap) break;
          if (handle.push(id) != PushResult::Pushed) {
            // Refused: reached nobody. Mark it so the check below expects zero copies.
            for (auto& v : seen) v[id].fetch_add(100, std::memory_order_relaxed);
            break;
          }
          accepted.fetch_add(1);
        }
      });
    }
    while (accepted.load() < cap / 8) std::this_thread::yield();
    b.close();
    for (auto& t : producers) t.join();
    pool.join();
    EXPECT_EQ(delivered_everywhere(seen), accepted.load()) << "round " << round;
  }
}

// Close while producers wait for room in a subscriber whose consumer has stopped (it waits until
// close() has returned): close() must not wait for it, and every push is still all or nothing,
// through handles and tokenless pushes alike.
TEST(DispatchModesStress, BroadcastCloseDoesNotWaitForAStoppedSubscriber) {
  for (int round = 0; round < 5; ++round) {
    DispatcherOptions small;
    small.capacity = 4;
    BroadcastDispatcher<std::uint32_t> b(3, small);
    const std::uint32_t cap = kEvents / 8;
    std::vector<std::vector<std::atomic<std::uint8_t>>> seen(3);
    for (auto& v : seen) v = std::vector<std::atomic<std::uint8_t>>(cap);
    std::atomic<bool> close_returned{false};
    std::atomic<std::uint64_t> stopped_took{0};
    PoolOptions one;
    one.pin = false;
    std::vector<std::unique_ptr<ConsumerPool<std::uint32_t>>> pools;
    for (std::size_t i = 0; i < 3; ++i) {
      pools.push_back(std::make_unique<ConsumerPool<std::uint32_t>>(
          b.subscriber(i), one, [&, i](std::uint32_t& e) {
            if (i == 2 && stopped_took.fetch_add(1) == 16) {
              while (!close_returned.load()) std::this_thread::yield();  // stopped until close()
            }
            seen[i][e].fetch_add(1, std::memory_order_relaxed);
          }));
    }
    std::atomic<std::uint32_t> ticket{0};
    std::atomic<std::uint64_t> accepted{0};
    std::vector<std::thread> producers;
    for (std::uint32_t p = 0; p < kProducers; ++p) {
      producers.emplace_back([&, p] {
        std::optional<BroadcastDispatcher<std::uint32_t>::Producer> handle;
        if (p % 2 == 0) handle.emplace(b.producer());
        for (;;) {
          const std::uint32_t id = ticket.fetch_add(1);
          if (id >= cap) break;
          const PushResult r = handle ? handle->push(id) : b.push(id);
          if (r != PushResult::Pushed) {
            for (auto& v : seen) v[id].fetch_add(100, std::memory_order_relaxed);
            break;
          }
          accepted.fetch_add(1);
        }
      });
    }
    while (stopped_took.load() <= 16) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // producers fill subscriber 2
    b.close();  // must return although subscriber 2's consumer is stopped
    close_returned = true;
    for (auto& t : producers) t.join();
    for (auto& pool : pools) pool->join();
    EXPECT_EQ(delivered_everywhere(seen), accepted.load()) << "round " << round;
    EXPECT_EQ(b.stats().pushed, accepted.load());
  }
}

// Subscriptions join and leave (leave(), finish(), and a stalled one that holds the producers
// back until it leaves) while producers push, through handles and tokenless pushes. The
// subscriber made at construction gets every event once, in order per key. Each subscription gets,
// from each producer, an unbroken run of that producer's (selected) events: nothing lost while it
// was subscribed, nothing twice; what it had buffered when it left went to on_drop as Cancelled.
TEST(DispatchModesStress, BroadcastSubscribersComeAndGoWhileProducersPush) {
  const std::uint32_t per_key = kEvents / (kProducers * kKeys * 4);
  using Fan = BroadcastDispatcher<Event>;
  // One subscription's events: handled by its pool, or cancelled at its leave (both recorded on
  // the churn thread's side, under `m`).
  struct Record {
    std::mutex m;
    std::vector<Event> events;
  };
  std::atomic<Record*> leaving{nullptr};  // the subscription the churn thread is taking out
  std::atomic<std::uint64_t> cancelled{0};
  DispatcherOptions small;
  small.capacity = 16;
  Fan b(1, small, {}, [&](Event&& e, DropReason why) {
    ASSERT_EQ(why, DropReason::Cancelled);  // only leave() drops here: on the churn thread
    cancelled.fetch_add(1);
    Record* r = leaving.load();
    const std::lock_guard lock(r->m);
    r->events.push_back(e);
  });
  Ledger ledger(per_key);
  KeyOrder order;
  PoolOptions one;
  one.pin = false;
  one.max_demand = 4;
  ConsumerPool<Event> all(b.subscriber(0), one, [&](Event& e) {
    order.check(e);
    ledger.record(e);
  });

  std::atomic<std::uint32_t> producing{kProducers};
  std::latch start(kProducers + 1);
  std::vector<std::thread> producers;
  for (std::uint32_t p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      std::optional<Fan::Producer> handle;
      if (p % 2 == 0) handle.emplace(b.producer());
      start.arrive_and_wait();
      for (std::uint32_t s = 0; s < per_key; ++s) {
        for (std::uint32_t k = 0; k < kKeys; ++k) {
          const Event e{p, k, s};
          ASSERT_EQ(handle ? handle->push(e) : b.push(e), PushResult::Pushed);
        }
      }
      producing.fetch_sub(1);
    });
  }

  std::vector<std::unique_ptr<Record>> records;
  std::vector<bool> even_only;  // per record: its selector took even keys only
  std::uint64_t sub_pushed = 0;
  start.arrive_and_wait();
  for (std::uint32_t round = 0; producing.load() != 0; ++round) {
    Fan::SubscriberOptions so;
    so.buffer.capacity = 8;
    const bool even = round % 4 == 1;
    if (even) so.selector = [](const Event& e) { return e.key % 2 == 0; };
    records.push_back(std::make_unique<Record>());
    even_only.push_back(even);
    Record& r = *records.back();
    Fan::Subscription sub = b.subscribe(std::move(so));
    if (round % 3 == 2) {  // stalled: no consumer; the producers wait for it until it leaves
      while (sub.dispatcher().stats().buffered < 8 && producing.load() != 0) {
        std::this_thread::yield();
      }
      leaving.store(&r);
      sub.leave();
    } else {
      PoolOptions o;
      o.pin = false;
      o.max_demand = round % 2 == 0 ? 1 : 4;
      ConsumerPool<Event> pool(sub, o, [&r](Event& e) {
        const std::lock_guard lock(r.m);
        r.events.push_back(e);
      });
      const std::uint64_t until = sub.dispatcher().stats().pushed + 200;
      while (sub.dispatcher().stats().pushed < until && producing.load() != 0) {
        std::this_thread::yield();
      }
      leaving.store(&r);
      if (round % 2 == 0) {
        sub.leave();  // its pool may still take some; the rest is cancelled
      } else {
        sub.finish();  // its pool takes all of it
      }
      pool.join();
    }
    sub_pushed += sub.dispatcher().stats().pushed;
  }
  for (auto& t : producers) t.join();
  b.close();
  all.join();
  EXPECT_EQ(order.errors.load(), 0U);
  ledger.expect_each(1);
  EXPECT_EQ(b.stats().cancelled, cancelled.load());

  // Per subscription and producer: consecutive (selected) events of the producer's push order.
  std::uint64_t recorded = 0;
  for (std::size_t i = 0; i < records.size(); ++i) {
    const std::uint32_t stride = even_only[i] ? 2 : 1;
    std::vector<std::vector<std::uint32_t>> runs(kProducers);
    for (const Event& e : records[i]->events) {
      if (even_only[i]) {
        ASSERT_EQ(e.key % 2, 0U);
      }
      runs[e.producer].push_back((e.seq * kKeys + e.key) / stride);
    }
    for (auto& run : runs) {
      std::sort(run.begin(), run.end());  // handled and cancelled ones interleave in time
      for (std::size_t j = 1; j < run.size(); ++j) {
        ASSERT_EQ(run[j], run[j - 1] + 1) << "subscription " << i << ": a gap or a repeat";
      }
    }
    recorded += records[i]->events.size();
  }
  EXPECT_EQ(recorded, sub_pushed);  // every copy it was given: handled or cancelled, once
  EXPECT_GT(records.size(), 2U);
}

// Keys move between consumers, yet each key's events are handled one at a time in order. 16 slots
// for 64 keys, and 1 slot for all (its ready ring of 2 cells laps on every other hand-back).
TEST(DispatchModesStress, KeyedKeepsKeyOrderOnAnyConsumer) {
  const std::uint32_t per_key = kEvents / (kProducers * kKeys);
  for (const auto& [slots, capacity] :
       {std::pair<std::size_t, std::size_t>{16, 0}, {16, 100}, {1, 0}, {1, 100}}) {
    SCOPED_TRACE("slots " + std::to_string(slots) + ", capacity " + std::to_string(capacity));
    DispatcherOptions o;
    o.capacity = capacity;
    KeyedDispatcher<Event> d(
        slots, [](const Event& e) { return std::size_t{e.key}; }, o);
    Ledger ledger(per_key);
    KeyOrder order;
    std::vector<std::atomic<int>> inside(kKeys);
    std::atomic<int> overlaps{0};
    PoolOptions po;
    po.consumers = 4;
    po.max_demand = 8;
    ConsumerPool<Event> pool(d, po, [&](Event& e) {
      if (inside[e.key].fetch_add(1) != 0) overlaps.fetch_add(1);
      order.check(e);
      ledger.record(e);
      inside[e.key].fetch_sub(1);
    });
    produce(d, per_key);
    d.close();
    pool.join();
    EXPECT_EQ(overlaps.load(), 0);
    EXPECT_EQ(order.errors.load(), 0U);
    ledger.expect_each(1);
    const KeyedStats s = d.stats();
    EXPECT_EQ(s.handled, std::uint64_t{per_key} * kProducers * kKeys);
    EXPECT_EQ(s.buffered, 0U);
  }
}

// KeyedDispatcher's ready ring alone, over many laps: threads pop a slot index, hold it and append
// it again, as consumers hand slots back (each index in the ring at most once). 3 indices in 4
// cells: appends often reach a cell whose pop one lap earlier has not freed it yet (Q1's wait).
// Each index has one holder at a time; none is lost or duplicated.
TEST(DispatchModesStress, KeyedReadyRingHandsEachSlotToOneHolderAtATime) {
  constexpr std::uint32_t kIndices = 3;
  constexpr std::uint32_t kThreads = 4;
  const std::uint32_t rounds = kEvents / kThreads;  // pops per thread
  detail::ReadyRing ring(kIndices);
  for (std::uint32_t i = 0; i < kIndices; ++i) ring.push(i);
  std::vector<std::atomic<int>> holders(kIndices);
  std::vector<std::atomic<std::uint64_t>> taken(kIndices);
  std::atomic<int> overlaps{0};
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (std::uint32_t t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      for (std::uint32_t n = 0; n < rounds; ++n) {
        std::uint32_t id = 0;
        while (!ring.try_pop(id)) std::this_thread::yield();
        if (holders.at(id).fetch_add(1) != 0) overlaps.fetch_add(1);
        taken[id].fetch_add(1, std::memory_order_relaxed);
        holders[id].fetch_sub(1);
        ring.push(id);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(overlaps.load(), 0);
  std::uint64_t total = 0;
  for (const auto& n : taken) total += n.load();
  EXPECT_EQ(total, std::uint64_t{rounds} * kThreads);
  // Each index exactly once in the ring at the end, in some order.
  std::vector<int> left(kIndices, 0);
  std::uint32_t id = 0;
  while (ring.try_pop(id)) ++left.at(id);
  for (std::uint32_t i = 0; i < kIndices; ++i) EXPECT_EQ(left[i], 1) << "index " << i;
}

// close() while producers push into a bounded KeyedDispatcher: every accepted push is handled.
TEST(DispatchModesStress, KeyedCloseWhileBusyLosesNothing) {
  for (int round = 0; round < 5; ++round) {
    DispatcherOptions o;
    o.capacity = 64;
    KeyedDispatcher<std::uint32_t> d(
        8, [](const std::uint32_t& e) { return std::size_t{e}; }, o);
    std::atomic<std::uint64_t> handled{0};
    PoolOptions po;
    po.consumers = 3;
    po.max_demand = 4;
    ConsumerPool<std::uint32_t> pool(d, po, [&](std::uint32_t&) { handled.fetch_add(1); });
    std::atomic<std::uint64_t> accepted{0};
    std::vector<std::thread> producers;
    for (std::uint32_t p = 0; p < kProducers; ++p) {
      producers.emplace_back([&, p] {
        for (std::uint32_t i = p;; i += kProducers) {
          if (d.push(i) != PushResult::Pushed) break;
          accepted.fetch_add(1);
        }
      });
    }
    while (accepted.load() < kEvents / 8) std::this_thread::yield();
    d.close();
    for (auto& t : producers) t.join();
    pool.join();
    EXPECT_EQ(handled.load(), accepted.load()) << "round " << round;
    EXPECT_TRUE(d.drained());
  }
}

// A DemandSource's generator, for the stress tests: pages of a random size around the demand
// (sometimes none, sometimes more than asked), numbered 0, 1, ... up to `end`. Runs on the source's
// thread only; made() may be read once the source is gone.
class RandomPages {
 public:
  explicit RandomPages(std::uint32_t end) : end_(end) {}
  bool operator()(std::size_t demand, std::vector<std::uint32_t>& out) {
    // None now and then (the source asks again after kIdlePause), else 1 to 2 * demand.
    const std::size_t page = rng_() % 64 == 0 ? 0 : 1 + rng_() % (2 * demand);
    for (std::size_t i = 0; i < page && next_ < end_; ++i) out.push_back(next_++);
    return next_ < end_;
  }
  [[nodiscard]] std::uint32_t made() const { return next_; }

 private:
  std::minstd_rand rng_{7};
  std::uint32_t next_ = 0;
  std::uint32_t end_;
};

// DS1-DS4 under churn: two pools over one DemandSource (one taking chunks and topping up, one an
// event at a time) while the first resizes as the stream goes, so that waits end by interrupt and
// withdraw their demand. The generator makes pages of random size. Every event is handled exactly
// once, the end of the stream lets both pools drain, and once every consumer has ended the demand
// count is exactly what was taken (nothing left asked by a wait that ended).
TEST(DispatchModesStress, DemandSourceDeliversOnceWhileConsumersComeAndGo) {
  constexpr std::uint32_t kMade = kEvents / 4;
  constexpr std::uint32_t kResizes = 40;
  std::vector<std::atomic<std::uint8_t>> times(kMade);
  std::atomic<std::uint32_t> handled{0};
  auto record = [&](std::uint32_t e) {
    times[e].fetch_add(1, std::memory_order_relaxed);
    handled.fetch_add(1, std::memory_order_relaxed);
  };
  RandomPages pages(kMade);
  {
    DemandSource<std::uint32_t> source(std::ref(pages));
    PoolOptions chunky;
    chunky.consumers = 2;
    chunky.pin = false;
    chunky.max_demand = 7;
    chunky.min_demand = 3;
    ConsumerPool<std::uint32_t> a(source, chunky, [&](std::span<std::uint32_t> chunk) {
      for (const std::uint32_t e : chunk) record(e);
    });
    PoolOptions single;
    single.pin = false;
    single.max_demand = 1;
    ConsumerPool<std::uint32_t> b(source, single, [&](std::uint32_t& e) { record(e); });
    for (std::uint32_t round = 1; round < kResizes; ++round) {
      while (handled.load(std::memory_order_relaxed) < kMade / kResizes * round) {
        std::this_thread::yield();
      }
      a.resize(round % 2 == 0 ? 2 : 3);
    }
    a.join();
    b.join();
    EXPECT_EQ(source.error(), nullptr);
    EXPECT_EQ(source.stats().asked, kMade);
  }
  EXPECT_EQ(pages.made(), kMade);
  for (std::size_t i = 0; i < times.size(); ++i) ASSERT_EQ(times[i].load(), 1) << "event " << i;
}

// close() while consumers wait and the generator runs: no event is lost or handled twice; what the
// generator made after close() goes to on_drop.
TEST(DispatchModesStress, DemandSourceCloseInFlightLosesNothing) {
  constexpr std::uint32_t kMade = kEvents / 4;
  constexpr int kRounds = 8;
  for (int round = 0; round < kRounds; ++round) {
    std::vector<std::atomic<std::uint8_t>> times(kMade);
    std::atomic<std::uint64_t> handled{0};
    std::atomic<std::uint64_t> dropped{0};
    RandomPages pages(kMade);
    {
      DemandSource<std::uint32_t> source(std::ref(pages), {},
                                         [&](std::uint32_t&& e, DropReason why) {
                                           EXPECT_EQ(why, DropReason::Closed);
                                           times[e].fetch_add(1, std::memory_order_relaxed);
                                           dropped.fetch_add(1, std::memory_order_relaxed);
                                         });
      PoolOptions o;
      o.consumers = 3;
      o.pin = false;
      o.max_demand = 5;
      ConsumerPool<std::uint32_t> pool(source, o, [&](std::uint32_t& e) {
        times[e].fetch_add(1, std::memory_order_relaxed);
        handled.fetch_add(1, std::memory_order_relaxed);
      });
      const std::uint64_t close_after = kMade / kRounds * static_cast<std::uint64_t>(round);
      while (handled.load(std::memory_order_relaxed) < close_after) std::this_thread::yield();
      source.close();
      pool.join();
      EXPECT_EQ(source.stats().asked, handled.load());  // no demand left behind by ended waits
    }
    // Each event made: handled once or dropped once.
    EXPECT_EQ(handled.load() + dropped.load(), pages.made());
    for (std::uint32_t i = 0; i < pages.made(); ++i) ASSERT_EQ(times[i].load(), 1) << "event " << i;
  }
}

}  // namespace
}  // namespace pushstage
