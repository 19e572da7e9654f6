// dispatcher_bench.cpp: Dispatcher throughput and handoff against its yardsticks, in one binary.
//
// Every subject runs next to moodycamel's BlockingConcurrentQueue, a mutex + condvar deque,
// oneTBB's concurrent_bounded_queue and raw moodycamel with spinning consumers, so each number
// comes with a ratio measured in the same run. Run with --benchmark_enable_random_interleaving=true
// and repetitions to spread machine noise evenly over the implementations.
//
// Names are regression keys (tools/perf_gate reads them): BM_<Case><<Impl>>/...
//   BM_Throughput  P producers, C consumers, one event at a time, as fast as they go
//                  (throughput.hpp; without handles: dispatcher_tokenless_bench)
//   BM_Bulk        the same in bulks of 64 (push_bulk / pop_bulk)
//   BM_Handoff     one event to a consumer on the other CPU and back (round trips per second):
//                  spinning: back to back, so the consumer is still spinning when it arrives;
//                  parked: after an idle gap longer than every implementation's spin, so the
//                  consumer is asleep. Percentiles of the round trip are reported (p50_us,
//                  p99_us), not gated: tails move several-fold between identical runs here.
//   BM_Bounded     a producer against a bounded buffer (capacity 1024) drained by a consumer on
//                  the other CPU, under each overflow policy; items are push calls, kept_per_second
//                  counts events that were neither rejected nor dropped
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "bounded_peers.hpp"
#include "peers.hpp"
#include "pushstage/cpus.hpp"
#include "throughput.hpp"

namespace pushstage::bench {
namespace {

#define PUSHSTAGE_THROUGHPUT_ALL(P, C)        \
  PUSHSTAGE_THROUGHPUT(PushstageQueue, P, C); \
  PUSHSTAGE_THROUGHPUT(BlockingQueue, P, C);  \
  PUSHSTAGE_THROUGHPUT(MutexQueue, P, C);     \
  PUSHSTAGE_THROUGHPUT(TbbQueue, P, C);       \
  PUSHSTAGE_THROUGHPUT(SpinningQueue, P, C)

PUSHSTAGE_THROUGHPUT_ALL(1, 1);
PUSHSTAGE_THROUGHPUT_ALL(2, 2);
PUSHSTAGE_THROUGHPUT_ALL(1, 4);
PUSHSTAGE_THROUGHPUT_ALL(4, 1);

// ---- Bulk: P producers push bulks of kMaxBulk, C consumers pop up to kMaxBulk at a time. ----

template <class Q, int P, int C>
void BM_Bulk(benchmark::State& state) {
  Q& q = *Shared<Q>::queue;
  pin_bench_thread(cpus()[static_cast<std::size_t>(state.thread_index()) % cpus().size()]);
  if (state.thread_index() < P) {
    auto producer = q.producer();
    std::array<Event, kMaxBulk> bulk{};
    std::uint64_t seq = 0;
    for (auto _ : state) {
      for (int i = 0; i < C; ++i) {
        for (Event& e : bulk) e.seq = seq++;
        q.push_bulk(producer, bulk.data(), bulk.size());
      }
    }
  } else {
    auto consumer = q.consumer();
    std::array<Event, kMaxBulk> out{};
    for (auto _ : state) {
      // Exactly P bulks' worth per iteration, so producers and consumers stop together.
      std::size_t want = static_cast<std::size_t>(P) * kMaxBulk;
      while (want > 0) want -= q.pop_bulk(consumer, out.data(), std::min(want, kMaxBulk));
      benchmark::DoNotOptimize(out);
    }
    state.SetItemsProcessed(state.iterations() * P * static_cast<std::int64_t>(kMaxBulk));
  }
}

#define PUSHSTAGE_BULK(Q, P, C)                                                      \
  BENCHMARK_TEMPLATE(BM_Bulk, Q<Event>, P, C)                                        \
      ->Name(std::string("BM_Bulk<") + Q<Event>::kName + ">/" #P "P" #C "C/bulk:64") \
      ->Setup(Shared<Q<Event>>::setup)                                               \
      ->Teardown(Shared<Q<Event>>::teardown)                                         \
      ->Threads((P) + (C))                                                           \
      ->UseRealTime()

#define PUSHSTAGE_BULK_ALL(P, C)        \
  PUSHSTAGE_BULK(PushstageQueue, P, C); \
  PUSHSTAGE_BULK(BlockingQueue, P, C);  \
  PUSHSTAGE_BULK(MutexQueue, P, C);     \
  PUSHSTAGE_BULK(TbbQueue, P, C);       \
  PUSHSTAGE_BULK(SpinningQueue, P, C)

PUSHSTAGE_BULK_ALL(1, 1);
PUSHSTAGE_BULK_ALL(2, 2);

// ---- Handoff: one event at a time to a consumer on the other CPU, which sends it back. ----

using Clock = std::chrono::steady_clock;

// Longer than DispatcherOptions::spin (20 us by default) and than the yardsticks' own spinning
// (moodycamel's semaphore spins 10 000 polls, TBB a few backoff rounds), so the echoing consumer
// is parked when the next event arrives.
constexpr auto kIdleGap = std::chrono::microseconds(200);
// Round trips per parked run: each costs the gap plus a wake, so a fixed count keeps runs short.
constexpr benchmark::IterationCount kParkedRoundTrips = 400;

// Two queues and an echo thread pinned to the second CPU: it pops from ping and pushes to pong.
template <class Q>
struct PingPong {
  static inline std::unique_ptr<Q> ping;
  static inline std::unique_ptr<Q> pong;
  static inline std::thread echo;
  static void setup(const benchmark::State& /*state*/) {
    ping = std::make_unique<Q>();
    pong = std::make_unique<Q>();
    echo = std::thread([] {
      pin_bench_thread(cpus()[1 % cpus().size()]);
      auto consumer = ping->consumer();
      auto producer = pong->producer();
      Event e;
      while (ping->pop(consumer, e)) pong->push(producer, e);
    });
  }
  static void teardown(const benchmark::State& /*state*/) {
    ping->close(1);
    echo.join();
    ping.reset();
    pong.reset();
  }
};

// Sorted copy's percentile, in microseconds (after the timed loop).
double percentile_us(std::vector<double>& sorted_seconds, double p) {
  if (sorted_seconds.empty()) return 0;
  const auto i = static_cast<std::size_t>(p * static_cast<double>(sorted_seconds.size() - 1));
  return sorted_seconds[i] * 1e6;
}

// The timed part of an iteration is push to reply received; the reply is awaited by polling, so
// the round trip is one wake (or none) of the echoing consumer and one hot handoff back.
template <class Q, bool kAfterIdle>
void BM_Handoff(benchmark::State& state) {
  pin_bench_thread(cpus()[0]);
  Q& ping = *PingPong<Q>::ping;
  Q& pong = *PingPong<Q>::pong;
  auto producer = ping.producer();
  auto consumer = pong.consumer();
  std::vector<double> round_trips;
  round_trips.reserve(static_cast<std::size_t>(state.max_iterations));
  std::uint64_t seq = 0;
  Event e;
  for (auto _ : state) {
    if constexpr (kAfterIdle) {
      const auto until = Clock::now() + kIdleGap;
      while (Clock::now() < until) detail::cpu_relax();
    }
    const auto start = Clock::now();
    ping.push(producer, Event{seq++, 0});
    while (!pong.try_pop(consumer, e)) detail::cpu_relax();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    state.SetIterationTime(seconds);
    round_trips.push_back(seconds);
  }
  benchmark::DoNotOptimize(e);
  state.SetItemsProcessed(state.iterations());
  std::sort(round_trips.begin(), round_trips.end());
  state.counters["p50_us"] = percentile_us(round_trips, 0.50);
  state.counters["p99_us"] = percentile_us(round_trips, 0.99);
}

#define PUSHSTAGE_HANDOFF_SPINNING(Q)                                     \
  BENCHMARK_TEMPLATE(BM_Handoff, Q<Event>, false)                         \
      ->Name(std::string("BM_Handoff<") + Q<Event>::kName + ">/spinning") \
      ->Setup(PingPong<Q<Event>>::setup)                                  \
      ->Teardown(PingPong<Q<Event>>::teardown)                            \
      ->UseManualTime()
#define PUSHSTAGE_HANDOFF_PARKED(Q)                                     \
  BENCHMARK_TEMPLATE(BM_Handoff, Q<Event>, true)                        \
      ->Name(std::string("BM_Handoff<") + Q<Event>::kName + ">/parked") \
      ->Setup(PingPong<Q<Event>>::setup)                                \
      ->Teardown(PingPong<Q<Event>>::teardown)                          \
      ->Iterations(kParkedRoundTrips)                                   \
      ->UseManualTime()

PUSHSTAGE_HANDOFF_SPINNING(PushstageQueue);
PUSHSTAGE_HANDOFF_SPINNING(BlockingQueue);
PUSHSTAGE_HANDOFF_SPINNING(MutexQueue);
PUSHSTAGE_HANDOFF_SPINNING(TbbQueue);
PUSHSTAGE_HANDOFF_SPINNING(SpinningQueue);  // the floor: a consumer that never sleeps
PUSHSTAGE_HANDOFF_PARKED(PushstageQueue);
PUSHSTAGE_HANDOFF_PARKED(BlockingQueue);
PUSHSTAGE_HANDOFF_PARKED(MutexQueue);
PUSHSTAGE_HANDOFF_PARKED(TbbQueue);

// ---- Bounded: one producer against a bounded buffer that a consumer on the other CPU drains. ----

constexpr std::size_t kBoundedCapacity = 1024;

template <class B>
struct BoundedRig {
  static inline std::unique_ptr<B> queue;
  static inline std::thread drain;
  template <Overflow kOverflow>
  static void setup(const benchmark::State& /*state*/) {
    queue = std::make_unique<B>(kBoundedCapacity, kOverflow);
    drain = std::thread([] {
      pin_bench_thread(cpus()[1 % cpus().size()]);
      auto consumer = queue->consumer();
      Event e;
      while (queue->pop(consumer, e)) benchmark::DoNotOptimize(e);
    });
  }
  static void teardown(const benchmark::State& /*state*/) {
    queue->close(1);
    drain.join();
    queue.reset();
  }
};

template <class B>
void BM_Bounded(benchmark::State& state) {
  pin_bench_thread(cpus()[0]);
  B& q = *BoundedRig<B>::queue;
  auto producer = q.producer();
  std::uint64_t seq = 0;
  std::int64_t lost = 0;  // rejected, or dropped to make room
  for (auto _ : state) {
    lost += q.push(producer, Event{seq++, 0}) == PushResult::Pushed ? 0 : 1;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["kept_per_second"] = benchmark::Counter(
      static_cast<double>(state.iterations() - lost), benchmark::Counter::kIsRate);
}

#define PUSHSTAGE_BOUNDED(B, POLICY)                                      \
  BENCHMARK_TEMPLATE(BM_Bounded, B<Event>)                                \
      ->Name(std::string("BM_Bounded<") + B<Event>::kName + ">/" #POLICY) \
      ->Setup(BoundedRig<B<Event>>::template setup<Overflow::POLICY>)     \
      ->Teardown(BoundedRig<B<Event>>::teardown)                          \
      ->UseRealTime()

#define PUSHSTAGE_BOUNDED_ALL(POLICY)              \
  PUSHSTAGE_BOUNDED(BoundedPushstage, POLICY);     \
  PUSHSTAGE_BOUNDED(BoundedBlockingQueue, POLICY); \
  PUSHSTAGE_BOUNDED(BoundedMutexQueue, POLICY);    \
  PUSHSTAGE_BOUNDED(BoundedTbbQueue, POLICY)

PUSHSTAGE_BOUNDED_ALL(Block);
PUSHSTAGE_BOUNDED_ALL(Reject);
PUSHSTAGE_BOUNDED_ALL(DropOldest);

}  // namespace
}  // namespace pushstage::bench

BENCHMARK_MAIN();
