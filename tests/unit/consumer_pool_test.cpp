// consumer_pool_test.cpp: the public API of ConsumerPool<T>.
#include "pushstage/pool/consumer_pool.hpp"

#include <gtest/gtest.h>
#include <sched.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <latch>
#include <map>
#include <mutex>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "messages.hpp"
#include "pushstage/cpus.hpp"
#include "pushstage/modes/broadcast_dispatcher.hpp"
#include "pushstage/modes/partition_dispatcher.hpp"
#include "pushstage/stages/stage.hpp"
#include "test_payloads.hpp"

namespace pushstage {
namespace {

using namespace std::chrono_literals;
using test::Counted;
using test::MoveOnly;

TEST(ConsumerPool, HandlesEveryEventOnceThenJoins) {
  Dispatcher<int> d;
  PoolOptions o;
  o.consumers = 3;
  std::mutex m;
  std::multiset<int> seen;
  ConsumerPool<int> pool(d, o, [&](int& e) {
    const std::lock_guard lock(m);
    seen.insert(e);
  });
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(d.push(i), PushResult::Pushed);
  d.close();
  pool.join();
  pool.join();  // idempotent
  ASSERT_EQ(seen.size(), 1000U);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(seen.count(i), 1U);
  std::uint64_t handled = 0;
  for (const ConsumerStats& s : pool.stats()) handled += s.handled;
  EXPECT_EQ(handled, 1000U);
}

// ---- where pinned consumers run: one allocator for the whole process ----

// The CPUs of `pool`'s active consumers, once each has started (a pinned consumer reports its CPU
// when its thread starts; the wait only guards against a hang).
template <class Pool>
std::vector<int> cpus_of(const Pool& pool) {
  const auto give_up = std::chrono::steady_clock::now() + 60s;
  for (;;) {
    std::vector<int> cpus;
    for (const ConsumerStats& s : pool.stats()) {
      if (s.active) cpus.push_back(s.cpu);
    }
    if (std::count(cpus.begin(), cpus.end(), -1) == 0 ||
        std::chrono::steady_clock::now() > give_up) {
      return cpus;
    }
    std::this_thread::sleep_for(1ms);
  }
}

// Consumers per allowed CPU, over every pool given; a CPU outside allowed_cpus() (or -1) fails.
std::map<int, std::size_t> per_cpu(std::initializer_list<std::vector<int>> pools) {
  std::map<int, std::size_t> count;
  for (const int cpu : allowed_cpus()) count[cpu] = 0;
  for (const std::vector<int>& cpus : pools) {
    for (const int cpu : cpus) {
      EXPECT_EQ(count.count(cpu), 1U) << "a consumer on CPU " << cpu;
      ++count[cpu];
    }
  }
  return count;
}

// Most minus fewest consumers on one CPU.
std::size_t imbalance(const std::map<int, std::size_t>& count) {
  const auto [lo, hi] = std::minmax_element(
      count.begin(), count.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
  return hi->second - lo->second;
}

std::string describe(const std::map<int, std::size_t>& count) {
  std::string out;
  for (const auto& [cpu, n] : count) out += " cpu" + std::to_string(cpu) + ":" + std::to_string(n);
  return out;
}

// One pool of more consumers than CPUs: one consumer per CPU first, then a second one on the
// lowest CPUs (which consumer goes where depends on which thread starts first).
TEST(ConsumerPool, PinsOneConsumerPerCpuBeforeDoublingUp) {
  const std::vector<int> cpus = allowed_cpus();
  Dispatcher<int> d;
  PoolOptions o;
  o.consumers = cpus.size() + 1;
  ConsumerPool<int> pool(d, o, [](int&) {});
  std::vector<int> got = cpus_of(pool);
  std::vector<int> want;
  for (std::size_t i = 0; i < o.consumers; ++i) want.push_back(cpus[i % cpus.size()]);
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
}

TEST(ConsumerPool, UnpinnedConsumersReportNoCpu) {
  Dispatcher<int> d;
  PoolOptions o;
  o.consumers = 2;
  o.pin = false;
  ConsumerPool<int> pool(d, o, [](int&) {});
  d.close();
  pool.join();
  for (const ConsumerStats& s : pool.stats()) EXPECT_EQ(s.cpu, -1);
}

// Pools sharing the CPUs: each test needs at least two to share.
class ConsumerPoolCpus : public ::testing::Test {
 protected:
  void SetUp() override {
    if (allowed_cpus().size() < 2) {
      GTEST_SKIP() << "needs 2 allowed CPUs; this process may use " << allowed_cpus().size();
    }
  }
};

TEST_F(ConsumerPoolCpus, TwoPoolsOfOneConsumerRunOnDifferentCpus) {
  Dispatcher<int> a;
  Dispatcher<int> b;
  ConsumerPool<int> first(a, PoolOptions{}, [](int&) {});
  ConsumerPool<int> second(b, PoolOptions{}, [](int&) {});
  EXPECT_NE(cpus_of(first).at(0), cpus_of(second).at(0));
}

// A Stage and a ConsumerPool in one process: together their consumers spread over the CPUs, each
// CPU running as many as any other, give or take one (on 2 CPUs, 2 + 2 consumers: 2 on each).
TEST_F(ConsumerPoolCpus, AStageAndAPoolSpreadOverTheCpusTogether) {
  const std::pair<std::size_t, std::size_t> shapes[] = {{1, 1}, {2, 2}, {1, 3}};
  for (const auto& [stage_consumers, pool_consumers] : shapes) {
    SCOPED_TRACE("stage " + std::to_string(stage_consumers) + ", pool " +
                 std::to_string(pool_consumers));
    Dispatcher<int> in;
    Dispatcher<int> mid;
    PoolOptions so;
    so.consumers = stage_consumers;
    Stage stage(in, mid, so, [](int& e, Dispatcher<int>::Producer& out) { (void)out.push(e); });
    PoolOptions po;
    po.consumers = pool_consumers;
    ConsumerPool<int> pool(mid, po, [](int&) {});
    const auto count = per_cpu({cpus_of(stage), cpus_of(pool)});
    EXPECT_LE(imbalance(count), 1U) << describe(count);
  }
}

// PoolOptions::cpus is used as given (both consumers on one CPU, however loaded), and counts:
// an automatic pool started next keeps off that CPU.
TEST_F(ConsumerPoolCpus, ExplicitCpusAreHonouredAndCounted) {
  const std::vector<int> cpus = allowed_cpus();
  Dispatcher<int> a;
  Dispatcher<int> b;
  Dispatcher<int> c;
  PoolOptions named;
  named.consumers = 2;
  named.cpus = {cpus.front()};
  ConsumerPool<int> pinned(a, named, [](int&) {});
  EXPECT_EQ(cpus_of(pinned), (std::vector<int>{cpus.front(), cpus.front()}));
  PoolOptions automatic;
  automatic.consumers = cpus.size() - 1;
  ConsumerPool<int> spread(b, automatic, [](int&) {});
  const auto count = per_cpu({cpus_of(spread)});
  EXPECT_EQ(count.at(cpus.front()), 0U) << describe(count);
  for (std::size_t i = 1; i < cpus.size(); ++i) EXPECT_EQ(count.at(cpus[i]), 1U) << describe(count);
  // Named again while it is the busiest CPU: still used as given.
  named.consumers = 1;
  ConsumerPool<int> again(c, named, [](int&) {});
  EXPECT_EQ(cpus_of(again), (std::vector<int>{cpus.front()}));
}

// A destroyed pool gives its CPUs back: the next pool takes the CPU it left.
TEST_F(ConsumerPoolCpus, ADestroyedPoolsCpuGoesToTheNextPool) {
  Dispatcher<int> a;
  Dispatcher<int> b;
  Dispatcher<int> c;
  ConsumerPool<int> stays(a, PoolOptions{}, [](int&) {});
  const int kept = cpus_of(stays).at(0);
  int freed = -1;
  {
    ConsumerPool<int> goes(b, PoolOptions{}, [](int&) {});
    freed = cpus_of(goes).at(0);
  }
  EXPECT_NE(freed, kept);
  ConsumerPool<int> next(c, PoolOptions{}, [](int&) {});
  EXPECT_EQ(cpus_of(next).at(0), freed);
}

// resize() down gives the retired consumers' CPUs back (by the time they read as ended); resize()
// up takes the least loaded CPUs again.
TEST_F(ConsumerPoolCpus, ResizeDownThenUpKeepsTheCpusEven) {
  const std::size_t n = allowed_cpus().size();
  Dispatcher<int> a;
  Dispatcher<int> b;
  PoolOptions o;
  o.consumers = n;
  ConsumerPool<int> pool(a, o, [](int&) {});
  EXPECT_EQ(imbalance(per_cpu({cpus_of(pool)})), 0U);
  pool.resize(1);
  const auto give_up = std::chrono::steady_clock::now() + 60s;  // a guard against a hang only
  for (;;) {
    std::size_t ended = 0;
    for (const ConsumerStats& s : pool.stats()) ended += s.active ? 0 : 1;
    if (ended == n - 1 || std::chrono::steady_clock::now() > give_up) break;
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_EQ(cpus_of(pool).size(), 1U);
  o.consumers = n - 1;
  ConsumerPool<int> other(b, o, [](int&) {});  // takes the CPUs the retired consumers left
  auto count = per_cpu({cpus_of(pool), cpus_of(other)});
  EXPECT_EQ(imbalance(count), 0U) << describe(count);
  pool.resize(n);
  EXPECT_EQ(cpus_of(pool).size(), n);
  count = per_cpu({cpus_of(pool), cpus_of(other)});
  EXPECT_LE(imbalance(count), 1U) << describe(count);
}

// Unpinned consumers take no CPU: a pinned pool started next spreads as if they were not there.
TEST_F(ConsumerPoolCpus, UnpinnedConsumersCountForNoCpu) {
  Dispatcher<int> a;
  Dispatcher<int> b;
  PoolOptions loose;
  loose.consumers = 3;
  loose.pin = false;
  ConsumerPool<int> unpinned(a, loose, [](int&) {});
  PoolOptions o;
  o.consumers = allowed_cpus().size();
  ConsumerPool<int> pinned(b, o, [](int&) {});
  const auto count = per_cpu({cpus_of(pinned)});
  EXPECT_EQ(imbalance(count), 0U) << describe(count);
}

// PinTo::CacheDomain pins each consumer to the CPUs of its home CPU's cache domain (and the home
// CPU still counts for the allocator); PinTo::Cpu to the home CPU alone.
TEST(ConsumerPool, PinToChoosesTheConsumersAffinity) {
  for (const PinTo pin_to : {PinTo::Cpu, PinTo::CacheDomain}) {
    SCOPED_TRACE(pin_to == PinTo::Cpu ? "Cpu" : "CacheDomain");
    Dispatcher<int> d;
    PoolOptions o;
    o.consumers = 2;
    o.pin_to = pin_to;
    std::mutex mu;
    std::vector<std::vector<int>> seen;  // each handler call's affinity, as sorted CPUs
    ConsumerPool<int> pool(d, o, [&](int&) {
      cpu_set_t set;
      CPU_ZERO(&set);
      ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
      std::vector<int> mine;
      for (int c = 0; c < CPU_SETSIZE; ++c) {
        if (CPU_ISSET(c, &set)) mine.push_back(c);
      }
      const std::lock_guard lock(mu);
      seen.push_back(std::move(mine));
    });
    const std::vector<int> homes = cpus_of(pool);
    auto p = d.producer();
    for (int i = 0; i < 64; ++i) ASSERT_EQ(p.push(i), PushResult::Pushed);
    d.close();
    pool.join();
    std::set<std::vector<int>> expected;
    for (const int cpu : homes) {
      ASSERT_GE(cpu, 0);
      std::vector<int> want = pin_to == PinTo::Cpu ? std::vector<int>{cpu} : cache_domain(cpu);
      std::sort(want.begin(), want.end());
      EXPECT_TRUE(std::find(want.begin(), want.end(), cpu) != want.end());
      expected.insert(want);
    }
    ASSERT_EQ(seen.size(), 64U);
    for (const std::vector<int>& mine : seen) EXPECT_EQ(expected.count(mine), 1U);
  }
}

TEST(ConsumerPool, PinToOutOfRangeIsRejected) {
  Dispatcher<int> d;
  PoolOptions o;
  o.pin_to = static_cast<PinTo>(7);
  try {
    ConsumerPool<int> pool(d, o, [](int&) {});
    FAIL() << "constructed";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("PoolOptions::pin_to"), std::string::npos) << e.what();
  }
}

// pushstage-bench pins its peers' consumer threads with plan_consumer_cpus(): with nothing else
// running, those are the CPUs a pool of as many consumers takes.
TEST(ConsumerPool, PlanConsumerCpusNamesTheCpusAPoolTakes) {
  const std::vector<int> cpus = allowed_cpus();
  PoolOptions o;
  o.consumers = cpus.size() + 1;
  std::vector<int> planned = detail::plan_consumer_cpus(o);
  std::vector<int> round_robin;
  for (std::size_t i = 0; i < o.consumers; ++i) round_robin.push_back(cpus[i % cpus.size()]);
  EXPECT_EQ(planned, round_robin);
  Dispatcher<int> d;
  ConsumerPool<int> pool(d, o, [](int&) {});
  std::vector<int> got = cpus_of(pool);
  std::sort(got.begin(), got.end());
  std::sort(planned.begin(), planned.end());
  EXPECT_EQ(got, planned);
  o.pin = false;
  EXPECT_EQ(detail::plan_consumer_cpus(o), std::vector<int>(o.consumers, -1));
}

TEST(ConsumerPool, MaxDemandOneHoldsOneEventAtATime) {
  // Each consumer records how many events it holds (taken, not yet handled): with max_demand 1 the
  // count of events popped but not handled by a consumer never exceeds 1. We observe it through
  // the dispatcher: while a handler runs, popped - handled by that consumer is exactly 1.
  Dispatcher<int> d;
  PoolOptions o;
  o.consumers = 2;
  std::atomic<int> in_handlers{0};
  std::atomic<int> worst{0};
  std::atomic<std::uint64_t> handled{0};
  ConsumerPool<int> pool(d, o, [&](int&) {
    const int now = in_handlers.fetch_add(1) + 1;
    int w = worst.load();
    while (now > w && !worst.compare_exchange_weak(w, now)) {
    }
    // While we run, the dispatcher may have handed out at most one event per consumer.
    const DispatcherStats s = d.stats();
    EXPECT_LE(s.popped, handled.load() + 2);
    handled.fetch_add(1);
    in_handlers.fetch_sub(1);
  });
  for (int i = 0; i < 2000; ++i) ASSERT_EQ(d.push(i), PushResult::Pushed);
  d.close();
  pool.join();
  EXPECT_LE(worst.load(), 2);
  EXPECT_EQ(handled.load(), 2000U);
}

TEST(ConsumerPool, MaxDemandTakesBatches) {
  Dispatcher<MoveOnly> d;
  for (std::uint64_t i = 0; i < 100; ++i) ASSERT_EQ(d.push(MoveOnly(i)), PushResult::Pushed);
  d.close();
  PoolOptions o;
  o.consumers = 1;
  o.max_demand = 16;
  std::vector<std::uint64_t> seen;
  ConsumerPool<MoveOnly> pool(d, o, [&](MoveOnly& e) { seen.push_back(*e.value); });
  pool.join();
  ASSERT_EQ(seen.size(), 100U);
  for (std::uint64_t i = 0; i < 100; ++i) EXPECT_EQ(seen[i], i);  // one producer, one consumer
}

// GenStage's demand: take up to max_demand, handle chunks of max_demand - min_demand, top up when
// what is held falls to min_demand. With a full source and one consumer the chunks are exact.
TEST(ConsumerPool, MinDemandSetsTheChunkSize) {
  Dispatcher<MoveOnly> d;
  for (std::uint64_t i = 0; i < 100; ++i) ASSERT_EQ(d.push(MoveOnly(i)), PushResult::Pushed);
  d.close();
  PoolOptions o;
  o.consumers = 1;
  o.max_demand = 10;
  o.min_demand = 4;
  std::vector<std::size_t> chunks;
  std::vector<std::uint64_t> seen;
  std::uint64_t most_held = 0;
  ConsumerPool<MoveOnly> pool(d, o, [&](std::span<MoveOnly> events) {
    chunks.push_back(events.size());
    // Taken from the source but not yet handled: never more than max_demand.
    most_held = std::max<std::uint64_t>(most_held, d.stats().popped - seen.size());
    for (MoveOnly& e : events) seen.push_back(*e.value);
  });
  pool.join();
  std::vector<std::size_t> want(16, 6);
  want.push_back(4);
  EXPECT_EQ(chunks, want);
  ASSERT_EQ(seen.size(), 100U);
  for (std::uint64_t i = 0; i < 100; ++i) EXPECT_EQ(seen[i], i);
  EXPECT_EQ(most_held, 10U);
  EXPECT_EQ(pool.stats()[0].handled, 100U);
}

TEST(ConsumerPool, DefaultMinDemandIsHalfOfMax) {
  Dispatcher<int> d;
  for (int i = 0; i < 40; ++i) ASSERT_EQ(d.push(i), PushResult::Pushed);
  d.close();
  PoolOptions o;
  o.consumers = 1;
  o.max_demand = 8;  // min_demand 4: chunks of 4
  std::vector<std::size_t> chunks;
  ConsumerPool<int> pool(d, o, [&](std::span<int> events) { chunks.push_back(events.size()); });
  pool.join();
  EXPECT_EQ(chunks, std::vector<std::size_t>(10, 4));
}

TEST(ConsumerPool, ABatchHandlerThatThrowsFailsItsChunk) {
  Dispatcher<int> d;
  for (int i = 0; i < 30; ++i) ASSERT_EQ(d.push(i), PushResult::Pushed);
  d.close();
  PoolOptions o;
  o.consumers = 1;
  o.max_demand = 10;
  o.min_demand = 0;  // chunks of 10
  std::atomic<int> errors{0};
  o.on_error = [&](std::exception_ptr) { errors.fetch_add(1); };
  ConsumerPool<int> pool(d, o, [](std::span<int> events) {
    if (events.front() == 10) throw std::runtime_error("bad batch");
  });
  pool.join();
  EXPECT_EQ(pool.stats()[0].handled, 20U);
  EXPECT_EQ(pool.stats()[0].failed, 10U);
  EXPECT_EQ(errors.load(), 1);
}

// How a test pauses a pool: pause() once it runs, or PoolOptions::start_paused.
enum class PauseBy { kPauseCall, kStartPaused };

// A pool of 2 consumers, paused, over 100 events: no handler runs until resume(); then every
// event is handled once.
void check_pause_holds_events_until_resume(PauseBy how) {
  for (const std::size_t max_demand : {std::size_t{1}, std::size_t{8}}) {
    Dispatcher<int> d;
    PoolOptions o;
    o.consumers = 2;
    o.pin = false;
    o.max_demand = max_demand;
    o.start_paused = how == PauseBy::kStartPaused;
    std::atomic<int> handled{0};
    ConsumerPool<int> pool(d, o, [&](int&) { handled.fetch_add(1); });
    if (how == PauseBy::kPauseCall) pool.pause();
    EXPECT_TRUE(pool.paused());
    for (int i = 0; i < 100; ++i) ASSERT_EQ(d.push(i), PushResult::Pushed);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // give a wrong pool time to run
    EXPECT_EQ(handled.load(), 0);
    if (how == PauseBy::kPauseCall) {
      // At most one round per consumer (taken by a consumer that was taking or waiting when
      // pause() was called, and held unhandled) left the source.
      EXPECT_GE(d.stats().buffered, 100U - 2 * max_demand);
    } else {
      EXPECT_EQ(d.stats().popped, 0U);  // not even that round
    }
    pool.resume();
    EXPECT_FALSE(pool.paused());
    d.close();
    pool.join();
    EXPECT_EQ(handled.load(), 100);
  }
}

// Accumulate mode: while paused, events stay in the source (no handler runs); on resume they flow.
TEST(ConsumerPool, PauseHoldsEventsInTheSourceUntilResume) {
  check_pause_holds_events_until_resume(PauseBy::kPauseCall);
}

// The pause check comes after the take, too: a consumer that passed its check before pause() (here:
// then waited for manual demand) and takes an event after pause() returned holds it unhandled.
TEST(ConsumerPool, AnEventTakenAfterPauseWaitsForResume) {
  Dispatcher<int> d;
  PoolOptions o;
  o.consumers = 1;
  o.demand = DemandMode::Manual;
  std::atomic<int> handled{0};
  ConsumerPool<int> pool(d, o, [&](int&) { handled.fetch_add(1); });
  for (int i = 0; i < 3; ++i) ASSERT_EQ(d.push(i), PushResult::Pushed);
  pool.ask(1);
  while (handled.load() < 1) std::this_thread::yield();
  std::this_thread::sleep_for(20ms);  // the consumer checks for a pause, then waits for demand
  pool.pause();
  pool.ask(1);                        // it wakes, takes an event and must hold it
  std::this_thread::sleep_for(50ms);  // give a wrong pool time to handle it
  EXPECT_EQ(handled.load(), 1);
  pool.resume();
  pool.ask(1);
  d.close();
  pool.join();
  EXPECT_EQ(handled.load(), 3);
}

// A pool never closes its source: destroying a paused pool ends its consumers (each handles what
// it holds) and leaves every event it did not take in the source, still open.
TEST(ConsumerPool, DestroyingAPausedPoolLeavesItsEventsInTheSource) {
  std::atomic<int> handled{0};
  Dispatcher<int> d;
  {
    PoolOptions o;
    o.consumers = 2;
    ConsumerPool<int> pool(d, o, [&](int&) { handled.fetch_add(1); });
    pool.pause();
    for (int i = 0; i < 50; ++i) ASSERT_EQ(d.push(i), PushResult::Pushed);
  }
  EXPECT_FALSE(d.closed());
  // A consumer that was waiting in the source when pause() came may have taken one event (see
  // pause()); it handles it before it ends. The rest stay buffered.
  EXPECT_LE(handled.load(), 2);
  EXPECT_EQ(d.stats().buffered + static_cast<std::uint64_t>(handled.load()), 50U);
}

// Mirrors GenStage's gen_stage_test "demand can be set to :accumulate on init": a pool made with
// start_paused takes nothing at all (not even the one round a later pause() may let through) until
// resume().
TEST(ConsumerPool, StartPausedTakesNothingUntilResume) {
  check_pause_holds_events_until_resume(PauseBy::kStartPaused);
}

// A topology wired completely before anything flows: head -> Stage -> mid -> pool, every part
// started paused; events pushed meanwhile wait in the head. Never resumed, a pool leaves them all.
TEST(ConsumerPool, StartPausedLetsATopologyBeWiredBeforeEventsFlow) {
  Dispatcher<int> head;
  Dispatcher<int> mid;
  for (int i = 0; i < 50; ++i) ASSERT_EQ(head.push(i), PushResult::Pushed);
  PoolOptions o;
  o.pin = false;
  o.start_paused = true;
  std::atomic<int> handled{0};
  {
    ConsumerPool<int> never_resumed(head, o, [&](int&) { handled.fetch_add(1); });
  }
  EXPECT_EQ(head.stats().buffered, 50U);
  Stage<int, Dispatcher<int>> double_it(head, mid, o, [](int& e, Dispatcher<int>::Producer& out) {
    (void)out.push(e);
    (void)out.push(e);
  });
  ConsumerPool<int> sink(mid, o, [&](int&) { handled.fetch_add(1); });
  std::this_thread::sleep_for(30ms);  // give a wrong topology time to move events
  EXPECT_EQ(head.stats().popped, 0U);
  EXPECT_EQ(mid.stats().pushed, 0U);
  double_it.resume();
  head.close();
  double_it.join();  // the stage drained the head and closed mid
  EXPECT_EQ(mid.stats().buffered, 100U);
  EXPECT_EQ(handled.load(), 0);
  sink.resume();
  sink.join();
  EXPECT_EQ(handled.load(), 100);
}

// A pool with manual demand over a PartitionDispatcher of 2: one unpinned consumer per partition.
PoolOptions manual_over_two_partitions(std::size_t max_demand = PoolOptions{}.max_demand) {
  PoolOptions o;
  o.consumers = 2;
  o.pin = false;
  o.max_demand = max_demand;
  o.demand = DemandMode::Manual;
  return o;
}

// Mirrors GenStage's partition_dispatcher_test "subscribes, asks and dispatches" with demand per
// subscription (GenStage.ask(subscription, n)): ask_consumer(i, n) is demand for partition i alone.
TEST(ConsumerPool, AskConsumerAimsDemandAtOnePartition) {
  PartitionDispatcher<int> p(2, [](const int& e) { return static_cast<std::size_t>(e % 2); });
  const PoolOptions o = manual_over_two_partitions(4);
  std::array<std::atomic<int>, 2> handled{};
  ConsumerPool<int> pool(p, o, [&](int& e) { handled[static_cast<std::size_t>(e % 2)] += 1; });
  for (int i = 0; i < 20; ++i) ASSERT_EQ(p.push(i), PushResult::Pushed);
  pool.ask_consumer(1, 3);
  while (handled[1].load() < 3) std::this_thread::yield();
  std::this_thread::sleep_for(30ms);  // give a wrong pool time to take more
  EXPECT_EQ(handled[1].load(), 3);
  EXPECT_EQ(handled[0].load(), 0);
  EXPECT_EQ(p.partition(1).stats().buffered, 7U);
  EXPECT_EQ(p.partition(0).stats().buffered, 10U);
  EXPECT_EQ(pool.demand(), 0U);
  pool.ask_consumer(0, 2);
  pool.ask_consumer(0, 0);  // nothing
  while (handled[0].load() < 2) std::this_thread::yield();
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(handled[0].load(), 2);
  EXPECT_EQ(handled[1].load(), 3);
  pool.ask(15);  // shared: reaches both partitions
  p.close();
  pool.join();
  EXPECT_EQ(handled[0].load(), 10);
  EXPECT_EQ(handled[1].load(), 10);
  EXPECT_EQ(pool.demand(), 0U);
  EXPECT_THROW(pool.ask_consumer(2, 1), std::out_of_range);
}

// Demand aimed at a consumer stays with it while its partition is empty, and counts in demand().
TEST(ConsumerPool, AskConsumerDemandWaitsForItsPartition) {
  PartitionDispatcher<int> p(2, [](const int& e) { return static_cast<std::size_t>(e % 2); });
  const PoolOptions o = manual_over_two_partitions();
  std::atomic<int> handled{0};
  ConsumerPool<int> pool(p, o, [&](int&) { handled.fetch_add(1); });
  pool.ask_consumer(0, 2);
  EXPECT_EQ(pool.demand(), 2U);
  for (int e : {1, 3, 5}) ASSERT_EQ(p.push(e), PushResult::Pushed);  // partition 1 only
  std::this_thread::sleep_for(30ms);  // give a wrong pool time to spend it on partition 1
  EXPECT_EQ(handled.load(), 0);
  EXPECT_EQ(pool.demand(), 2U);
  for (int e : {0, 2, 4}) ASSERT_EQ(p.push(e), PushResult::Pushed);
  while (handled.load() < 2) std::this_thread::yield();
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(handled.load(), 2);
  EXPECT_EQ(pool.demand(), 0U);
  pool.ask(4);
  p.close();
  pool.join();
  EXPECT_EQ(handled.load(), 6);
  Dispatcher<int> d;
  ConsumerPool<int> automatic(d, PoolOptions{}, [](int&) {});
  EXPECT_THROW(automatic.ask_consumer(0, 1), std::logic_error);
}

// Manual demand: nothing is taken before ask(); then exactly what was asked for.
TEST(ConsumerPool, ManualDemandTakesOnlyWhatWasAsked) {
  Dispatcher<int> d;
  PoolOptions o;
  o.consumers = 2;
  o.max_demand = 4;
  o.demand = DemandMode::Manual;
  std::atomic<int> handled{0};
  ConsumerPool<int> pool(d, o, [&](int&) { handled.fetch_add(1); });
  for (int i = 0; i < 100; ++i) ASSERT_EQ(d.push(i), PushResult::Pushed);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(handled.load(), 0);
  EXPECT_EQ(d.stats().buffered, 100U);
  pool.ask(10);
  while (handled.load() < 10) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(handled.load(), 10);
  EXPECT_EQ(d.stats().buffered, 90U);
  EXPECT_EQ(pool.demand(), 0U);
  pool.ask(90);
  d.close();
  pool.join();
  EXPECT_EQ(handled.load(), 100);
}

// The use manual demand exists for: a handler hands its event to something that finishes later,
// which asks for one more. At most the initial demand is ever in flight.
TEST(ConsumerPool, ManualDemandBoundsAsynchronousWork) {
  constexpr int kEvents = 300;
  constexpr int kInFlight = 3;
  Dispatcher<int> d;
  PoolOptions o;
  o.consumers = 2;
  o.demand = DemandMode::Manual;
  std::mutex m;
  std::vector<int> started;  // handed over, not yet completed
  std::atomic<int> in_flight{0};
  std::atomic<int> most{0};
  ConsumerPool<int> pool(d, o, [&](int& e) {
    const int now = in_flight.fetch_add(1) + 1;
    int w = most.load();
    while (now > w && !most.compare_exchange_weak(w, now)) {
    }
    const std::lock_guard lock(m);
    started.push_back(e);
  });
  pool.ask(kInFlight);
  std::thread completer([&] {
    for (int done = 0; done < kEvents;) {
      bool got = false;
      {
        const std::lock_guard lock(m);
        if (!started.empty()) {
          started.pop_back();
          got = true;
        }
      }
      if (!got) {
        std::this_thread::yield();
        continue;
      }
      in_flight.fetch_sub(1);
      ++done;
      pool.ask(1);  // completed: one more
    }
  });
  for (int i = 0; i < kEvents; ++i) ASSERT_EQ(d.push(i), PushResult::Pushed);
  completer.join();
  d.close();
  pool.join();
  EXPECT_LE(most.load(), kInFlight);
  std::uint64_t handled = 0;
  for (const ConsumerStats& s : pool.stats()) handled += s.handled;
  EXPECT_EQ(handled, static_cast<std::uint64_t>(kEvents));
}

TEST(ConsumerPool, ManualPoolJoinsOnceDrainedAndItsDestructorTakesNothingMore) {
  std::atomic<int> handled{0};
  {
    Dispatcher<int> d;
    PoolOptions o;
    o.consumers = 2;
    o.demand = DemandMode::Manual;
    ConsumerPool<int> pool(d, o, [&](int&) { handled.fetch_add(1); });
    pool.ask(5);
    for (int i = 0; i < 5; ++i) ASSERT_EQ(d.push(i), PushResult::Pushed);
    d.close();
    pool.join();  // drained with no demand left: the consumers notice and end
    EXPECT_EQ(handled.load(), 5);
  }
  {
    Dispatcher<int> d;
    PoolOptions o;
    o.demand = DemandMode::Manual;
    {
      ConsumerPool<int> pool(d, o, [&](int&) { handled.fetch_add(1); });
      for (int i = 0; i < 20; ++i) ASSERT_EQ(d.push(i), PushResult::Pushed);
    }  // never asked: nothing is taken, and the destructor leaves the events in the source
    EXPECT_EQ(handled.load(), 5);
    EXPECT_EQ(d.stats().buffered, 20U);
    EXPECT_FALSE(d.closed());
  }
}

TEST(ConsumerPool, AskNeedsManualDemand) {
  Dispatcher<int> d;
  ConsumerPool<int> pool(d, PoolOptions{}, [](int&) {});
  EXPECT_THROW(pool.ask(1), std::logic_error);
}

TEST(ConsumerPool, HandlerErrorsAreCountedAndReported) {
  Dispatcher<int> d;
  PoolOptions o;
  o.consumers = 2;
  std::atomic<int> reported{0};
  o.on_error = [&](std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (const std::runtime_error&) {
      reported.fetch_add(1);
    }
  };
  ConsumerPool<int> pool(d, o, [](int& e) {
    if (e % 3 == 0) throw std::runtime_error("bad event");
  });
  for (int i = 0; i < 300; ++i) ASSERT_EQ(d.push(i), PushResult::Pushed);
  d.close();
  pool.join();
  std::uint64_t handled = 0;
  std::uint64_t failed = 0;
  for (const ConsumerStats& s : pool.stats()) {
    handled += s.handled;
    failed += s.failed;
  }
  EXPECT_EQ(failed, 100U);
  EXPECT_EQ(handled, 200U);
  EXPECT_EQ(reported.load(), 100);
}

// Retries: a handler that throws is called again, on the same consumer, before anything else.
TEST(ConsumerPool, RetriesAThrowingHandlerInOrder) {
  Dispatcher<int> d;
  for (int i = 0; i < 50; ++i) ASSERT_EQ(d.push(i), PushResult::Pushed);
  d.close();
  PoolOptions o;
  o.consumers = 1;
  o.retry.max_attempts = 3;
  o.retry.backoff = std::chrono::microseconds(100);
  std::atomic<int> errors{0};
  o.on_error = [&](std::exception_ptr) { errors.fetch_add(1); };
  std::vector<int> attempts(50, 0);
  std::vector<int> done;
  ConsumerPool<int> pool(d, o, [&](int& e) {
    if (e % 5 == 0 && ++attempts[static_cast<std::size_t>(e)] < 3) throw std::runtime_error("x");
    done.push_back(e);
  });
  pool.join();
  ASSERT_EQ(done.size(), 50U);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(done[static_cast<std::size_t>(i)], i);
  const ConsumerStats s = pool.stats()[0];
  EXPECT_EQ(s.handled, 50U);
  EXPECT_EQ(s.failed, 0U);
  EXPECT_EQ(s.retried, 20U);  // 10 events, 2 retries each
  EXPECT_EQ(errors.load(), 20);
}

TEST(ConsumerPool, EventsThatExhaustTheirRetriesGoToTheDeadLetter) {
  Counted::reset();
  {
    Dispatcher<Counted> d;
    for (std::uint64_t i = 0; i < 40; ++i) ASSERT_EQ(d.push(Counted(i)), PushResult::Pushed);
    d.close();
    PoolOptions o;
    o.consumers = 2;
    o.retry.max_attempts = 3;
    o.retry.backoff = std::chrono::microseconds(10);
    std::mutex m;
    std::set<std::uint64_t> dead;
    ConsumerPool<Counted> pool(
        d, o,
        [](Counted& e) {
          if (e.value % 2 == 1) throw std::runtime_error("odd");
        },
        [&](Counted& e, const Failure& f) {
          EXPECT_EQ(f.kind, FailureKind::Threw);
          EXPECT_EQ(f.attempts, 3U);
          EXPECT_TRUE(f.error != nullptr);
          const std::lock_guard lock(m);
          EXPECT_TRUE(dead.insert(e.value).second);
        });
    pool.join();
    EXPECT_EQ(dead.size(), 20U);
    for (const std::uint64_t v : dead) EXPECT_EQ(v % 2, 1U);
    std::uint64_t handled = 0, failed = 0, retried = 0;
    for (const ConsumerStats& s : pool.stats()) {
      handled += s.handled;
      failed += s.failed;
      retried += s.retried;
    }
    EXPECT_EQ(handled, 20U);
    EXPECT_EQ(failed, 20U);
    EXPECT_EQ(retried, 40U);
  }
  EXPECT_EQ(Counted::live.load(), 0);
  EXPECT_EQ(Counted::copies.load(), 0);
}

// Deadline: the first event is handled too slowly (failed although the handler returned); the
// seven taken with it are past their deadline before their turn (failed without a call).
TEST(ConsumerPool, EventsPastTheirDeadlineFail) {
  Dispatcher<int> d;
  for (int i = 0; i < 8; ++i) ASSERT_EQ(d.push(i), PushResult::Pushed);
  d.close();
  PoolOptions o;
  o.consumers = 1;
  o.max_demand = 8;
  o.min_demand = 0;
  o.deadline = std::chrono::milliseconds(10);
  std::atomic<int> calls{0};
  std::vector<std::pair<int, unsigned>> dead;
  ConsumerPool<int> pool(
      d, o,
      [&](int&) {
        calls.fetch_add(1);
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
      },
      [&](int& e, const Failure& f) {
        EXPECT_EQ(f.kind, FailureKind::DeadlineExceeded);
        dead.emplace_back(e, f.attempts);
      });
  pool.join();
  EXPECT_EQ(calls.load(), 1);
  ASSERT_EQ(dead.size(), 8U);
  EXPECT_EQ(dead[0], (std::pair<int, unsigned>{0, 1}));
  for (int i = 1; i < 8; ++i) {
    EXPECT_EQ(dead[static_cast<std::size_t>(i)], (std::pair<int, unsigned>{i, 0}));
  }
  const ConsumerStats s = pool.stats()[0];
  EXPECT_EQ(s.handled, 0U);
  EXPECT_EQ(s.failed, 8U);
  EXPECT_EQ(s.expired, 8U);
}

TEST(ConsumerPool, ABatchHandlerIsRetriedAsAWhole) {
  Dispatcher<int> d;
  for (int i = 0; i < 12; ++i) ASSERT_EQ(d.push(i), PushResult::Pushed);
  d.close();
  PoolOptions o;
  o.consumers = 1;
  o.max_demand = 6;
  o.min_demand = 0;
  o.retry.max_attempts = 2;
  o.retry.backoff = std::chrono::nanoseconds(0);
  int calls = 0;
  std::vector<int> seen;
  ConsumerPool<int> pool(d, o, [&](std::span<int> events) {
    if (++calls == 1) throw std::runtime_error("first call fails");
    seen.insert(seen.end(), events.begin(), events.end());
  });
  pool.join();
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
  EXPECT_EQ(pool.stats()[0].retried, 1U);
  EXPECT_EQ(pool.stats()[0].handled, 12U);
}

// Three handlers meet at a latch: only three consumers running at once can pass it.
TEST(ConsumerPool, ResizeUpStartsMoreConsumers) {
  Dispatcher<int> d;
  PoolOptions o;
  o.consumers = 1;
  std::latch together(3);
  std::atomic<int> handled{0};
  ConsumerPool<int> pool(d, o, [&](int& e) {
    if (e < 3) together.arrive_and_wait();
    handled.fetch_add(1);
  });
  pool.resize(3);
  EXPECT_EQ(pool.size(), 3U);
  for (int i = 0; i < 30; ++i) ASSERT_EQ(d.push(i), PushResult::Pushed);
  d.close();
  pool.join();
  EXPECT_EQ(handled.load(), 30);
  EXPECT_EQ(pool.stats().size(), 3U);
}

TEST(ConsumerPool, ResizeDownRetiresConsumersWithoutLosingEvents) {
  constexpr std::uint32_t kEvents = 20'000;
  Dispatcher<std::uint32_t> d;
  PoolOptions o;
  o.consumers = 4;
  o.max_demand = 8;  // retiring consumers hold events: they must handle them first
  std::vector<std::atomic<std::uint8_t>> seen(kEvents);
  ConsumerPool<std::uint32_t> pool(d, o, [&](std::uint32_t& e) { seen[e].fetch_add(1); });
  std::thread producer([&] {
    for (std::uint32_t i = 0; i < kEvents; ++i) ASSERT_EQ(d.push(i), PushResult::Pushed);
  });
  pool.resize(1);
  auto ended = [&] {
    std::size_t n = 0;
    for (const ConsumerStats& s : pool.stats()) n += s.active ? 0 : 1;
    return n;
  };
  while (ended() != 3) std::this_thread::yield();  // idle ones notice within kRecheck
  pool.resize(3);
  pool.resize(2);
  EXPECT_EQ(pool.size(), 2U);
  producer.join();
  d.close();
  pool.join();
  std::uint64_t handled = 0;
  for (const ConsumerStats& s : pool.stats()) handled += s.handled;
  EXPECT_EQ(handled, kEvents);
  for (std::uint32_t i = 0; i < kEvents; ++i) ASSERT_EQ(seen[i].load(), 1) << "event " << i;
  EXPECT_EQ(pool.stats().size(), 6U);  // 4, then 2 more started by resize(3)
}

// Destroying a pool ends its consumers: each handles the event it holds, takes no more, and the
// source stays open with the rest (nothing is lost: it is the source's, and its on_drop sees what
// it still holds when it is destroyed).
TEST(ConsumerPool, DestroyingAPoolHandlesWhatItHoldsAndLeavesTheRest) {
  Counted::reset();
  std::atomic<int> handled{0};
  std::atomic<int> dropped{0};
  {
    Dispatcher<Counted> d(DispatcherOptions{}, [&](Counted&&, DropReason why) {
      EXPECT_EQ(why, DropReason::Destroyed);
      dropped.fetch_add(1);
    });
    std::atomic<bool> in_handler{false};
    std::atomic<bool> release{false};
    {
      PoolOptions o;
      o.pin = false;
      ConsumerPool<Counted> pool(d, o, [&](Counted&) {
        in_handler = true;
        while (!release.load()) std::this_thread::yield();
        handled.fetch_add(1);
      });
      for (std::uint64_t i = 0; i < 10; ++i) ASSERT_EQ(d.push(Counted(i)), PushResult::Pushed);
      while (!in_handler.load()) std::this_thread::yield();
      std::thread releaser([&] {
        std::this_thread::sleep_for(5ms);
        release = true;
      });
      releaser.detach();
    }  // waits for the handler, then the consumer ends
    EXPECT_EQ(handled.load(), 1);
    EXPECT_FALSE(d.closed());
    EXPECT_EQ(d.stats().buffered, 9U);
  }
  EXPECT_EQ(dropped.load(), 9);
  EXPECT_EQ(Counted::live.load(), 0);
  EXPECT_EQ(Counted::copies.load(), 0);
}

// Two pools on one Dispatcher: destroying one leaves the source to the other.
TEST(ConsumerPool, DestroyingOnePoolLeavesASharedSourceToTheOther) {
  Dispatcher<int> d;
  std::atomic<int> by_b{0};
  PoolOptions o;
  o.pin = false;
  ConsumerPool<int> b(d, o, [&](int&) { by_b.fetch_add(1); });
  {
    ConsumerPool<int> a(d, o, [](int&) {});
  }
  EXPECT_FALSE(d.closed());
  for (int i = 0; i < 100; ++i) ASSERT_EQ(d.push(i), PushResult::Pushed);
  d.close();
  b.join();
  EXPECT_EQ(by_b.load(), 100);
}

// An idle pool costs no wakeups: its consumers sleep in their source (or wait for demand, or for
// resume()) until something happens, and resize() wakes the ones it retires itself. Counted per
// consumer thread (the threads the pool started: /proc/self/task before and after), so that
// threads of the test runtime (ThreadSanitizer's, say) do not count.
struct IdleCase {
  const char* name;
  std::size_t max_demand;
  DemandMode demand;
  bool paused;
};
class IdlePool : public ::testing::TestWithParam<IdleCase> {};

std::set<std::string> threads_of_this_process() {
  std::set<std::string> tids;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
    tids.insert(e.path().filename().string());
  }
  return tids;
}
// Voluntary context switches (sleeps) of the given threads, summed.
long voluntary_switches(const std::set<std::string>& tids) {
  long total = 0;
  for (const std::string& tid : tids) {
    std::ifstream status("/proc/self/task/" + tid + "/status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0) total += std::stol(line.substr(24));
    }
  }
  return total;
}

TEST_P(IdlePool, CostsNoWakeups) {
  Dispatcher<int> d;
  PoolOptions o;
  o.consumers = 2;
  o.pin = false;
  o.max_demand = GetParam().max_demand;
  o.demand = GetParam().demand;
  std::atomic<int> handled{0};
  std::thread([] {}).join();  // a runtime that starts a helper thread with the first one (TSan)
  const std::set<std::string> before_pool = threads_of_this_process();
  ConsumerPool<int> pool(d, o, [&](int&) { handled.fetch_add(1); });
  std::set<std::string> consumers;
  for (const std::string& tid : threads_of_this_process()) {
    if (before_pool.count(tid) == 0) consumers.insert(tid);
  }
  ASSERT_EQ(consumers.size(), 2U);
  if (GetParam().paused) pool.pause();
  if (GetParam().demand == DemandMode::Manual) pool.ask(1);
  ASSERT_EQ(d.push(0), PushResult::Pushed);  // every consumer has run its loop at least once
  if (!GetParam().paused) {
    while (handled.load() == 0) std::this_thread::yield();
  }
  std::this_thread::sleep_for(50ms);  // past every spin window
  const long before = voluntary_switches(consumers);
  std::this_thread::sleep_for(350ms);  // more than 3 of the old 100 ms re-check rounds
  const long after = voluntary_switches(consumers);
  EXPECT_EQ(after - before, 0) << "wakeups of an idle pool";
  if (GetParam().paused) pool.resume();  // a paused consumer retires once resumed
  pool.resize(1);                        // the retired consumer is woken by resize() itself
  auto ended = [&] {
    std::size_t n = 0;
    for (const ConsumerStats& s : pool.stats()) n += s.active ? 0 : 1;
    return n;
  };
  while (ended() != 1) std::this_thread::yield();
  d.close();
  pool.join();
}

INSTANTIATE_TEST_SUITE_P(Modes, IdlePool,
                         ::testing::Values(IdleCase{"OneAtATime", 1, DemandMode::Automatic, false},
                                           IdleCase{"Batches", 4, DemandMode::Automatic, false},
                                           IdleCase{"Manual", 1, DemandMode::Manual, false},
                                           IdleCase{"Paused", 1, DemandMode::Automatic, true}),
                         [](const ::testing::TestParamInfo<IdleCase>& p) {
                           return std::string(p.param.name);
                         });

// demand() is what ask() granted and no event has used yet, whether or not consumers wait.
TEST(ConsumerPool, DemandReportsWhatWasAskedAndNotYetUsed) {
  Dispatcher<int> d;
  PoolOptions o;
  o.consumers = 2;
  o.pin = false;
  o.demand = DemandMode::Manual;
  ConsumerPool<int> pool(d, o, [](int&) {});
  pool.ask(4);
  std::this_thread::sleep_for(30ms);  // best effort: let idle consumers react to the demand
  EXPECT_EQ(pool.demand(), 4U);
  pool.ask(2);
  pool.ask(3);
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(pool.demand(), 9U);
  ASSERT_EQ(d.push(1), PushResult::Pushed);
  d.close();
  pool.join();
  EXPECT_EQ(pool.demand(), 8U);
}

// Demand that was asked for reaches the events that can use it: a consumer waiting on an empty
// partition holds no credits while the other partition has events (the scenario).
TEST(ConsumerPool, ManualDemandReachesTheEventsOfEveryPartition) {
  PartitionDispatcher<int> p(2, [](const int& e) { return static_cast<std::size_t>(e); });
  const PoolOptions o = manual_over_two_partitions(4);
  std::array<std::atomic<bool>, 2> release{};
  std::atomic<int> handled{0};
  ConsumerPool<int> pool(p, o, [&](int& e) {
    while (!release[static_cast<std::size_t>(e % 2)].load()) std::this_thread::yield();
    handled.fetch_add(1);
  });
  ASSERT_EQ(p.push(0), PushResult::Pushed);
  ASSERT_EQ(p.push(1), PushResult::Pushed);
  pool.ask(2);
  release[0] = true;
  while (handled.load() < 1) std::this_thread::yield();
  pool.ask(3);
  std::this_thread::sleep_for(30ms);  // best effort: partition 0's consumer waits, idle
  for (int e : {3, 5, 7}) ASSERT_EQ(p.push(e), PushResult::Pushed);
  release[1] = true;
  for (int spins = 0; handled.load() < 5 && spins < 5000; ++spins) {
    std::this_thread::sleep_for(1ms);  // guards a hang; the pass needs no close()
  }
  EXPECT_EQ(handled.load(), 5) << "demand was stuck with the idle partition's consumer";
  EXPECT_EQ(pool.demand(), 0U);
  p.close();
  pool.join();
}

// The same with a broadcast subscriber whose selector takes nothing: its consumer must not sit on
// the demand the other subscriber's events need.
TEST(ConsumerPool, ManualDemandIsNotHeldByASubscriberThatGetsNothing) {
  BroadcastDispatcher<int> b(2, BroadcastDispatcher<int>::default_options(),
                             {[](const int&) { return false; }, nullptr});
  PoolOptions o;
  o.consumers = 2;
  o.pin = false;
  o.max_demand = 3;
  o.demand = DemandMode::Manual;
  std::atomic<int> handled{0};
  ConsumerPool<int> pool(b, o, [&](int&) { handled.fetch_add(1); });
  for (int round = 1; round <= 10; ++round) {
    pool.ask(1);
    std::this_thread::sleep_for(2ms);  // best effort: both consumers react to the demand
    ASSERT_EQ(b.push(round), PushResult::Pushed);
    for (int spins = 0; handled.load() < round && spins < 2000; ++spins) {
      std::this_thread::sleep_for(1ms);  // guards a hang
    }
    ASSERT_EQ(handled.load(), round) << "demand held by the subscriber that gets nothing";
  }
  b.close();
  pool.join();
}

TEST(ConsumerPool, BusyTimeCoversTheHandler) {
  Dispatcher<int> d;
  PoolOptions o;
  o.consumers = 1;
  ConsumerPool<int> pool(d, o, [](int&) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(2);
    while (std::chrono::steady_clock::now() < until) {
    }
  });
  for (int i = 0; i < 5; ++i) ASSERT_EQ(d.push(i), PushResult::Pushed);
  d.close();
  pool.join();
  EXPECT_GE(pool.stats()[0].busy, std::chrono::milliseconds(10));  // lower bound: 5 x 2 ms
}

TEST(ConsumerPool, InvalidOptionsNameTheField) {
  Dispatcher<int> d;
  auto message_of = [&](const PoolOptions& o) -> std::string {
    try {
      ConsumerPool<int> pool(d, o, [](int&) {});
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  PoolOptions o;
  o.consumers = 0;
  EXPECT_NE(message_of(o).find("PoolOptions::consumers must be in [1, 65536]; got 0"),
            std::string::npos);
  o = {};
  o.max_demand = 0;
  EXPECT_NE(message_of(o).find("PoolOptions::max_demand must be in [1, 65536]; got 0"),
            std::string::npos);
  o = {};
  o.max_demand = 10;
  o.min_demand = 10;
  EXPECT_NE(message_of(o).find("PoolOptions::min_demand must be in [0, max_demand - 1] = [0, 9]; "
                               "got 10"),
            std::string::npos);
  o = {};
  o.demand = static_cast<DemandMode>(9);
  EXPECT_NE(message_of(o).find("PoolOptions::demand must be Automatic or Manual"),
            std::string::npos);
  o = {};
  o.retry.max_attempts = 0;
  EXPECT_NE(message_of(o).find("PoolOptions::retry.max_attempts must be in [1, 100]; got 0"),
            std::string::npos);
  o = {};
  o.retry.backoff = -1ns;
  EXPECT_NE(message_of(o).find("PoolOptions::retry.backoff must be >= 0 ns"), std::string::npos);
  o = {};
  o.retry.multiplier = 0.5;
  EXPECT_NE(message_of(o).find("PoolOptions::retry.multiplier must be in [1, 100]"),
            std::string::npos);
  o = {};
  o.retry.max_backoff = std::chrono::milliseconds(1);
  EXPECT_NE(
      message_of(o).find("PoolOptions::retry.max_backoff must be >= PoolOptions::retry.backoff"),
      std::string::npos);
  o = {};
  o.deadline = -1ns;
  EXPECT_NE(message_of(o).find("PoolOptions::deadline must be >= 0 ns"), std::string::npos);
  o = {};
  o.cpus = {4095};
  EXPECT_NE(message_of(o).find("PoolOptions::cpus: CPU 4095 is not one this process may use"),
            std::string::npos);
  o = {};
  o.cpus = {-1};
  EXPECT_NE(message_of(o).find("PoolOptions::cpus: CPU -1"), std::string::npos);
  o = {};
  o.pin = false;
  o.cpus = {0};
  EXPECT_NE(message_of(o).find("PoolOptions::cpus must be empty when pin is false"),
            std::string::npos);
  EXPECT_FALSE(d.closed());  // a rejected pool never started, so it did not close the source
  {
    ConsumerPool<int> pool(d, PoolOptions{}, [](int&) {});
    try {
      pool.resize(0);
      ADD_FAILURE() << "resize(0) was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("ConsumerPool::resize: consumers must be in [1, 65536]"),
                std::string::npos);
    }
  }
  try {
    ConsumerPool<int> pool(d, PoolOptions{}, nullptr);
    ADD_FAILURE() << "an empty handler was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("handler"), std::string::npos);
  }
}

// Each field's refusal, message in full, and the edges that are accepted. A refused pool starts
// no thread, so its source stays open.
TEST(ConsumerPool, EveryRejectedOptionSaysWhyInFull) {
  Dispatcher<int> d;
  auto message_of = [&](const PoolOptions& o) {
    return test::message_of([&] { ConsumerPool<int> pool(d, o, [](int&) {}); });
  };
  const std::string allowed = test::allowed_cpu_list();
  PoolOptions o;
  o.consumers = 0;
  EXPECT_EQ(message_of(o), "PoolOptions::consumers must be in [1, 65536]; got 0");
  o.consumers = 65537;
  EXPECT_EQ(message_of(o), "PoolOptions::consumers must be in [1, 65536]; got 65537");
  o = {};
  o.max_demand = 0;
  EXPECT_EQ(message_of(o), "PoolOptions::max_demand must be in [1, 65536]; got 0");
  o.max_demand = 65537;
  EXPECT_EQ(message_of(o), "PoolOptions::max_demand must be in [1, 65536]; got 65537");
  o = {};
  o.cpus = {allowed_cpus().front(), 4095};  // one good CPU does not excuse a bad one
  EXPECT_EQ(message_of(o),
            "PoolOptions::cpus: CPU 4095 is not one this process may use; allowed: " + allowed);
  o = {};
  o.pin = false;
  o.cpus = {0, 1};
  EXPECT_EQ(message_of(o), "PoolOptions::cpus must be empty when pin is false; got {0,1}");
  try {
    ConsumerPool<int> pool(d, PoolOptions{}, ConsumerPool<int>::Handler{});
    ADD_FAILURE() << "an empty handler was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "ConsumerPool: handler must not be empty");
  }
  EXPECT_FALSE(d.closed());
  // The edges that are accepted (this pool starts, then closes the source when destroyed).
  o = {};
  o.consumers = 1;
  o.max_demand = 65536;
  o.cpus = {allowed_cpus().back()};
  EXPECT_EQ(message_of(o), "accepted");
}

}  // namespace
}  // namespace pushstage
