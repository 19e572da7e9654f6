// dispatcher_bench.cpp: Dispatcher throughput and handoff against its yardsticks, in one binary.
//
// Every subject runs next to moodycamel's BlockingConcurrentQueue, a mutex + condvar deque,
// oneTBB's concurrent_bounded_queue and raw moodycamel with spinning consumers, so each number
// comes with a ratio measured in the same run. Run with --benchmark_enable_random_interleaving=true
// and repetitions to spread machine noise evenly over the implementations.
//
// Names are regression keys (tools/perf_gate reads them): BM_<Case><<Impl>>/...
//   BM_Throughput  P producers, C consumers, one event at a time, as fast as they go
//   BM_Bulk        the same in bulks of 64 (push_bulk / pop_bulk)
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

#include "peers.hpp"
#include "pushstage/cpus.hpp"

namespace pushstage::bench {
namespace {

struct Event {
  std::uint64_t seq = 0;
  std::uint64_t stamp = 0;
};

const std::vector<int>& cpus() {
  static const std::vector<int> all = allowed_cpus();
  return all;
}

// One queue per benchmark run, shared by its threads; Setup/Teardown run before and after each
// run (each calibration trial and repetition gets a fresh queue).
template <class Q>
struct Shared {
  static inline std::unique_ptr<Q> queue;
  static void setup(const benchmark::State& /*state*/) { queue = std::make_unique<Q>(); }
  static void teardown(const benchmark::State& /*state*/) { queue.reset(); }
};

// P producers and C consumers; a producer pushes C events per iteration and a consumer pops P, so
// both sides move P*C*iterations events. items_per_second counts events popped.
template <class Q, int P, int C>
void BM_Throughput(benchmark::State& state) {
  Q& q = *Shared<Q>::queue;
  pin_this_thread(cpus()[static_cast<std::size_t>(state.thread_index()) % cpus().size()]);
  if (state.thread_index() < P) {
    auto producer = q.producer();
    std::uint64_t seq = 0;
    for (auto _ : state) {
      for (int i = 0; i < C; ++i) q.push(producer, Event{seq++, 0});
    }
  } else {
    auto consumer = q.consumer();
    Event e;
    for (auto _ : state) {
      for (int i = 0; i < P; ++i) {
        q.pop(consumer, e);
        benchmark::DoNotOptimize(e);
      }
    }
    state.SetItemsProcessed(state.iterations() * P);
  }
}

#define PUSHSTAGE_THROUGHPUT(Q, P, C)                                              \
  BENCHMARK_TEMPLATE(BM_Throughput, Q<Event>, P, C)                                \
      ->Name(std::string("BM_Throughput<") + Q<Event>::kName + ">/" #P "P" #C "C") \
      ->Setup(Shared<Q<Event>>::setup)                                             \
      ->Teardown(Shared<Q<Event>>::teardown)                                       \
      ->Threads((P) + (C))                                                         \
      ->UseRealTime()

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
  pin_this_thread(cpus()[static_cast<std::size_t>(state.thread_index()) % cpus().size()]);
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

}  // namespace
}  // namespace pushstage::bench

BENCHMARK_MAIN();
