// harness.hpp: what one run records. Every backend's consumers call Harness::handle() for each
// event they take: stamp the start, do the planned work, stamp the end, append a Record to the
// consumer's own log. Producers write each event's enqueue stamp into Harness::enqueued. Nothing
// on that path allocates, locks or prints; analysis.hpp reads it all after the join. Timeline is
// what the driver measures around the run (driver.hpp).
// Threading: a ConsumerLog is written by one consumer thread only, enqueued[id] by id's producer
//            only; the main thread polls handled() while the run goes (relaxed: progress only)
//            and reads the rest after joining every thread, which orders it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "bench_core.hpp"
#include "harness/clocks.hpp"
#include "harness/work.hpp"
#include "pushstage/core/cache_line.hpp"
#include "pushstage/cpus.hpp"
#include "run.hpp"

namespace pushstage::bench {

// Pins the calling thread as a pinned ConsumerPool pins its consumers under `pin_to`: to `cpu`,
// or to `cpu`'s cache domain. Peers' consumers and every producer go through it, so that every
// implementation runs with the same placement.
inline void pin_near(int cpu, PinTo pin_to) {
  const bool pinned =
      pin_to == PinTo::CacheDomain ? pin_this_thread(cache_domain(cpu)) : pin_this_thread(cpu);
  (void)pinned;  // refused (the affinity mask changed): the run goes on unpinned, as a pool's does
}

// One handling of one event.
struct Record {
  std::uint32_t id;
  std::int64_t start;
  std::int64_t end;
};

// One consumer's stamps, written only by its thread; handled is polled by the main thread.
struct alignas(detail::kCacheLine) ConsumerLog {
  std::unique_ptr<Record[]> records;  // uninitialised: pages are touched as they fill
  std::size_t capacity = 0;
  std::size_t n = 0;
  std::uint64_t overflow = 0;  // records beyond capacity (only duplicates can cause it)
  std::uint64_t bogus = 0;     // ids outside the plan
  std::atomic<std::uint64_t> busy_ns{0};
  alignas(detail::kCacheLine) std::atomic<std::uint64_t> handled{0};
};

struct Harness {
  const RunConfig& config;
  const Plan& plan;
  std::vector<std::int64_t> enqueued;  // per event id, written by its producer
  std::unique_ptr<ConsumerLog[]> logs;
  std::atomic<std::size_t> next_log{0};

  Harness(const RunConfig& c, const Plan& p)
      : config(c), plan(p), enqueued(p.size(), 0), logs(new ConsumerLog[c.consumers]) {
    for (std::size_t i = 0; i < c.consumers; ++i) {
      logs[i].records.reset(new Record[p.size()]);
      logs[i].capacity = p.size();
    }
  }

  // A consumer thread's log, claimed on its first event (ConsumerPool has no start hook).
  ConsumerLog& claim() noexcept {
    low_timer_slack();
    const std::size_t i = next_log.fetch_add(1, std::memory_order_relaxed);  // unique index only
    if (i >= config.consumers) std::abort();  // more consumer threads than configured
    return logs[i];
  }

  // The handler every implementation calls: stamp, work, stamp, record.
  void handle(ConsumerLog& log, std::uint32_t id) noexcept {
    const std::int64_t start = now_ns();
    // relaxed: a counter polled for progress; the join orders the records for the analysis.
    log.handled.store(log.handled.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (id >= plan.size()) {
      ++log.bogus;
      return;
    }
    do_work(config.work_mode, plan.work[id]);
    const std::int64_t end = now_ns();
    if (log.n < log.capacity) {
      log.records[log.n++] = Record{id, start, end};
    } else {
      ++log.overflow;
    }
  }

  std::uint64_t handled() const noexcept {
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < config.consumers; ++i) {
      sum += logs[i].handled.load(std::memory_order_relaxed);  // progress only
    }
    return sum;
  }
};

// The busy-time bookkeeping ConsumerPool does around every handler call (two clock reads and a
// store), repeated in the peers' loop so that every implementation pays the same per event.
template <class F>
void timed_call(ConsumerLog& log, F&& f) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  f();
  const auto spent = Clock::now() - start;
  log.busy_ns.store(
      log.busy_ns.load(std::memory_order_relaxed) + static_cast<std::uint64_t>(spent.count()),
      std::memory_order_relaxed);
}

// What the driver measures around the run (driver.hpp). Stamps are now_ns(), CPU times
// process_cpu_ns() or thread_cpu_ns(), all in ns.
struct Timeline {
  std::int64_t t0 = 0;  // producers start (stream, idle) or consumers start (batch)
  std::int64_t cpu_start = 0;
  std::int64_t rss_start_kb = 0;
  std::int64_t cpu_end = 0;
  std::int64_t peak_rss_kb = 0;
  std::int64_t producers_cpu = 0;  // summed over the producer threads
  std::int64_t main_cpu = 0;       // the thread that drives the run
  std::int64_t idle_cpu = 0;       // kIdle: the process during the idle window
  std::int64_t idle_window = 0;    // kIdle: how long that window really was
  bool stalled = false;            // the run ended because nothing moved for the stall limit
};

}  // namespace pushstage::bench
