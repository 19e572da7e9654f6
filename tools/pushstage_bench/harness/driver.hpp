// driver.hpp: the timed part of a run, the same for every backend. drive() starts the consumers (a
// batch: only once every event is pushed), then one thread per producer that pushes its share of
// the plan at the intended times (open loop, paced) or as fast as it can (closed loop); waits until
// every event is handled, or until nothing has moved for the stall limit; for an idle run measures
// the CPU an idle pool burns; then closes and joins. run_with() is a whole run: a Harness, the
// backend, drive(), analyse().
// Timed path: produce() (an enqueue stamp, then push) and the consumers' Harness::handle(); the
// plan is made before, histograms and checks come after (analysis.hpp).
// Threading: drive() and run_with() start and join their own threads; one run at a time.
#pragma once

#include <algorithm>
#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <latch>
#include <optional>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "bench_core.hpp"
#include "harness/analysis.hpp"
#include "harness/clocks.hpp"
#include "harness/harness.hpp"
#include "pushstage/core/cache_line.hpp"
#include "pushstage/cpus.hpp"
#include "run.hpp"

namespace pushstage::bench {

// What drive() needs of an implementation: start its consumers (each calling the harness
// handler), a per-thread producer handle, push (never fails: every queue here is unbounded or
// blocks), close and join once every event is handled. pool_handled(): the handler calls its
// consumers counted themselves, to cross-check the harness (nullopt: the loop is the harness's).
// copies(): handler calls per event. A backend may also say `kWorkConserving = false`.
template <class B>
concept Backend = requires(B& backend, const B& observed, typename B::Producer& handle,
                           std::uint32_t id) {
  backend.start_consumers();
  { backend.producer() } -> std::same_as<typename B::Producer>;
  backend.push(handle, id);
  backend.close_and_join();
  { observed.pool_handled() } -> std::same_as<std::optional<std::uint64_t>>;
  { observed.copies() } -> std::same_as<std::size_t>;
};

// One run to make: the implementation, its configuration and plan, the repetition, and the label
// of its progress line.
struct RunRequest {
  const RunConfig& config;
  const Plan& plan;
  Impl impl;
  std::size_t rep;
  std::string_view label;
};

// Sleeps until shortly before `t`, then spins the last stretch. The stretch is the sleeps' mean
// overshoot (an 8-sample moving average) plus 5 us, at most 30 us: on time after a typical
// wake-up here (median overshoot about 24 us with 1 ns timer slack) without a producer spinning
// away a core of a 2-core machine. Events after a long wake-up are late; excess is measured from
// enqueue stamps, so lateness counts against no implementation (response time shows it).
class Pacer {
 public:
  void wait_until(std::int64_t t) noexcept {
    std::int64_t now = now_ns();
    if (t - now > lead()) {
      const std::int64_t wake = t - lead();
      sleep_until_ns(wake);
      now = now_ns();
      overshoot_ += ((now - wake) - overshoot_) / 8;
    }
    while (now < t) {
      detail::cpu_relax();
      now = now_ns();
    }
  }

 private:
  std::int64_t lead() const noexcept {
    return std::clamp<std::int64_t>(overshoot_ + 5'000, 5'000, 30'000);
  }
  std::int64_t overshoot_ = 20'000;
};

// The progress line on stderr when it is a terminal (after the program's first 2 s), and its
// removal.
void progress(std::string_view label, std::uint64_t done, std::uint64_t total, std::int64_t t0);
void clear_progress();

template <Backend B>
void produce(B& backend, Harness& h, std::uint32_t producer, std::int64_t t0, bool paced,
             std::latch& ready, std::atomic<std::int64_t>& cpu_out) {
  low_timer_slack();
  // Pinned runs pin producers too, on the CPUs after the consumers' (round-robin): every
  // implementation then sees the same placement, and one producer with one consumer hands off
  // across cores instead of wherever the scheduler happens to put the producer.
  if (h.config.pin) {
    static const std::vector<int> cpus = allowed_cpus();
    pin_near(cpus[(h.config.consumers + producer) % cpus.size()], h.config.pin_to);
  }
  auto handle = backend.producer();
  ready.count_down();
  Pacer pacer;
  pacer.wait_until(t0);
  const std::int64_t cpu0 = thread_cpu_ns();
  const auto& ids = h.plan.per_producer[producer];
  for (const std::uint32_t id : ids) {
    if (paced) pacer.wait_until(t0 + h.plan.intended[id]);
    h.enqueued[id] = now_ns();
    backend.push(handle, id);
  }
  cpu_out.fetch_add(thread_cpu_ns() - cpu0, std::memory_order_relaxed);  // read after join
}

template <Backend B>
Timeline drive(B& backend, Harness& h, std::string_view label) {
  const RunConfig& cfg = h.config;
  const Plan& plan = h.plan;
  const std::uint64_t expected = plan.size() * backend.copies();  // handler calls
  const bool batch = cfg.kind == RunKind::kBatch;
  const bool paced = cfg.open_loop();
  const std::size_t producers = plan.per_producer.size();
  Timeline tl;
  std::atomic<std::int64_t> producers_cpu{0};
  const std::int64_t main_cpu0 = thread_cpu_ns();
  tl.rss_start_kb = current_rss_kb();
  tl.cpu_start = process_cpu_ns();

  if (!batch) backend.start_consumers();
  std::latch ready(static_cast<std::ptrdiff_t>(producers) + 1);
  std::vector<std::thread> threads;
  // A start a little in the future: every producer is ready and asleep by then.
  const std::int64_t start = now_ns() + 2'000'000;
  for (std::size_t p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      produce(backend, h, static_cast<std::uint32_t>(p), start, paced, ready, producers_cpu);
    });
  }
  ready.arrive_and_wait();
  tl.t0 = start;
  if (batch) {
    for (auto& t : threads) t.join();
    threads.clear();
    tl.t0 = now_ns();
    backend.start_consumers();
  }

  // Wait for every event, with a stall limit so that a lost event ends the run instead of hanging.
  std::int64_t max_gap = 0;
  for (std::size_t i = 1; i < plan.size(); ++i) {
    max_gap = std::max(max_gap, plan.intended[i] - plan.intended[i - 1]);
  }
  const std::int64_t max_work = plan.size() == 0 ? 0 : *std::ranges::max_element(plan.work);
  const std::int64_t stall_limit = 10'000'000'000 + 10 * max_work + max_gap;
  std::uint64_t last = 0;
  std::int64_t last_progress = now_ns();
  std::int64_t last_print = 0;
  for (;;) {
    const std::uint64_t done = h.handled();
    const std::int64_t now = now_ns();
    if (done >= expected) break;
    if (done != last) {
      last = done;
      last_progress = now;
    } else if (now - last_progress > stall_limit) {
      tl.stalled = true;
      break;
    }
    if (now - last_print > 250'000'000) {
      progress(label, done, expected, tl.t0);
      last_print = now;
    }
    sleep_ns(2'000'000);
  }
  if (cfg.kind == RunKind::kIdle) {
    // Let every consumer finish spinning and settle, then measure what idling costs.
    sleep_ns(200'000'000);
    const std::int64_t a = process_cpu_ns();
    const std::int64_t w0 = now_ns();
    sleep_ns(cfg.idle_window_ns);
    tl.idle_window = now_ns() - w0;
    tl.idle_cpu = process_cpu_ns() - a;
  }
  for (auto& t : threads) t.join();
  backend.close_and_join();
  tl.cpu_end = process_cpu_ns();
  tl.peak_rss_kb = peak_rss_kb();
  tl.producers_cpu = producers_cpu.load(std::memory_order_relaxed);
  tl.main_cpu = thread_cpu_ns() - main_cpu0;
  clear_progress();
  return tl;
}

// Graham's bound is checked for work-conserving dispatchers only (a backend says otherwise with
// kWorkConserving = false).
template <Backend B>
constexpr bool work_conserving() {
  if constexpr (requires { B::kWorkConserving; }) {
    return B::kWorkConserving;
  } else {
    return true;
  }
}

// A whole run of backend B, constructed from the harness and `args`.
template <Backend B, class... Args>
RunResult run_with(const RunRequest& run, Args&&... args) {
  Harness h(run.config, run.plan);
  B backend(h, std::forward<Args>(args)...);
  const Timeline tl = drive(backend, h, run.label);
  return analyse(h, tl, info(run.impl).name, run.rep,
                 {backend.pool_handled(), backend.copies(), work_conserving<B>()});
}

}  // namespace pushstage::bench
