// demand_source_bench.cpp: a stream made on demand (DemandSource under a ConsumerPool), end to
// end, against the push-only way to write the same stream: a thread of one's own that pushes into
// a bounded Dispatcher (Overflow::Block), so that the pool's pace holds it back.
//
// Each iteration streams kEvents events to a pool of C consumers (ConsumerPool's default plan,
// max_demand kMaxDemand) whose handler does nothing. BM_DemandSource: the generator makes what it
// is asked for, a counter, and ends the stream after kEvents. BM_BoundedPush (the yardstick): a
// thread pushes kEvents into a Dispatcher of capacity C * kMaxDemand (what the consumers may ask
// for at once: the same read-ahead), then closes it. The timed span runs from making the source to
// the pool's join() returning (every event handled). items_per_second is events handled per
// second. What this shows: the cost of asking (a wake of the generator's thread per demand)
// against the cost of blocking the producer on room.
//
// Names are regression keys: BM_DemandSource/consumers:<C>, BM_BoundedPush/consumers:<C>.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

#include "pushstage/dispatcher.hpp"
#include "pushstage/modes/demand_source.hpp"
#include "pushstage/pool/consumer_pool.hpp"

namespace pushstage::bench {
namespace {

constexpr std::uint64_t kEvents = 1 << 16;
constexpr std::size_t kMaxDemand = 64;

PoolOptions pool_options(std::size_t consumers) {
  PoolOptions o;
  o.consumers = consumers;
  o.max_demand = kMaxDemand;
  return o;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

template <int C>
void BM_DemandSource(benchmark::State& state) {
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    std::uint64_t next = 0;
    DemandSource<std::uint64_t> source(
        [&next](std::size_t demand, std::vector<std::uint64_t>& out) {
          for (std::size_t i = 0; i < demand && next < kEvents; ++i) out.push_back(next++);
          return next < kEvents;
        });
    ConsumerPool<std::uint64_t> pool(source, pool_options(C), [](std::uint64_t&) {});
    pool.join();
    state.SetIterationTime(seconds_since(start));
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kEvents));
}

template <int C>
void BM_BoundedPush(benchmark::State& state) {
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    DispatcherOptions bounded;
    bounded.capacity = C * kMaxDemand;
    Dispatcher<std::uint64_t> source(bounded);
    std::thread producer([&source] {
      auto p = source.producer();
      for (std::uint64_t i = 0; i < kEvents; ++i) (void)p.push(i);
      source.close();
    });
    ConsumerPool<std::uint64_t> pool(source, pool_options(C), [](std::uint64_t&) {});
    pool.join();
    producer.join();
    state.SetIterationTime(seconds_since(start));
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kEvents));
}

BENCHMARK_TEMPLATE(BM_DemandSource, 1)->Name("BM_DemandSource/consumers:1")->UseManualTime();
BENCHMARK_TEMPLATE(BM_BoundedPush, 1)->Name("BM_BoundedPush/consumers:1")->UseManualTime();
BENCHMARK_TEMPLATE(BM_DemandSource, 2)->Name("BM_DemandSource/consumers:2")->UseManualTime();
BENCHMARK_TEMPLATE(BM_BoundedPush, 2)->Name("BM_BoundedPush/consumers:2")->UseManualTime();

}  // namespace
}  // namespace pushstage::bench

BENCHMARK_MAIN();
