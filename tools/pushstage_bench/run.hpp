// run.hpp: one run of one implementation over one plan: the implementations, a run's
// configuration, what it measured, and run_once(). The parts of a run: backends/ (a backend per
// implementation, every one calling the same handler: harness/harness.hpp), harness/driver.hpp
// (the timed part: consumers, paced producers, the wait, the idle window), harness/analysis.hpp
// (what the records mean, after the join), forked_run.hpp (a run in a child process).
// Threading: run_once() starts and joins its own threads; call it from one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bench_core.hpp"
#include "harness/work.hpp"
#include "pushstage/histogram.hpp"
#include "pushstage/pool/pool_options.hpp"

namespace pushstage::bench {

enum class Impl {
  kPushstage,        // Dispatcher + ConsumerPool, WakeOrder::Fifo (the subject)
  kPushstageLifo,    // the same with WakeOrder::Lifo
  kBlocking,         // moodycamel::BlockingConcurrentQueue with tokens
  kMutex,            // std::mutex + std::condition_variable + std::deque
  kTbb,              // oneTBB concurrent_bounded_queue
  kSpin,             // raw moodycamel ConcurrentQueue, consumers spin
  kBlockingNoToken,  // BlockingConcurrentQueue, consumers without a ConsumerToken
  kPipeline2,        // Dispatcher -> Stage (pass-through) -> Dispatcher -> ConsumerPool
  kPipeline3,        // the same with two pass-through stages
  kPartition,        // PartitionDispatcher, one partition per consumer (event id picks it)
  kKeyed,            // KeyedDispatcher, 64 slots (event id picks the slot)
  kBroadcast,        // BroadcastDispatcher: every consumer handles every event
  kPipelineFront,    // kPushstage's Dispatcher and consumers, declared as a Pipeline (Message, ack)
  kPushstageFastPush,  // kPushstage with DispatcherOptions::fast_push
};

struct ImplInfo {
  Impl impl;
  std::string_view name;    // --impl value and JSON key
  std::string_view column;  // short table heading
  std::string_view what;    // one line for --help
};
// Every implementation; the first is the subject all ratios refer to.
[[nodiscard]] std::span<const ImplInfo> impls();
[[nodiscard]] const ImplInfo& info(Impl impl);

enum class RunKind {
  kStream,  // arrivals follow the plan (open loop) or come as fast as possible (closed loop)
  kBatch,   // every event is buffered before the consumers start: makespan vs Graham's bound
  kIdle,    // a handful of events, then nothing: CPU burnt by idle consumers
};

struct RunConfig {
  RunKind kind = RunKind::kStream;
  PlanSpec plan;  // plan.seed is the first repetition's; repetition r uses seed + r
  WorkMode work_mode = WorkMode::kSleep;
  std::size_t consumers = 1;
  std::size_t max_demand = 1;
  bool pin = true;
  PinTo pin_to = PinTo::Cpu;  // with pin: each thread's CPU, or its CPU's cache domain
  std::int64_t idle_window_ns = 1'000'000'000;  // kIdle: how long CPU use is measured
  double graham_relative = 0.05;                // kBatch check: makespan <= bound * (1 + rel)
  std::int64_t graham_absolute_ns = 2'000'000;  //   + abs (thread start-up, wake-ups)
  bool trace = false;

  // Arrivals follow the plan's intended times (else: as fast as possible, or all at t0).
  [[nodiscard]] bool open_loop() const { return kind == RunKind::kStream && plan.rate > 0; }
};

// What one run measured. Times in ns.
struct RunResult {
  std::string impl;
  std::size_t rep = 0;
  // Checks.
  bool ok = true;
  std::string failure;  // set when !ok: lost or duplicated events, bound violated, child died
  std::uint64_t events = 0;
  std::uint64_t handled = 0;  // handler calls seen (duplicates included)
  std::uint64_t missing = 0;
  std::uint64_t duplicated = 0;
  // Time.
  std::int64_t span_ns = 0;       // first enqueue to last handler end
  double throughput = 0;          // events / span
  pushstage::Histogram dispatch;  // start - enqueue, merged from per-consumer histograms
  pushstage::Histogram response;  // start - intended (open loop only)
  pushstage::Histogram excess;    // start - ideal FIFO start, negatives counted as 0
  std::uint64_t excess_negative = 0;
  std::vector<pushstage::Histogram> dispatch_by_producer;
  std::vector<std::uint64_t> consumer_events;
  std::vector<std::int64_t> consumer_busy_ns;
  std::uint64_t fifo_inversions = 0;
  std::int64_t longest_wait_ns = 0;
  std::uint32_t longest_wait_producer = 0;
  std::int64_t makespan_ns = 0;  // kBatch
  double graham_bound_ns = 0;    // kBatch
  // Cost.
  std::int64_t cpu_ns = 0;            // the whole process during the run (getrusage)
  std::int64_t cpu_consumers_ns = 0;  // minus the producer threads and the main thread
  std::int64_t peak_rss_kb = 0;
  std::int64_t rss_growth_kb = 0;   // peak minus resident size when the run started
  std::int64_t idle_window_ns = 0;  // kIdle
};

// Runs `impl` over `plan` in this process. Never throws for lost events: they make !ok.
[[nodiscard]] RunResult run_once(const RunConfig& config, const Plan& plan, Impl impl,
                                 std::size_t rep, std::string_view progress_label);

}  // namespace pushstage::bench
