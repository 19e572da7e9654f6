// fault_test.cpp: what happens when something goes wrong around a dispatcher, and the proof that
// nothing is lost or run twice meanwhile:
//   - handlers that throw: on_error sees each exception once, the consumer goes on;
//   - a handler that blocks for a long time: the other consumers keep draining;
//   - a consumer starved of CPU (pinned with busy peers, its thread under SCHED_IDLE);
//   - producers that stop mid-burst: return, throw, pthread_exit, hand their handle to another
//     thread, or die inside push() (the payload's move constructor throws);
//   - destruction with events in flight: a pool destroyed without join() while producers push,
//     a dispatcher destroyed holding buffered events (no leak, no double destroy).
// Sizes come from kEvents, divided by PUSHSTAGE_TEST_SCALE under sanitizers; every wait is for a
// count or a condition (ctest's TIMEOUT catches a hang), never for a time.
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <latch>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "pushstage/cpus.hpp"
#include "pushstage/dispatcher.hpp"
#include "pushstage/pool/consumer_pool.hpp"

namespace pushstage {
namespace {

using namespace std::chrono_literals;

constexpr std::uint32_t kEvents = 20'000 / PUSHSTAGE_TEST_SCALE;

thread_local volatile std::uint32_t g_sink = 0;  // busy work the optimizer keeps

struct Event {
  std::uint32_t producer;
  std::uint32_t seq;
};

// Handler calls per event of each producer, and a per-consumer-thread order check.
class Ledger {
 public:
  Ledger(std::uint32_t producers, std::uint32_t per_producer)
      : per_producer_(per_producer),
        calls_(std::make_unique<std::atomic<std::uint8_t>[]>(producers * per_producer)),
        accepted_(producers * per_producer, 0) {}

  void handled(const Event& e) {
    calls_[index(e)].fetch_add(1, std::memory_order_relaxed);
    thread_local std::vector<std::int64_t> last;
    thread_local const Ledger* owner = nullptr;
    if (owner != this) {
      owner = this;
      last.clear();
    }
    if (last.size() <= e.producer) last.resize(e.producer + 1, -1);
    if (static_cast<std::int64_t>(e.seq) <= last[e.producer]) order_ok_.store(false);
    last[e.producer] = e.seq;
  }
  // Called by the producer that owns e (one writer per element).
  void accepted(const Event& e) { accepted_[index(e)] = 1; }

  // Every accepted event handled exactly once, no other event handled; returns the count.
  std::uint64_t check_exactly_once() const { return check(false).handled; }

  struct Outcome {
    std::uint64_t accepted = 0, handled = 0, missing = 0;
  };
  // No event handled twice, none handled that was not accepted; with allow_missing, accepted
  // events may be missing (DropOldest dropped them).
  Outcome check(bool allow_missing) const {
    Outcome out;
    for (std::size_t i = 0; i < accepted_.size(); ++i) {
      const unsigned calls = calls_[i].load(std::memory_order_relaxed);
      const unsigned most = accepted_[i] != 0 ? 1U : 0U;
      const bool ok = allow_missing ? calls <= most : calls == most;
      EXPECT_TRUE(ok) << "producer " << i / per_producer_ << " event " << i % per_producer_ << ": "
                      << calls << " handler calls, accepted " << most;
      if (!ok) return out;  // one report is enough
      out.accepted += most;
      out.handled += calls;
      out.missing += most - calls;
    }
    EXPECT_TRUE(order_ok_.load()) << "a producer's order broke at some consumer";
    return out;
  }

 private:
  std::size_t index(const Event& e) const {
    return std::size_t{e.producer} * per_producer_ + e.seq;
  }
  std::uint32_t per_producer_;
  std::unique_ptr<std::atomic<std::uint8_t>[]> calls_;
  std::vector<std::uint8_t> accepted_;
  std::atomic<bool> order_ok_{true};
};

std::uint64_t total_handled(const std::vector<ConsumerStats>& stats) {
  std::uint64_t n = 0;
  for (const ConsumerStats& s : stats) n += s.handled;
  return n;
}

// ---- handlers that throw ----

struct HandlerFailure {
  std::uint32_t producer, seq;
};

class ThrowingHandlers : public ::testing::TestWithParam<std::size_t> {};

// Every fifth event throws (three kinds of exception). Each reaches on_error once, the consumer
// that threw goes on with its batch and the next ones, and every other event is handled once.
TEST_P(ThrowingHandlers, OnErrorSeesEachAndTheConsumerGoesOn) {
  constexpr std::uint32_t kProducers = 2;
  Dispatcher<Event> d;
  Ledger ledger(kProducers, kEvents);
  std::mutex mutex;
  std::vector<std::uint8_t> reported(std::size_t{kProducers} * kEvents, 0);
  std::atomic<std::uint64_t> other_errors{0};
  PoolOptions o;
  o.consumers = 3;
  o.pin = false;
  o.max_demand = GetParam();
  o.on_error = [&](std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (const HandlerFailure& f) {
      const std::lock_guard lock(mutex);
      ++reported[std::size_t{f.producer} * kEvents + f.seq];
    } catch (...) {
      other_errors.fetch_add(1);
    }
  };
  ConsumerPool<Event> pool(d, o, [&](Event& e) {
    ledger.handled(e);
    if (e.seq % 5 != 0) return;
    if (e.seq % 3 == 0) throw HandlerFailure{e.producer, e.seq};  // not a std::exception
    if (e.seq % 3 == 1) {
      throw std::runtime_error("event " + std::to_string(e.seq));
    }
    throw 42;
  });
  std::latch start(kProducers);
  std::vector<std::thread> producers;
  for (std::uint32_t p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      auto handle = d.producer();
      start.arrive_and_wait();
      for (std::uint32_t s = 0; s < kEvents; ++s) {
        ASSERT_EQ(handle.push(Event{p, s}), PushResult::Pushed);
        ledger.accepted(Event{p, s});
      }
    });
  }
  for (auto& t : producers) t.join();
  d.close();
  pool.join();

  EXPECT_EQ(ledger.check_exactly_once(), std::uint64_t{kProducers} * kEvents);
  std::uint64_t throwers = 0, typed = 0;
  for (std::uint32_t p = 0; p < kProducers; ++p) {
    for (std::uint32_t s = 0; s < kEvents; ++s) {
      const bool throws = s % 5 == 0;
      throwers += throws ? 1 : 0;
      const bool typed_throw = throws && s % 3 == 0;
      typed += typed_throw ? 1 : 0;
      ASSERT_EQ(reported[std::size_t{p} * kEvents + s], typed_throw ? 1 : 0) << p << "/" << s;
    }
  }
  EXPECT_EQ(other_errors.load(), throwers - typed);
  std::uint64_t failed = 0;
  for (const ConsumerStats& s : pool.stats()) failed += s.failed;
  EXPECT_EQ(failed, throwers);
  EXPECT_EQ(total_handled(pool.stats()), std::uint64_t{kProducers} * kEvents - throwers);
}

INSTANTIATE_TEST_SUITE_P(MaxDemand, ThrowingHandlers, ::testing::Values(1, 8),
                         [](const ::testing::TestParamInfo<std::size_t>& param) {
                           return "max_demand_" + std::to_string(param.param);
                         });

// A consumer whose every call throws, with no on_error at all: it counts them and goes on.
TEST(Faults, EveryCallThrowingWithoutOnErrorStillDrains) {
  Dispatcher<int> d;
  PoolOptions o;
  o.consumers = 2;
  o.pin = false;
  std::atomic<std::uint64_t> calls{0};
  ConsumerPool<int> pool(d, o, [&](int&) {
    calls.fetch_add(1);
    throw std::logic_error("always");
  });
  for (std::uint32_t i = 0; i < kEvents; ++i)
    ASSERT_EQ(d.push(static_cast<int>(i)), PushResult::Pushed);
  d.close();
  pool.join();
  std::uint64_t failed = 0;
  for (const ConsumerStats& s : pool.stats()) failed += s.failed;
  EXPECT_EQ(calls.load(), kEvents);
  EXPECT_EQ(failed, kEvents);
  EXPECT_EQ(total_handled(pool.stats()), 0U);
}

// ---- a handler that blocks ----

class BlockedHandler : public ::testing::TestWithParam<std::size_t> {};

// Event 0 blocks its handler on a latch until the test has seen every later event handled by the
// other consumers; only then is it released. With max_demand k the blocked consumer holds only
// event 0: it took its batch when nothing else was buffered. A bounded dispatcher (Block, room
// for 16) shows that the blocked handler holds no room either: producers keep pushing.
TEST_P(BlockedHandler, OtherConsumersKeepDraining) {
  DispatcherOptions options;
  options.capacity = 16;
  Dispatcher<Event> d(options);
  Ledger ledger(1, kEvents + 1);
  std::latch release(1);
  std::atomic<bool> blocked{false};
  std::atomic<std::uint64_t> others{0};
  PoolOptions o;
  o.consumers = 3;
  o.pin = false;
  o.max_demand = GetParam();
  ConsumerPool<Event> pool(d, o, [&](Event& e) {
    ledger.handled(e);
    if (e.seq == 0) {
      blocked.store(true);
      release.wait();
      return;
    }
    others.fetch_add(1, std::memory_order_relaxed);
  });
  auto producer = d.producer();
  ASSERT_EQ(producer.push(Event{0, 0}), PushResult::Pushed);
  ledger.accepted(Event{0, 0});
  while (!blocked.load()) std::this_thread::yield();
  for (std::uint32_t s = 1; s <= kEvents; ++s) {
    ASSERT_EQ(producer.push(Event{0, s}), PushResult::Pushed);  // Block: waits for room at times
    ledger.accepted(Event{0, s});
  }
  // Progress while the handler of event 0 is still blocked: every later event gets handled.
  while (others.load() < kEvents) std::this_thread::yield();
  while (total_handled(pool.stats()) < kEvents) std::this_thread::yield();
  EXPECT_EQ(total_handled(pool.stats()), kEvents);  // event 0's call has not returned yet
  EXPECT_FALSE(d.closed());
  release.count_down();
  d.close();
  pool.join();
  EXPECT_EQ(ledger.check_exactly_once(), kEvents + 1);
  EXPECT_EQ(total_handled(pool.stats()), kEvents + 1);
}

INSTANTIATE_TEST_SUITE_P(MaxDemand, BlockedHandler, ::testing::Values(1, 4),
                         [](const ::testing::TestParamInfo<std::size_t>& param) {
                           return "max_demand_" + std::to_string(param.param);
                         });

// ---- a consumer starved of CPU ----

// Four consumers pinned to one CPU with busy handlers; the first consumer to run a handler moves
// its own thread to SCHED_IDLE (it then runs only when nothing else wants that CPU). The starved
// consumer holds at most max_demand (1) event at a time; the others drain the rest, and every
// event is handled once. The counts per consumer are printed: the starved one handles few.
TEST(Faults, ConsumerStarvedOfCpuHoldsUpNothingElse) {
  const int cpu = allowed_cpus().front();
  Dispatcher<Event> d;
  const std::uint32_t events = kEvents / 4;
  Ledger ledger(1, events);
  std::atomic<bool> idle_claimed{false};
  std::atomic<int> idle_result{-1};
  std::atomic<std::uint64_t> idle_handled{0};
  PoolOptions o;
  o.consumers = 4;
  o.cpus = {cpu};
  ConsumerPool<Event> pool(d, o, [&](Event& e) {
    thread_local bool idle = false;
    if (!idle && !idle_claimed.exchange(true)) {
      sched_param p{};
      p.sched_priority = 0;
      idle_result.store(pthread_setschedparam(pthread_self(), SCHED_IDLE, &p));
      idle = true;
    }
    if (idle) idle_handled.fetch_add(1, std::memory_order_relaxed);
    for (std::uint32_t i = 0; i < 20'000; ++i) g_sink = i;  // busy: keeps the CPU wanted
    ledger.handled(e);
  });
  auto producer = d.producer();
  for (std::uint32_t s = 0; s < events; ++s) {
    ASSERT_EQ(producer.push(Event{0, s}), PushResult::Pushed);
    ledger.accepted(Event{0, s});
  }
  d.close();
  pool.join();
  EXPECT_EQ(ledger.check_exactly_once(), events);
  EXPECT_EQ(total_handled(pool.stats()), events);
  std::string per_consumer;
  for (const ConsumerStats& s : pool.stats()) per_consumer += " " + std::to_string(s.handled);
  std::printf("starved consumer: SCHED_IDLE %s; it handled %llu of %u events; per consumer:%s\n",
              idle_result.load() == 0 ? "set" : "refused (all ran SCHED_OTHER)",
              static_cast<unsigned long long>(idle_handled.load()), events, per_consumer.c_str());
}

// ---- producers that stop mid-burst ----

struct ProducerDied {};

// Producers that stop after part of their burst, each differently. What they pushed before they
// stopped arrives exactly once and in their order; what they did not push never appears.
TEST(Faults, ProducersThatStopMidBurstLoseNothing) {
  enum Exit { kReturn, kReturnTokenless, kThrow, kPthreadExit, kPthreadExitTokenless, kHandOver };
  constexpr std::uint32_t kProducers = 6;
  Dispatcher<Event> d;
  Ledger ledger(kProducers, kEvents);
  PoolOptions o;
  o.consumers = 2;
  o.pin = false;
  ConsumerPool<Event> pool(d, o, [&](Event& e) { ledger.handled(e); });
  std::latch start(kProducers);
  std::optional<Dispatcher<Event>::Producer> handed_over;
  std::latch handed(1);
  std::vector<std::uint32_t> stop_at(kProducers);
  for (std::uint32_t p = 0; p < kProducers; ++p) stop_at[p] = kEvents / 3 + p * 97;
  std::vector<std::thread> threads;
  for (std::uint32_t p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      const auto exit = static_cast<Exit>(p);
      const bool tokenless = exit == kReturnTokenless || exit == kPthreadExitTokenless;
      std::optional<Dispatcher<Event>::Producer> handle;
      if (!tokenless) handle.emplace(d.producer());
      start.arrive_and_wait();
      try {
        for (std::uint32_t s = 0; s < kEvents; ++s) {
          if (s == stop_at[p]) {
            switch (exit) {
              case kReturn:
              case kReturnTokenless:
                return;
              case kThrow:
                throw ProducerDied{};  // unwinding destroys the handle
              case kPthreadExit:
              case kPthreadExitTokenless:
                pthread_exit(nullptr);  // glibc unwinds the stack: the handle's destructor runs
              case kHandOver:
                handed_over.emplace(std::move(*handle));  // the main thread pushes the rest
                handed.count_down();
                return;
            }
          }
          const PushResult r = handle ? handle->push(Event{p, s}) : d.push(Event{p, s});
          ASSERT_EQ(r, PushResult::Pushed);
          ledger.accepted(Event{p, s});
        }
      } catch (const ProducerDied&) {
      }
    });
  }
  handed.wait();
  for (std::uint32_t s = stop_at[kHandOver]; s < kEvents; ++s) {  // continues its order
    ASSERT_EQ(handed_over->push(Event{kHandOver, s}), PushResult::Pushed);
    ledger.accepted(Event{kHandOver, s});
  }
  for (auto& t : threads) t.join();
  handed_over.reset();
  d.close();
  pool.join();
  std::uint64_t want = kEvents;  // the handed-over producer's events all arrive
  for (std::uint32_t p = 0; p < kProducers; ++p) {
    if (p != kHandOver) want += stop_at[p];
  }
  EXPECT_EQ(ledger.check_exactly_once(), want);
  EXPECT_EQ(d.stats().pushed, want);
  EXPECT_EQ(d.stats().popped, want);
}

// The enqueue of a push fails as moodycamel's does when it cannot allocate (the
// PUSHSTAGE_FAULT_INJECTION hook of Dispatcher, a private definition of this test target): the
// push throws std::bad_alloc, like a producer dying inside push(). Per thread, so one producer
// dies.
thread_local bool fail_next_enqueue = false;

// Counts live instances, so that an event lost or destroyed twice by a failed push shows.
struct Fragile {
  static inline std::atomic<std::int64_t> live{0};
  std::uint32_t producer = 0;
  std::uint32_t seq = 0;
  Fragile(std::uint32_t p, std::uint32_t s) : producer(p), seq(s) { live.fetch_add(1); }
  Fragile(Fragile&& o) noexcept : producer(o.producer), seq(o.seq) { live.fetch_add(1); }
  Fragile& operator=(Fragile&& o) noexcept {
    producer = o.producer;
    seq = o.seq;
    return *this;
  }
  Fragile(const Fragile&) = delete;
  Fragile& operator=(const Fragile&) = delete;
  ~Fragile() { live.fetch_sub(1); }
};

class DiesInsidePush : public ::testing::TestWithParam<Overflow> {};

// Producers (a handle and a tokenless one) whose push throws half-way through their burst. The
// dispatcher stays whole: the room reserved for the failed event comes back, close() does not
// wait for the dead push, and every event pushed before it is handled once.
TEST_P(DiesInsidePush, TheDispatcherStaysWhole) {
  Fragile::live = 0;
  constexpr std::size_t kCapacity = 12;
  const std::uint32_t half = kCapacity / 3;  // two bursts leave a third of the room free
  {
    DispatcherOptions options;
    options.capacity = kCapacity;
    options.overflow = GetParam();
    Dispatcher<Fragile> d(options);
    for (std::uint32_t p = 0; p < 2; ++p) {
      std::thread([&, p] {
        std::optional<Dispatcher<Fragile>::Producer> handle;
        if (p == 0) handle.emplace(d.producer());
        for (std::uint32_t s = 0;; ++s) {
          const bool last = s == half;
          fail_next_enqueue = last;
          try {
            const PushResult r = handle ? handle->push(Fragile(p, s)) : d.push(Fragile(p, s));
            EXPECT_EQ(r, PushResult::Pushed);
          } catch (const std::bad_alloc&) {
            EXPECT_TRUE(last);
            return;  // the producer dies here
          }
          EXPECT_FALSE(last);
        }
      }).join();
    }
    // Nothing was consumed: both bursts fit, and exactly the room they took is gone (the room
    // reserved by each failed push came back: the buffer still fills to its capacity).
    EXPECT_EQ(d.stats().pushed, 2U * half);
    EXPECT_EQ(d.stats().buffered, 2U * half);
    for (std::size_t i = 2U * half; i < kCapacity; ++i) {
      Fragile f(9, static_cast<std::uint32_t>(i));
      ASSERT_EQ(d.try_push(f), PushResult::Pushed) << "room lost to a failed push";
    }
    Fragile extra(9, 99);
    EXPECT_NE(d.try_push(extra), PushResult::Pushed) << "more room than the capacity";
    d.close();  // returns: no push is left half-done
    std::vector<std::uint32_t> next(2, 0);
    std::uint64_t popped = 0;
    while (std::optional<Fragile> f = d.pop()) {
      ++popped;
      if (f->producer < 2) {
        EXPECT_GE(f->seq, next[f->producer]);  // in order (DropOldest may skip the oldest)
        next[f->producer] = f->seq + 1;
      }
    }
    if (GetParam() != Overflow::DropOldest) {
      EXPECT_EQ(popped, kCapacity);
      EXPECT_EQ(next[0], half);
      EXPECT_EQ(next[1], half);
    }
  }
  EXPECT_EQ(Fragile::live.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(Policies, DiesInsidePush,
                         ::testing::Values(Overflow::Block, Overflow::Reject, Overflow::DropOldest),
                         [](const ::testing::TestParamInfo<Overflow>& param) {
                           return param.param == Overflow::Block    ? std::string("Block")
                                  : param.param == Overflow::Reject ? std::string("Reject")
                                                                    : std::string("DropOldest");
                         });

// ---- destruction with events in flight ----

// Counts live instances and owns heap memory: a leak shows in `live` (and to LeakSanitizer), a
// double destroy in `live` going below zero (and to AddressSanitizer as a double free).
struct Tracked {
  static inline std::atomic<std::int64_t> live{0};
  static inline std::atomic<std::int64_t> copies{0};
  std::unique_ptr<Event> event;
  explicit Tracked(Event e) : event(std::make_unique<Event>(e)) { live.fetch_add(1); }
  Tracked(Tracked&& o) noexcept : event(std::move(o.event)) { live.fetch_add(1); }
  Tracked& operator=(Tracked&& o) noexcept {
    event = std::move(o.event);
    return *this;
  }
  Tracked(const Tracked& o) : event(std::make_unique<Event>(*o.event)) {
    live.fetch_add(1);
    copies.fetch_add(1);
  }
  Tracked& operator=(const Tracked&) = delete;
  ~Tracked() { live.fetch_sub(1); }
};

struct PolicyCase {
  const char* name;
  std::size_t capacity;
  Overflow overflow;
};
const PolicyCase kPolicies[] = {{"unbounded", 0, Overflow::Block},
                                {"Block", 32, Overflow::Block},
                                {"Reject", 32, Overflow::Reject},
                                {"DropOldest", 32, Overflow::DropOldest}};

class DestroyedInFlight : public ::testing::TestWithParam<PolicyCase> {};

// A pool destroyed without join() while producers (a handle, tokenless single and bulk pushes)
// keep pushing: its consumers end, each handling what it holds, and the source stays open; the
// test then closes it and takes what is left. Every accepted event is handled once, by the pool
// or from what it left (or, DropOldest, dropped); no event refused or pushed after close is
// handled; nothing leaks or is copied.
TEST_P(DestroyedInFlight, PoolDestroyedWithoutJoinWhileProducersPush) {
  Tracked::live = 0;
  Tracked::copies = 0;
  constexpr std::uint32_t kProducers = 3;
  const std::uint32_t limit = kEvents;  // a producer never pushes more than this
  Ledger ledger(kProducers, limit);
  std::uint64_t accepted = 0;
  std::uint64_t dropped = 0;
  {
    DispatcherOptions options;
    options.capacity = GetParam().capacity;
    options.overflow = GetParam().overflow;
    Dispatcher<Tracked> d(options);
    std::atomic<std::uint64_t> pushed{0};
    std::atomic<std::uint32_t> finished{0};
    std::vector<std::uint64_t> accepted_by(kProducers, 0);
    // Outlives the producers: a thread may still be inside arrive_and_wait() (reading the latch)
    // after the last arrival released it, so the latch must not die before they are joined.
    std::latch start(kProducers + 1);
    std::vector<std::thread> producers;
    {
      PoolOptions o;
      o.consumers = 2;
      o.pin = false;
      o.max_demand = 4;
      ConsumerPool<Tracked> pool(d, o, [&](Tracked& t) { ledger.handled(*t.event); });
      for (std::uint32_t p = 0; p < kProducers; ++p) {
        producers.emplace_back([&, p] {
          std::optional<Dispatcher<Tracked>::Producer> handle;
          if (p == 0) handle.emplace(d.producer());
          start.arrive_and_wait();
          std::uint32_t s = 0;
          while (s < limit) {
            if (p == 2) {  // bulk, tokenless
              std::vector<Tracked> chunk;
              const std::uint32_t n = std::min<std::uint32_t>(limit - s, 5);
              for (std::uint32_t i = 0; i < n; ++i) chunk.emplace_back(Event{p, s + i});
              const std::size_t got = d.push_bulk(chunk.begin(), chunk.end());
              for (std::uint32_t i = 0; i < got; ++i) ledger.accepted(Event{p, s + i});
              accepted_by[p] += got;
              pushed.fetch_add(got);
              s += n;
              if (d.closed()) break;
              continue;
            }
            const PushResult r =
                handle ? handle->push(Tracked(Event{p, s})) : d.push(Tracked(Event{p, s}));
            if (r == PushResult::Closed) break;
            if (r != PushResult::Rejected) {
              ledger.accepted(Event{p, s});
              ++accepted_by[p];
              pushed.fetch_add(1);
            }
            ++s;
          }
          finished.fetch_add(1);
        });
      }
      start.arrive_and_wait();
      // Destroy once a quarter is in, or when the producers are done (Reject may refuse most).
      while (pushed.load() < limit / 4 && finished.load() < kProducers) {
        std::this_thread::yield();
      }
    }  // ~ConsumerPool: the consumers end while the producers still push
    EXPECT_FALSE(d.closed());
    d.close();  // the producers see Closed (a blocked one is released)
    for (auto& t : producers) t.join();
    auto rest = d.consumer();
    while (std::optional<Tracked> t = rest.try_pop()) ledger.handled(*t->event);
    EXPECT_TRUE(d.drained());
    for (const std::uint64_t n : accepted_by) accepted += n;
    dropped = d.stats().dropped;
    EXPECT_EQ(d.stats().pushed, accepted);
    EXPECT_EQ(d.stats().buffered, 0U);
  }
  // DropOldest: the dropped events were accepted and never handled, and only those.
  const Ledger::Outcome outcome = ledger.check(GetParam().overflow == Overflow::DropOldest);
  EXPECT_EQ(outcome.accepted, accepted);
  EXPECT_EQ(outcome.missing, dropped);
  EXPECT_EQ(outcome.handled + dropped, accepted);
  EXPECT_EQ(Tracked::live.load(), 0);
  EXPECT_EQ(Tracked::copies.load(), 0);
}

// A dispatcher destroyed while it holds events, pushed through every path, partly popped, closed
// or not: its destructor destroys each buffered event exactly once.
TEST_P(DestroyedInFlight, DispatcherDestroyedHoldingEvents) {
  for (const bool close_first : {false, true}) {
    Tracked::live = 0;
    Tracked::copies = 0;
    {
      DispatcherOptions options;
      options.capacity = GetParam().capacity;
      options.overflow = GetParam().overflow;
      Dispatcher<Tracked> d(options);
      {
        auto producer = d.producer();
        auto consumer = d.consumer();
        // Bounded: Block fills 28 of 32 (nothing may wait: there is no consumer thread); Reject
        // and DropOldest push past the capacity (refused events, dropped events).
        const bool block = GetParam().overflow == Overflow::Block && GetParam().capacity != 0;
        const std::uint32_t n = GetParam().capacity == 0 ? kEvents : block ? 20 : 45;
        for (std::uint32_t s = 0; s < n; ++s) (void)producer.push(Tracked(Event{0, s}));
        (void)d.push(Tracked(Event{1, 0}));
        std::vector<Tracked> bulk;
        for (std::uint32_t s = 0; s < 7; ++s) bulk.emplace_back(Event{2, s});
        (void)d.push_bulk(bulk.begin(), bulk.end());
        for (int i = 0; i < 5; ++i) (void)consumer.try_pop();
        std::vector<Tracked> out;
        (void)consumer.try_pop_bulk(std::back_inserter(out), 3);
        EXPECT_GT(d.stats().buffered, 0U);
      }  // handles go first, as the contract asks
      if (close_first) d.close();
      EXPECT_GT(Tracked::live.load(), 0);
    }
    EXPECT_EQ(Tracked::live.load(), 0) << (close_first ? "closed" : "open");
    EXPECT_EQ(Tracked::copies.load(), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Policies, DestroyedInFlight, ::testing::ValuesIn(kPolicies),
                         [](const ::testing::TestParamInfo<PolicyCase>& param) {
                           return std::string(param.param.name);
                         });

}  // namespace
}  // namespace pushstage

bool pushstage_fault_enqueue_fails() noexcept {
  return std::exchange(pushstage::fail_next_enqueue, false);
}
