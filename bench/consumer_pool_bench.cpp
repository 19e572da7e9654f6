// consumer_pool_bench.cpp: ConsumerPool end to end, from the first push to the last handler call
// returned, with an empty handler, against the same pool built by hand over each yardstick.
//
// One producer (pinned to the last CPU) pushes one event per iteration; C consumers pinned
// round-robin from the first CPU (ConsumerPool's default plan) take one event at a time and call
// the handler. The timed span ends when every event has been handled: pushstage's close() then
// join() (its documented way to wait for that); the hand-built pools count handled events per
// consumer and stop once the count is complete. items_per_second is events handled per second.
//
// BM_PoolDrain: the consumers' loop alone. The events are pushed before the pool starts, so its
// consumers never wait for the producer: the timed span runs from starting the pool to the last
// handler call returned (pushstage: join() after close(); the hand-built pools count), over
// kDrainEvents events, and the producer's speed and scheduling are out of it. cpu_ns_per_event is
// the process's CPU time over the span per event: with one consumer, what its loop costs, whatever
// share of the CPU the machine left it (for the hand-built pools it also holds the main thread's
// polling, a wake-up every 20 us).
//
// Names are regression keys (tools/perf_gate reads them): BM_Pool<<Impl>>/consumers:<C>,
// BM_PoolDrain<<Impl>>/consumers:<C>
#include <benchmark/benchmark.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "peers.hpp"
#include "pushstage/core/cache_line.hpp"
#include "pushstage/cpus.hpp"
#include "pushstage/pool/consumer_pool.hpp"
#include "throughput.hpp"

namespace pushstage::bench {
namespace {

// Consumer threads over a yardstick, shaped like ConsumerPool: pinned, one event at a time, a
// handler call per event, a handled counter per consumer on its own cache line.
template <class Q>
class HandPool {
 public:
  HandPool(Q& q, std::size_t consumers)
      : q_(q), handled_(std::make_unique<Counter[]>(consumers)), consumers_(consumers) {
    for (std::size_t i = 0; i < consumers; ++i) {
      threads_.emplace_back([this, i] { run(i); });
    }
  }
  ~HandPool() { stop(); }
  HandPool(const HandPool&) = delete;
  HandPool& operator=(const HandPool&) = delete;

  // Returns once `pushed` events have been handled, with the consumer threads stopped.
  void finish(std::uint64_t pushed) {
    // Sleep between polls: a consumer may share our CPU, and sched_yield() does not reliably
    // give it the CPU (a yield-polling producer once held one up for 50 ms here). A poll costs
    // the timed span at most a few tens of microseconds, against runs of 50 ms and more.
    while (handled() < pushed) std::this_thread::sleep_for(std::chrono::microseconds(20));
    stop();
  }

 private:
  struct alignas(detail::kCacheLine) Counter {
    std::atomic<std::uint64_t> n{0};
  };

  void run(std::size_t i) {
    pin_bench_thread(cpus()[i % cpus().size()]);
    auto consumer = q_.consumer();
    std::atomic<std::uint64_t>& handled = handled_[i].n;
    Event e;
    while (q_.pop(consumer, e)) {
      handler(e);
      // relaxed: a progress count read only by finish(); one writer.
      handled.store(handled.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
  }
  static void handler(Event& e) { benchmark::DoNotOptimize(e); }
  std::uint64_t handled() const {
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < consumers_; ++i) {
      total += handled_[i].n.load(std::memory_order_relaxed);
    }
    return total;
  }
  void stop() {
    if (stopped_) return;
    stopped_ = true;
    q_.close(consumers_);  // every event is handled: the stop markers cannot overtake one
    for (auto& t : threads_) t.join();
  }

  Q& q_;
  std::unique_ptr<Counter[]> handled_;
  std::size_t consumers_;
  std::vector<std::thread> threads_;
  bool stopped_ = false;
};

// pushstage: the real ConsumerPool with an empty handler.
template <class T>
class HandPool<PushstageQueue<T>> {
 public:
  HandPool(PushstageQueue<T>& q, std::size_t consumers)
      : q_(q),
        pool_(q.dispatcher(), options(consumers), [](T& e) { benchmark::DoNotOptimize(e); }) {}
  void finish(std::uint64_t /*pushed*/) {
    q_.close(0);
    pool_.join();  // returns once every event pushed before close() has been handled
  }

 private:
  static PoolOptions options(std::size_t consumers) {
    PoolOptions o;
    o.consumers = consumers;
    return o;
  }
  PushstageQueue<T>& q_;
  ConsumerPool<T> pool_;
};

template <class Q, int C>
struct PoolRig {
  static inline std::unique_ptr<Q> queue;
  static inline std::unique_ptr<HandPool<Q>> pool;
  static void setup(const benchmark::State& /*state*/) {
    queue = std::make_unique<Q>();
    pool = std::make_unique<HandPool<Q>>(*queue, static_cast<std::size_t>(C));
  }
  static void teardown(const benchmark::State& /*state*/) {
    pool.reset();
    queue.reset();
  }
};

template <class Q, int C>
void BM_Pool(benchmark::State& state) {
  pin_bench_thread(cpus().back());
  Q& q = *PoolRig<Q, C>::queue;
  auto producer = q.producer();
  std::uint64_t seq = 0;
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) q.push(producer, Event{seq++, 0});
  PoolRig<Q, C>::pool->finish(seq);
  // Manual time: the span from the first push to the last handler call, over all iterations.
  state.SetIterationTime(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  state.SetItemsProcessed(state.iterations());
}

#define PUSHSTAGE_POOL(Q, C)                                                \
  BENCHMARK_TEMPLATE(BM_Pool, Q<Event>, C)                                  \
      ->Name(std::string("BM_Pool<") + Q<Event>::kName + ">/consumers:" #C) \
      ->Setup(PoolRig<Q<Event>, C>::setup)                                  \
      ->Teardown(PoolRig<Q<Event>, C>::teardown)                            \
      ->UseManualTime()

#define PUSHSTAGE_POOL_ALL(C)        \
  PUSHSTAGE_POOL(PushstageQueue, C); \
  PUSHSTAGE_POOL(BlockingQueue, C);  \
  PUSHSTAGE_POOL(MutexQueue, C);     \
  PUSHSTAGE_POOL(TbbQueue, C)

PUSHSTAGE_POOL_ALL(1);
PUSHSTAGE_POOL_ALL(2);
PUSHSTAGE_POOL_ALL(4);

// Events per drain: a few milliseconds of handling, so starting the pool's threads (tens of
// microseconds) is a small part of the span.
constexpr std::uint64_t kDrainEvents = 1 << 16;

double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

template <class Q, int C>
void BM_PoolDrain(benchmark::State& state) {
  pin_bench_thread(cpus().back());
  std::uint64_t seq = 0;
  double cpu_seconds = 0;
  for (auto _ : state) {
    Q q;
    {
      auto producer = q.producer();
      for (std::uint64_t i = 0; i < kDrainEvents; ++i) q.push(producer, Event{seq++, 0});
    }
    const double cpu_start = process_cpu_seconds();
    const auto start = std::chrono::steady_clock::now();
    HandPool<Q> pool(q, static_cast<std::size_t>(C));
    pool.finish(kDrainEvents);
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    cpu_seconds += process_cpu_seconds() - cpu_start;
  }
  const auto events = state.iterations() * static_cast<std::int64_t>(kDrainEvents);
  state.SetItemsProcessed(events);
  state.counters["cpu_ns_per_event"] = cpu_seconds * 1e9 / static_cast<double>(events);
}

#define PUSHSTAGE_POOL_DRAIN(Q, C)                                               \
  BENCHMARK_TEMPLATE(BM_PoolDrain, Q<Event>, C)                                  \
      ->Name(std::string("BM_PoolDrain<") + Q<Event>::kName + ">/consumers:" #C) \
      ->UseManualTime()

PUSHSTAGE_POOL_DRAIN(PushstageQueue, 1);
PUSHSTAGE_POOL_DRAIN(BlockingQueue, 1);
PUSHSTAGE_POOL_DRAIN(MutexQueue, 1);
PUSHSTAGE_POOL_DRAIN(TbbQueue, 1);

}  // namespace
}  // namespace pushstage::bench

BENCHMARK_MAIN();
