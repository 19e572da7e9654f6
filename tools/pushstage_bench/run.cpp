// run.cpp: see run.hpp. The timed path is produce() and Harness::handle(); everything else runs
// before the start or after the join.
#include "run.hpp"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <latch>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "harness/clocks.hpp"
#include "harness/work.hpp"
#include "peers.hpp"
#include "pushstage/broadcast_dispatcher.hpp"
#include "pushstage/consumer_pool.hpp"
#include "pushstage/cpus.hpp"
#include "pushstage/detail/cache_line.hpp"
#include "pushstage/dispatcher.hpp"
#include "pushstage/keyed_dispatcher.hpp"
#include "pushstage/partition_dispatcher.hpp"
#include "pushstage/stage.hpp"
#include "results_json.hpp"

namespace pushstage::bench {

namespace {

using Clock = std::chrono::steady_clock;

constexpr ImplInfo kImpls[] = {
    {Impl::kPushstage, "pushstage", "pushstage",
     "pushstage Dispatcher + ConsumerPool, FIFO wake (the subject)"},
    {Impl::kPushstageLifo, "pushstage-lifo", "ps-lifo",
     "pushstage Dispatcher + ConsumerPool, LIFO wake"},
    {Impl::kBlocking, "moodycamel-blocking", "mc-blocking",
     "moodycamel BlockingConcurrentQueue, with tokens"},
    {Impl::kMutex, "mutex", "mutex+cv", "std::mutex + std::condition_variable + std::deque"},
    {Impl::kTbb, "tbb", "tbb-bounded", "oneTBB concurrent_bounded_queue (unbounded)"},
    {Impl::kSpin, "moodycamel-spin", "mc-spin",
     "raw moodycamel ConcurrentQueue, consumers spin (burns a core each)"},
    {Impl::kBlockingNoToken, "moodycamel-notoken", "mc-notoken",
     "BlockingConcurrentQueue, consumers without ConsumerToken (can starve producers)"},
    {Impl::kPipeline2, "pushstage-pipeline2", "ps-pipe2",
     "pushstage 2-stage pipeline: Stage (pass-through) -> bounded Dispatcher -> ConsumerPool"},
    {Impl::kPipeline3, "pushstage-pipeline3", "ps-pipe3",
     "pushstage 3-stage pipeline: two pass-through Stages, then the ConsumerPool"},
    {Impl::kPartition, "pushstage-partition", "ps-partition",
     "pushstage PartitionDispatcher: one partition per consumer, chosen by event id"},
    {Impl::kKeyed, "pushstage-keyed", "ps-keyed",
     "pushstage KeyedDispatcher: 64 slots by event id, any idle consumer takes a ready slot"},
    {Impl::kBroadcast, "pushstage-broadcast", "ps-broadcast",
     "pushstage BroadcastDispatcher: every consumer handles every event (1024 per subscriber)"},
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

// ---- per-consumer recording ----

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
  const auto start = Clock::now();
  f();
  const auto spent = Clock::now() - start;
  log.busy_ns.store(
      log.busy_ns.load(std::memory_order_relaxed) + static_cast<std::uint64_t>(spent.count()),
      std::memory_order_relaxed);
}

// ---- implementations behind one shape: start_consumers, producer, push, close_and_join ----

class PushstageBackend {
 public:
  using Producer = Dispatcher<std::uint32_t>::Producer;
  PushstageBackend(Harness& h, WakeOrder order) : h_(h), d_(options(order)) {}
  void start_consumers() {
    PoolOptions po;
    po.consumers = h_.config.consumers;
    po.pin = h_.config.pin;
    po.max_demand = h_.config.max_demand;
    pool_.emplace(d_, std::move(po), [this](std::uint32_t& id) {
      thread_local ConsumerLog* log = nullptr;
      if (log == nullptr) log = &h_.claim();
      h_.handle(*log, id);
    });
  }
  Producer producer() { return d_.producer(); }
  static void push(Producer& p, std::uint32_t id) { (void)p.push(id); }
  void close_and_join() {
    d_.close();
    pool_->join();
  }
  // What the pool itself counted, to cross-check the harness.
  std::optional<std::uint64_t> pool_handled() const {
    std::uint64_t n = 0;
    for (const ConsumerStats& s : pool_->stats()) n += s.handled;
    return n;
  }
  // Handler calls per event.
  static std::size_t copies() { return 1; }

 private:
  static DispatcherOptions options(WakeOrder order) {
    DispatcherOptions o;
    o.wake_order = order;
    return o;
  }
  Harness& h_;
  Dispatcher<std::uint32_t> d_;
  std::optional<ConsumerPool<std::uint32_t>> pool_;
};

// A peer queue with a consumer loop shaped like ConsumerPool::run: pinned, pop one (waiting),
// take up to max_demand - 1 more without waiting, handle them with busy-time bookkeeping.
template <template <class> class Q>
class PeerBackend {
 public:
  using Queue = Q<std::uint32_t>;
  using Producer = typename Queue::Producer;
  explicit PeerBackend(Harness& h) : h_(h) {
    PoolOptions po;
    po.consumers = h.config.consumers;
    po.pin = h.config.pin;
    cpus_ = detail::plan_consumer_cpus(po);  // the CPUs ConsumerPool would use
  }
  void start_consumers() {
    for (std::size_t i = 0; i < cpus_.size(); ++i) threads_.emplace_back([this, i] { run(i); });
  }
  Producer producer() { return q_.producer(); }
  void push(Producer& p, std::uint32_t id) { q_.push(p, id); }
  void close_and_join() {
    q_.close(threads_.size());
    for (auto& t : threads_) t.join();
  }
  // The loop is ours: no independent count to compare with.
  std::optional<std::uint64_t> pool_handled() const { return std::nullopt; }
  static std::size_t copies() { return 1; }

 private:
  void run(std::size_t index) {
    if (cpus_[index] >= 0) pin_this_thread(cpus_[index]);
    auto consumer = q_.consumer();
    ConsumerLog* log = nullptr;
    const std::size_t max_demand = h_.config.max_demand;
    std::vector<std::uint32_t> batch;
    batch.reserve(max_demand);
    std::uint32_t id = 0;
    while (q_.pop(consumer, id)) {
      if (log == nullptr) log = &h_.claim();
      batch.clear();
      batch.push_back(id);
      while (batch.size() < max_demand && q_.try_pop(consumer, id)) batch.push_back(id);
      for (const std::uint32_t e : batch) timed_call(*log, [&] { h_.handle(*log, e); });
    }
  }

  Harness& h_;
  Queue q_;
  std::vector<int> cpus_;
  std::vector<std::thread> threads_;
};

// ---- pushstage's other shapes: pipelines and dispatch modes, the same harness handler ----

// The consumer pool every shape ends in: the harness handler on config.consumers consumers.
PoolOptions harness_pool_options(const Harness& h) {
  PoolOptions po;
  po.consumers = h.config.consumers;
  po.pin = h.config.pin;
  po.max_demand = h.config.max_demand;
  return po;
}
std::function<void(std::uint32_t&)> harness_handler(Harness& h) {
  return [&h](std::uint32_t& id) {
    thread_local ConsumerLog* log = nullptr;
    if (log == nullptr) log = &h.claim();
    h.handle(*log, id);
  };
}
std::uint64_t handled_by(const std::vector<ConsumerStats>& stats) {
  std::uint64_t n = 0;
  for (const ConsumerStats& s : stats) n += s.handled;
  return n;
}

// head -> (stages - 1) pass-through Stages, one unpinned consumer each, bounded (1024, Block)
// dispatchers in between -> the harness pool. Dispatch latency covers every hop.
class PipelineBackend {
 public:
  using Producer = Dispatcher<std::uint32_t>::Producer;
  PipelineBackend(Harness& h, int stages) : h_(h) {
    DispatcherOptions bounded;
    bounded.capacity = 1024;
    for (int i = 1; i < stages; ++i) {
      mids_.push_back(std::make_unique<Dispatcher<std::uint32_t>>(bounded));
    }
  }
  void start_consumers() {
    PoolOptions pass;
    pass.consumers = 1;
    pass.pin = false;
    Dispatcher<std::uint32_t>* from = &head_;
    for (auto& to : mids_) {
      stages_.push_back(std::make_unique<Stage<std::uint32_t, Dispatcher<std::uint32_t>>>(
          *from, *to, pass, [](std::uint32_t& id, Producer& out) { (void)out.push(id); }));
      from = to.get();
    }
    pool_.emplace(*from, harness_pool_options(h_), harness_handler(h_));
  }
  Producer producer() { return head_.producer(); }
  static void push(Producer& p, std::uint32_t id) { (void)p.push(id); }
  void close_and_join() {
    head_.close();  // each stage closes the next once drained
    pool_->join();
  }
  std::optional<std::uint64_t> pool_handled() const { return handled_by(pool_->stats()); }
  static std::size_t copies() { return 1; }

 private:
  Harness& h_;
  Dispatcher<std::uint32_t> head_;
  std::vector<std::unique_ptr<Dispatcher<std::uint32_t>>> mids_;
  std::vector<std::unique_ptr<Stage<std::uint32_t, Dispatcher<std::uint32_t>>>> stages_;
  std::optional<ConsumerPool<std::uint32_t>> pool_;
};

// Partitions, keyed slots or broadcast subscribers in front of the harness pool.
template <class Source>
class ModeBackend {
 public:
  using Producer = typename Source::Producer;
  template <class... Args>
  explicit ModeBackend(Harness& h, Args&&... args) : h_(h), source_(std::forward<Args>(args)...) {}
  void start_consumers() { pool_.emplace(source_, harness_pool_options(h_), harness_handler(h_)); }
  Producer producer() { return source_.producer(); }
  static void push(Producer& p, std::uint32_t id) { (void)p.push(id); }
  void close_and_join() {
    source_.close();
    pool_->join();
  }
  std::optional<std::uint64_t> pool_handled() const { return handled_by(pool_->stats()); }
  std::size_t copies() const {
    if constexpr (std::is_same_v<Source, BroadcastDispatcher<std::uint32_t>>) {
      return h_.config.consumers;
    } else {
      return 1;
    }
  }
  // A partition's backlog waits for its own consumer while another may idle: Graham's bound for
  // work-conserving list scheduling does not apply to it.
  static constexpr bool kWorkConserving =
      !std::is_same_v<Source, PartitionDispatcher<std::uint32_t>>;

 private:
  Harness& h_;
  Source source_;
  std::optional<ConsumerPool<std::uint32_t>> pool_;
};

std::size_t by_id(const std::uint32_t& id) { return id; }

// ---- progress ----

std::int64_t g_program_start_ns = now_ns();

void progress(std::string_view label, std::uint64_t done, std::uint64_t total, std::int64_t t0) {
  static const bool tty = isatty(STDERR_FILENO) == 1;
  if (!tty || now_ns() - g_program_start_ns < 2'000'000'000) return;
  std::fprintf(stderr, "\r\033[K%.*s: %" PRIu64 "/%" PRIu64 " events, %.1f s",
               static_cast<int>(label.size()), label.data(), done, total,
               static_cast<double>(now_ns() - t0) / 1e9);
  std::fflush(stderr);
}

void clear_progress() {
  static const bool tty = isatty(STDERR_FILENO) == 1;
  if (tty) std::fputs("\r\033[K", stderr);
}

// ---- the run ----

struct Timeline {
  std::int64_t t0 = 0;  // producers start (stream, idle) or consumers start (batch)
  std::int64_t cpu_start = 0;
  std::int64_t rss_start_kb = 0;
  std::int64_t cpu_end = 0;
  std::int64_t peak_rss_kb = 0;
  std::int64_t producers_cpu = 0;
  std::int64_t main_cpu = 0;
  std::int64_t idle_cpu = 0;
  std::int64_t idle_window = 0;
  bool stalled = false;
};

template <class Backend>
void produce(Backend& backend, Harness& h, std::uint32_t producer, std::int64_t t0, bool paced,
             std::latch& ready, std::atomic<std::int64_t>& cpu_out) {
  low_timer_slack();
  // Pinned runs pin producers too, on the CPUs after the consumers' (round-robin): every
  // implementation then sees the same placement, and one producer with one consumer hands off
  // across cores instead of wherever the scheduler happens to put the producer.
  if (h.config.pin) {
    static const std::vector<int> cpus = allowed_cpus();
    pin_this_thread(cpus[(h.config.consumers + producer) % cpus.size()]);
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

template <class Backend>
Timeline drive(Backend& backend, Harness& h, std::string_view label) {
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

std::string ms(std::int64_t ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%+.3f ms", static_cast<double>(ns) / 1e6);
  return buf;
}

// copies: handler calls per event (the number of subscribers for a broadcast, else 1). With copies
// > 1 each consumer must handle each event exactly once, dispatch latency counts every delivery,
// and there is no ideal FIFO replay (excess stays empty). work_conserving: false skips the batch
// check against Graham's bound (the makespan is still reported).
RunResult analyse(const Harness& h, const Timeline& tl, std::string_view impl, std::size_t rep,
                  std::optional<std::uint64_t> pool_handled, std::size_t copies,
                  bool work_conserving) {
  const RunConfig& cfg = h.config;
  const Plan& plan = h.plan;
  const std::size_t n = plan.size();
  const std::size_t consumers = cfg.consumers;
  const bool batch = cfg.kind == RunKind::kBatch;
  const bool open_loop = cfg.open_loop();

  RunResult r;
  r.impl = std::string(impl);
  r.rep = rep;
  r.events = n;
  r.cpu_ns = tl.cpu_end - tl.cpu_start;
  r.cpu_consumers_ns = r.cpu_ns - tl.producers_cpu - tl.main_cpu;
  r.peak_rss_kb = tl.peak_rss_kb;
  r.rss_growth_kb = std::max<std::int64_t>(0, tl.peak_rss_kb - tl.rss_start_kb);
  if (cfg.kind == RunKind::kIdle) {
    r.cpu_ns = tl.idle_cpu;  // idle runs report the idle window only
    r.cpu_consumers_ns = tl.idle_cpu;
    r.idle_window_ns = tl.idle_window;
  }

  // Per event id, its first handling (a duplicate is caught by count_deliveries below).
  std::vector<std::uint8_t> seen(n, 0);
  std::vector<std::int64_t> start(n, 0);
  std::vector<std::int64_t> end(n, 0);
  std::vector<std::uint32_t> by(n, 0);
  std::vector<std::uint32_t> handled_ids;
  handled_ids.reserve(n);
  std::uint64_t overflow = 0;
  std::uint64_t bogus = 0;
  std::vector<pushstage::Histogram> dispatch(consumers);
  std::vector<pushstage::Histogram> response(consumers);
  r.consumer_events.assign(consumers, 0);
  r.consumer_busy_ns.assign(consumers, 0);
  Deliveries deliveries;          // copies > 1: summed over consumers
  std::int64_t last_end_all = 0;  // over every delivery
  for (std::size_t c = 0; c < consumers; ++c) {
    const ConsumerLog& log = h.logs[c];
    overflow += log.overflow;
    bogus += log.bogus;
    r.handled += log.n + log.overflow + log.bogus;
    r.consumer_events[c] = log.n;
    if (copies > 1) handled_ids.clear();
    for (std::size_t k = 0; k < log.n; ++k) {
      const Record& rec = log.records[k];
      handled_ids.push_back(rec.id);
      r.consumer_busy_ns[c] += rec.end - rec.start;
      last_end_all = std::max(last_end_all, rec.end);
      const bool first = seen[rec.id] == 0;
      if (first) {
        seen[rec.id] = 1;
        start[rec.id] = rec.start;
        end[rec.id] = rec.end;
        by[rec.id] = static_cast<std::uint32_t>(c);
      } else if (copies == 1) {
        continue;  // a duplicate: count_deliveries reports it
      }
      dispatch[c].record(
          static_cast<std::uint64_t>(std::max<std::int64_t>(0, rec.start - h.enqueued[rec.id])));
      if (open_loop) {
        response[c].record(static_cast<std::uint64_t>(
            std::max<std::int64_t>(0, rec.start - (tl.t0 + plan.intended[rec.id]))));
      }
    }
    if (copies > 1) {
      // Each consumer (subscriber) handles each event exactly once.
      const Deliveries d = count_deliveries(handled_ids, n);
      if (d.missing != 0 && deliveries.missing == 0) deliveries.first_missing = d.first_missing;
      deliveries.missing += d.missing;
      deliveries.duplicated += d.duplicated;
      deliveries.unknown += d.unknown;
    }
  }
  for (std::size_t c = 0; c < consumers; ++c) {
    r.dispatch.merge(dispatch[c]);
    r.response.merge(response[c]);
  }
  // Exactly once (per consumer when copies > 1). Records that did not fit (overflow) can only be
  // extra handlings; ids outside the plan were rejected before recording.
  if (copies == 1) deliveries = count_deliveries(handled_ids, n);
  r.missing = deliveries.missing;
  r.duplicated = deliveries.duplicated + overflow;
  bogus += deliveries.unknown;
  std::string failure;
  if (r.missing != 0) {
    failure += "lost " + std::to_string(r.missing) + " of " + std::to_string(n * copies) +
               (copies > 1 ? " deliveries" : " events") + " (first: event " +
               std::to_string(deliveries.first_missing) + " from producer " +
               std::to_string(plan.producer[deliveries.first_missing]) + ")";
    if (tl.stalled) failure += " - no progress for the stall limit";
  }
  if (r.duplicated != 0) {
    failure += (failure.empty() ? "" : "; ") + std::string("handled ") +
               std::to_string(r.duplicated) + " events more than once";
  }
  if (bogus != 0) {
    failure += (failure.empty() ? "" : "; ") + std::to_string(bogus) + " events with unknown ids";
  }
  if (pool_handled && *pool_handled != r.handled) {
    failure += (failure.empty() ? "" : "; ") + std::string("the consumers counted ") +
               std::to_string(*pool_handled) + " handler calls, the harness " +
               std::to_string(r.handled);
  }

  // Everything below uses the events handled (once); with failures it still describes them.
  std::vector<std::size_t> ids;
  ids.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (seen[i] != 0) ids.push_back(i);
  }
  std::vector<std::int64_t> arrival(ids.size());
  std::vector<std::int64_t> service(ids.size());
  std::vector<std::int64_t> enq(ids.size());
  std::vector<std::int64_t> st(ids.size());
  std::vector<std::uint32_t> prod(ids.size());
  std::int64_t first_enqueue = std::numeric_limits<std::int64_t>::max();
  std::int64_t last_end = tl.t0;
  r.dispatch_by_producer.assign(plan.per_producer.size(), pushstage::Histogram());
  for (std::size_t k = 0; k < ids.size(); ++k) {
    const std::size_t i = ids[k];
    enq[k] = h.enqueued[i];
    st[k] = start[i];
    prod[k] = plan.producer[i];
    service[k] = end[i] - start[i];
    // Batch: everything was available when the consumers started.
    arrival[k] = batch ? 0 : enq[k] - tl.t0;
    first_enqueue = std::min(first_enqueue, enq[k]);
    last_end = std::max(last_end, end[i]);
    const std::int64_t wait = start[i] - enq[k];
    r.dispatch_by_producer[prod[k]].record(
        static_cast<std::uint64_t>(std::max<std::int64_t>(0, wait)));
    if (wait > r.longest_wait_ns) {
      r.longest_wait_ns = wait;
      r.longest_wait_producer = prod[k];
    }
  }
  if (!ids.empty()) {
    if (copies > 1) last_end = std::max(last_end, last_end_all);  // the last copy handled
    r.span_ns = last_end - (batch ? tl.t0 : first_enqueue);
    r.throughput =
        r.span_ns > 0 ? static_cast<double>(ids.size()) * 1e9 / static_cast<double>(r.span_ns) : 0;
    if (copies == 1) {  // the ideal FIFO schedule hands each event to one consumer
      const std::vector<std::int64_t> ideal = ideal_fifo_starts(arrival, service, consumers);
      for (std::size_t k = 0; k < ids.size(); ++k) {
        const std::int64_t excess = (st[k] - tl.t0) - ideal[k];
        if (excess < 0) ++r.excess_negative;
        r.excess.record(static_cast<std::uint64_t>(std::max<std::int64_t>(0, excess)));
      }
      r.fifo_inversions = fifo_inversions(enq, st, prod);
    }
  }
  if (batch && !ids.empty() && copies == 1 && work_conserving) {
    r.makespan_ns = last_end - tl.t0;
    r.graham_bound_ns = graham_bound(service, consumers);
    if (!within_graham_bound(static_cast<double>(r.makespan_ns), r.graham_bound_ns,
                             cfg.graham_relative, static_cast<double>(cfg.graham_absolute_ns))) {
      char buf[200];
      std::snprintf(buf, sizeof buf,
                    "makespan %.3f ms exceeds Graham's bound %.3f ms by more than %.0f%% + %.1f ms",
                    static_cast<double>(r.makespan_ns) / 1e6, r.graham_bound_ns / 1e6,
                    cfg.graham_relative * 100, static_cast<double>(cfg.graham_absolute_ns) / 1e6);
      failure += (failure.empty() ? "" : "; ") + std::string(buf);
    }
  }
  if (!failure.empty()) {
    r.ok = false;
    r.failure = failure;
  }

  if (cfg.trace) {
    std::vector<std::size_t> order = ids;
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return start[a] < start[b]; });
    for (const std::size_t i : order) {
      std::printf(
          "[%.*s rep %zu] consumer %u received event %zu from producer %u at %s "
          "(enqueued %s), finished at %s\n",
          static_cast<int>(impl.size()), impl.data(), rep + 1, by[i], i, plan.producer[i],
          ms(start[i] - tl.t0).c_str(), ms(h.enqueued[i] - tl.t0).c_str(),
          ms(end[i] - tl.t0).c_str());
    }
    std::fflush(stdout);
  }
  return r;
}

// Graham's bound is checked for work-conserving dispatchers only (a Backend says otherwise with
// kWorkConserving = false).
template <class Backend>
constexpr bool work_conserving() {
  if constexpr (requires { Backend::kWorkConserving; }) {
    return Backend::kWorkConserving;
  } else {
    return true;
  }
}

template <class Backend, class... Args>
RunResult run_with(const RunConfig& config, const Plan& plan, Impl impl, std::size_t rep,
                   std::string_view label, Args&&... args) {
  Harness h(config, plan);
  Backend backend(h, std::forward<Args>(args)...);
  const Timeline tl = drive(backend, h, label);
  return analyse(h, tl, info(impl).name, rep, backend.pool_handled(), backend.copies(),
                 work_conserving<Backend>());
}

void write_all(int fd, const std::string& s) {
  std::size_t done = 0;
  while (done < s.size()) {
    const ssize_t w = write(fd, s.data() + done, s.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    done += static_cast<std::size_t>(w);
  }
}

}  // namespace

std::span<const ImplInfo> impls() { return kImpls; }

const ImplInfo& info(Impl impl) {
  for (const ImplInfo& i : kImpls) {
    if (i.impl == impl) return i;
  }
  throw std::logic_error("unknown Impl");
}

RunResult run_once(const RunConfig& config, const Plan& plan, Impl impl, std::size_t rep,
                   std::string_view progress_label) {
  switch (impl) {
    case Impl::kPushstage:
      return run_with<PushstageBackend>(config, plan, impl, rep, progress_label, WakeOrder::Fifo);
    case Impl::kPushstageLifo:
      return run_with<PushstageBackend>(config, plan, impl, rep, progress_label, WakeOrder::Lifo);
    case Impl::kBlocking:
      return run_with<PeerBackend<BlockingQueue>>(config, plan, impl, rep, progress_label);
    case Impl::kMutex:
      return run_with<PeerBackend<MutexQueue>>(config, plan, impl, rep, progress_label);
    case Impl::kTbb:
      return run_with<PeerBackend<TbbQueue>>(config, plan, impl, rep, progress_label);
    case Impl::kSpin:
      return run_with<PeerBackend<SpinningQueue>>(config, plan, impl, rep, progress_label);
    case Impl::kBlockingNoToken:
      return run_with<PeerBackend<BlockingQueueNoToken>>(config, plan, impl, rep, progress_label);
    case Impl::kPipeline2:
      return run_with<PipelineBackend>(config, plan, impl, rep, progress_label, 2);
    case Impl::kPipeline3:
      return run_with<PipelineBackend>(config, plan, impl, rep, progress_label, 3);
    case Impl::kPartition:
      return run_with<ModeBackend<PartitionDispatcher<std::uint32_t>>>(
          config, plan, impl, rep, progress_label, config.consumers,
          PartitionDispatcher<std::uint32_t>::Hash(by_id));
    case Impl::kKeyed:
      return run_with<ModeBackend<KeyedDispatcher<std::uint32_t>>>(
          config, plan, impl, rep, progress_label, std::size_t{64},
          KeyedDispatcher<std::uint32_t>::Hash(by_id));
    case Impl::kBroadcast: {
      // 1024 per subscriber; a batch buffers every event before the consumers start.
      DispatcherOptions per_subscriber;
      per_subscriber.capacity = std::max<std::size_t>(
          1024, config.kind == RunKind::kBatch ? plan.size() : std::size_t{0});
      return run_with<ModeBackend<BroadcastDispatcher<std::uint32_t>>>(
          config, plan, impl, rep, progress_label, config.consumers, per_subscriber);
    }
  }
  throw std::logic_error("unknown Impl");
}

RunResult run_in_child(const RunConfig& config, const Plan& plan, Impl impl, std::size_t rep,
                       std::string_view progress_label) {
  std::fflush(stdout);
  std::fflush(stderr);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    close(fds[0]);
    RunResult r;
    try {
      r = run_once(config, plan, impl, rep, progress_label);
    } catch (const std::exception& e) {
      r.impl = std::string(info(impl).name);
      r.rep = rep;
      r.ok = false;
      r.failure = std::string("the run threw: ") + e.what();
    }
    write_all(fds[1], to_json(r).dump());
    close(fds[1]);
    std::fflush(stdout);
    _exit(0);
  }
  close(fds[1]);
  std::string text;
  char buf[1 << 16];
  for (;;) {
    const ssize_t got = read(fds[0], buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    text.append(buf, static_cast<std::size_t>(got));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  RunResult dead;
  dead.impl = std::string(info(impl).name);
  dead.rep = rep;
  dead.ok = false;
  if (WIFSIGNALED(status)) {
    dead.failure = "the child process died of signal " + std::to_string(WTERMSIG(status)) + " (" +
                   strsignal(WTERMSIG(status)) + ")";
    return dead;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || text.empty()) {
    dead.failure = "the child process exited with status " + std::to_string(WEXITSTATUS(status));
    return dead;
  }
  try {
    return from_json(nlohmann::json::parse(text));
  } catch (const std::exception& e) {
    dead.failure = std::string("unreadable result from the child: ") + e.what();
    return dead;
  }
}

}  // namespace pushstage::bench
