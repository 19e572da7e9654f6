// bench/throughput.hpp: the throughput benchmark that dispatcher_bench and
// dispatcher_tokenless_bench share: P producers and C consumers moving events through one queue;
// its Event and cpus() serve consumer_pool_bench too.
// Everything is in an anonymous namespace, as it was inside dispatcher_bench.cpp: each binary has
// its own Event type, so its instantiations of pushstage are its own and GCC may inline them as it
// would in a program that has only them.
#pragma once

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

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

// Benchmark threads are pinned, one CPU each in turn, unless PUSHSTAGE_BENCH_NO_PIN is set to
// anything but "" or "0": then the kernel places them (the regime pushstage-bench's --no-pin
// measures). Pinning changes the cost of a wake several-fold here (README.md, Results), so both
// are worth a run. A ConsumerPool's own threads follow its PoolOptions either way.
bool pin_threads() {
  static const bool pin = [] {
    const char* v = std::getenv("PUSHSTAGE_BENCH_NO_PIN");
    return v == nullptr || std::string_view(v).empty() || std::string_view(v) == "0";
  }();
  return pin;
}

void pin_bench_thread(int cpu) {
  if (pin_threads()) pin_this_thread(cpu);
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
  pin_bench_thread(cpus()[static_cast<std::size_t>(state.thread_index()) % cpus().size()]);
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

}  // namespace
}  // namespace pushstage::bench
