// pushstage/pool/pool_core.hpp: the consumer threads behind ConsumerPool and Stage: how they
// take events from their source (demand), call the handler, and finish when the source drains.
// ConsumerPool<T> is PoolCore<T, NoOutput>; Stage<In, Sink> is PoolCore<In, Sink::Producer>,
// whose handlers also get the consumer's own producer handle of the sink.
//
// Threading: the constructor starts the threads; the public members are safe from any thread.
//
// Each consumer thread, over its source handle (the one Dispatcher, its partition or subscriber,
// or the ready slots of a KeyedDispatcher):
//   take:   wait in the source for at least one event and take up to max_demand without waiting
//           more (a keyed source: up to max_demand events of one ready slot, held until they are
//           handled). The wait is interruptible: the pool interrupts it (Interrupter) to retire
//           or stop the consumer, so an idle consumer costs no wakeups. max_demand 1 takes one
//           event per round and holds nothing.
//   handle: in chunks of at most max_demand - min_demand events, in the order taken; a throw is
//           retried on the same thread after a sleep (RetryPolicy), so order is kept; an event
//           that still fails or is past its deadline goes to the dead letter; optional hooks
//           see each chunk before and after (Callbacks::prepare, chunk_done: Pipeline's);
//   rate:   with a RateLimiter, each handler call first takes its grants (a chunk shrinks to
//           what the current window grants; the rest waits for the next round); a retry takes
//           them again, after its backoff (waiting for a window if need be);
//   top up: when what it holds falls to min_demand, take up to max_demand again, without waiting.
//   pause:  pause() sets paused_ (seq_cst); a consumer checks it (acquire) before it takes events
//           and again after every take and before every chunk, so nothing it took after pause()
//           reaches the handler; seeing it set, it sleeps on signal_ until resume() (see
//           core/signal.hpp: resume's store is its (N1)). Events it already holds stay held,
//           unhandled; events not taken stay in the source. An event pushed after pause() returned
//           is taken through the source's release/acquire pair, so the check after the take sees
//           the pause (paused_ is read acquire after the pop's acquire).
//   manual: DemandMode::Manual: credits_ counts demand granted by ask(n) and not yet used, and
//           each consumer's own credits the demand granted to it alone by ask_consumer(i, n). A
//           consumer takes credits only once its source has an event for them: it waits in the
//           source until one is buffered (wait_ready, interruptible), then takes up to max_demand
//           credits, its own first (CAS, relaxed: a count that publishes nothing), takes that many
//           events without waiting and gives back what it did not use (its own credits first, so
//           demand aimed at it stays with it). So no consumer holds demand while it waits, and
//           shared demand reaches whichever partition or subscriber has events. Without credits it
//           waits on its source's notice (Dispatcher::wait_until; A3: credits_ > 0, its own
//           credits > 0, unlimited_, retiring, or the source drained, all seq_cst); ask(),
//           ask_consumer(), a give-back, resize() and lift_limits() notify every source handle (N1
//           their seq_cst writes), and the source notifies when it closes or drains.
//   retire: resize() to fewer consumers and the destructor set retire flags, notify, and interrupt
//           each retiring consumer's wait: (PR2) retire = true, then read interruptible; (PR1) the
//           consumer sets interruptible once its Interrupter is published, then reads retire
//           before every take; all seq_cst, Dekker's pair: either the retirer interrupts the wait
//           or the consumer sees the flag. Such a consumer handles what it holds, takes no more
//           and ends.
//   finish: when the source is drained and it holds nothing, the thread ends. The pool calls
//           on_finished once (Stage: leaves its sink, closing it if it was the last upstream):
//           after the last thread ended with the source drained, or at destruction.
//           live_ counts running threads (PF1).
//   observe: with PoolOptions::observer, each handler call, retry, dead letter, pause, resume,
//           resize and the drain is reported (observe/observer.hpp); handle_one() and
//           handle_batch() test for an observer once per call and run the loop compiled with or
//           without the reports. The pool joins the Topology when built, leaves when destroyed.
// Ordering and memory (the pool's own atomics; the source's are described in demand.hpp):
//   (PF1) a thread that ends: drained_ = true (if it saw the drain), then live_ -= 1 (acq_rel).
//        The thread whose RMW takes live_ to 0 reads drained_ (acquire): every earlier ending
//        thread's store is in the release sequence of live_, so it sees a drain if any thread saw
//        one. Then on_finished runs after every handler call of every thread returned (their RMWs
//        on live_ come after their last handler call); finished_ (exchange, acq_rel) makes sure
//        it runs once, also against the destructor.
//   Counters in State are written by their own thread only and read relaxed (statistics).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "pushstage/core/cache_line.hpp"
#include "pushstage/core/signal.hpp"
#include "pushstage/observe/listing.hpp"
#include "pushstage/pool/pool_options.hpp"
#include "pushstage/pool/rate_limiter.hpp"
#include "pushstage/pool/source_ref.hpp"
#include "pushstage/source.hpp"

namespace pushstage::detail {

// What a pool's options resolve to (validated; std::invalid_argument names the field and range).
struct PoolPlan {
  std::vector<int> pin_cpus;  // empty: not pinned
  bool named_cpus = false;    // pin_cpus are PoolOptions::cpus, used round-robin by consumer index;
                              // else allowed_cpus(), each consumer taking the least loaded one
  std::size_t min_demand = 0;
  PinTo pin_to = PinTo::Cpu;
};
// prefix: where the user set these options (a Batcher's: "BatcherOptions::processors.").
PoolPlan plan_pool(const PoolOptions& options, std::string_view prefix = "PoolOptions::");
// Pins the calling thread, consumer `index` of a pool, to its CPU as `plan` says (the rule: see
// PoolOptions::pin) and counts it there, process-wide, so that other consumers go elsewhere.
// Returns the CPU, or -1 (nothing counted) when the plan does not pin or the kernel refuses.
int take_cpu(const PoolPlan& plan, std::size_t index) noexcept;
// Stops counting a consumer on `cpu`, a take_cpu() result (-1: nothing to do). The thread stays
// pinned.
void give_back_cpu(int cpu) noexcept;
// Validates a RetryPolicy (std::invalid_argument naming prefix + the field, and its range); also
// used by pushstage::nats::SourceOptions::set_retry, so one policy fits pools and the broker.
void check_retry(const RetryPolicy& policy, std::string_view prefix);
// The CPUs that options.consumers consumers of a pool started now would take, in the order they
// take them (-1: not pinned), given the consumers this process runs now; takes none. With nothing
// else running: round-robin over PoolOptions::cpus or allowed_cpus(). Validates like plan_pool().
std::vector<int> plan_consumer_cpus(const PoolOptions& options);

// A batch handler for events of type T (with its per-consumer output Out..., if any): a callable
// taking std::span<T> and not T&, so that overloads for one-event and batch handlers never clash.
template <class F, class T, class... Out>
concept BatchCallable =
    std::is_invocable_v<F&, std::span<T>, Out&...> && !std::is_invocable_v<F&, T&, Out&...>;

// The output of a ConsumerPool's handlers: none (a Stage's is its producer handle into the sink).
struct NoOutput {};

template <class T, class Out>
class PoolCore {
  static constexpr bool kNoOutput = std::is_same_v<Out, NoOutput>;
  using Clock = std::chrono::steady_clock;

 public:
  using Handler =
      std::conditional_t<kNoOutput, std::function<void(T&)>, std::function<void(T&, Out&)>>;
  using BatchHandler = std::conditional_t<kNoOutput, std::function<void(std::span<T>)>,
                                          std::function<void(std::span<T>, Out&)>>;

  // Stops the pool: every consumer handles what it holds (a paused pool is resumed for that),
  // takes nothing more and ends; then the destructor joins them. The source is never closed: what
  // the pool did not take stays there, for other consumers, or for the source's on_drop when the
  // source is destroyed. To handle everything first: close the source, then join().
  ~PoolCore() {
    stop();
    join_threads();
    finish_once();
  }
  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;

  // GenStage's accumulate mode. From the moment pause() returns until resume():
  //  - no handler call starts for an event a consumer took after pause() returned (in particular
  //    for any event pushed after pause() returned): each consumer checks for a pause after every
  //    take and before every chunk (an event, with max_demand 1), and holds what it took,
  //    unhandled;
  //  - a chunk that had passed that check before pause() returned completes (its rate-limit wait,
  //    handler calls and retries); it holds only events taken before pause() returned. Handler
  //    calls in progress are never interrupted;
  //  - a consumer that was taking events, or waiting inside the source, when pause() was called
  //    may still take one round (up to max_demand events), which it holds unhandled. All other
  //    events stay buffered in the source (so a bounded source pushes back on its producers).
  // Idempotent; safe from any thread, handlers included. PoolOptions::start_paused: paused before
  // any consumer runs, so none takes an event before resume().
  void pause() noexcept {
    if (paused_.exchange(1, std::memory_order_seq_cst) == 0) report(Telemetry::Paused);  // checks
  }
  // Lets paused consumers go on. Idempotent.
  void resume() noexcept {
    // N1 of signal_: pairs with wait_while_paused.
    const bool was_paused = paused_.exchange(0, std::memory_order_seq_cst) != 0;
    signal_.notify_all();
    if (was_paused) report(Telemetry::Resumed);
  }
  [[nodiscard]] bool paused() const noexcept {
    return paused_.load(std::memory_order_relaxed) != 0;  // a snapshot for display
  }

  // DemandMode::Manual: lets the pool take n more events (GenStage's ask). Safe from any thread,
  // handlers and their completions included. Throws std::logic_error for an Automatic pool.
  void ask(std::size_t n) {
    if (!manual_) {
      throw std::logic_error("ConsumerPool::ask: needs PoolOptions::demand = DemandMode::Manual");
    }
    if (n == 0) return;
    credits_.fetch_add(static_cast<std::int64_t>(n), std::memory_order_seq_cst);  // N1
    source_.notify();
  }
  // DemandMode::Manual, GenStage's ask(subscription, n): lets consumer `consumer` alone take n
  // more events. Over a source with one consumer per partition or subscriber, consumer i is
  // partition or subscriber i; else consumers count in start order (resize() starts new ones at
  // the end). Safe from any thread. Throws std::logic_error for an Automatic pool, and
  // std::out_of_range naming the consumer unless it runs (started and not retired).
  void ask_consumer(std::size_t consumer, std::size_t n) {
    if (!manual_) {
      throw std::logic_error(
          "ConsumerPool::ask_consumer: needs PoolOptions::demand = DemandMode::Manual");
    }
    {
      const std::lock_guard lock(workers_mutex_);
      if (consumer >= workers_.size() ||
          workers_[consumer]->retire.load(std::memory_order_relaxed)) {
        throw std::out_of_range("ConsumerPool::ask_consumer: consumer " + std::to_string(consumer) +
                                " does not run (" + std::to_string(workers_.size()) +
                                " started, retired ones included)");
      }
      if (n == 0) return;
      // N1 of the sources' notice, for that consumer's wait (A3).
      workers_[consumer]->credits.fetch_add(static_cast<std::int64_t>(n),
                                            std::memory_order_seq_cst);
    }
    source_.notify();
  }
  // DemandMode::Manual: demand granted by ask() and ask_consumer() and not yet used by an event (a
  // snapshot; a consumer holds credits only for the moment between taking them and taking its
  // events).
  [[nodiscard]] std::size_t demand() const noexcept {
    std::int64_t c = credits_.load(std::memory_order_relaxed);  // a snapshot for display
    {
      const std::lock_guard lock(workers_mutex_);
      for (const auto& w : workers_) {
        const std::int64_t own = w->credits.load(std::memory_order_relaxed);  // for display
        if (own > 0) c += own;
      }
    }
    return c > 0 ? static_cast<std::size_t>(c) : 0;
  }

  // Waits until the source is closed and drained and every handler call has returned (a paused
  // pool does not drain: join() waits for resume()). Does not close the source itself. Safe to
  // call more than once and from several threads.
  void join() { join_threads(); }

  // Its name in the Topology (PoolOptions::name, or the default).
  [[nodiscard]] const std::string& name() const noexcept { return listing_.name(); }

  // The consumers the pool runs: options.consumers, or the last resize().
  [[nodiscard]] std::size_t size() const noexcept {
    return consumers_.load(std::memory_order_relaxed);  // a count for display only
  }

  // Runs n consumers from now on, n in [1, 65536]: starts new ones, or retires the most recently
  // started. A retiring consumer first handles every event it holds, then takes no more and ends
  // (at once if it was waiting for events; after resume() if paused). Nothing is lost.
  // Throws std::invalid_argument for n out of range, or for a source with one consumer per
  // partition or subscriber.
  void resize(std::size_t n) {
    if (source_.fixed_consumers() != 0) {
      throw std::invalid_argument(
          "ConsumerPool::resize: a pool over a PartitionDispatcher or a BroadcastDispatcher has "
          "exactly one consumer per partition or subscriber");
    }
    if (n < 1 || n > kMaxConsumers) {
      throw std::invalid_argument("ConsumerPool::resize: consumers must be in [1, " +
                                  std::to_string(kMaxConsumers) + "]; got " + std::to_string(n));
    }
    {
      const std::lock_guard lock(workers_mutex_);
      std::vector<Worker*> serving;
      for (const auto& w : workers_) {
        if (!w->retire.load(std::memory_order_relaxed)) serving.push_back(w.get());  // ours
      }
      for (std::size_t i = serving.size(); i < n; ++i) start_worker_locked();
      for (std::size_t i = n; i < serving.size(); ++i) retire_locked(*serving[i]);
      consumers_.store(n, std::memory_order_relaxed);
      source_.notify();  // consumers waiting for manual demand re-check their retire flag
    }
    report(Telemetry::Resized, n);  // unlocked: the observer may capture the Topology
  }

  // Per consumer, in start order. Recent values while the pool runs; exact after join().
  [[nodiscard]] std::vector<ConsumerStats> stats() const {
    const std::lock_guard lock(workers_mutex_);
    std::vector<ConsumerStats> out(workers_.size());
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      const State& s = workers_[i]->state;
      out[i].cpu = s.cpu.load(std::memory_order_relaxed);  // statistics: relaxed throughout
      out[i].handled = s.handled.load(std::memory_order_relaxed);
      out[i].failed = s.failed.load(std::memory_order_relaxed);
      out[i].retried = s.retried.load(std::memory_order_relaxed);
      out[i].expired = s.expired.load(std::memory_order_relaxed);
      out[i].busy = std::chrono::nanoseconds(s.busy_ns.load(std::memory_order_relaxed));
      out[i].active = !s.ended.load(std::memory_order_relaxed);
    }
    return out;
  }

 protected:
  static constexpr std::size_t kMaxConsumers = 65536;

  struct Callbacks {
    const char* owner;  // the public type, as its errors name it: "ConsumerPool", "Stage"
    Handler handler;
    BatchHandler batch_handler;
    std::function<void(T&, const Failure&)> dead_letter;  // may be empty
    std::function<Out()> make_output;   // per consumer thread; unused for NoOutput
    std::function<void()> on_start;     // once valid, before the first thread starts
    std::function<void()> on_finished;  // once, if on_start ran: the pool will take no more
    // Optional, for a front that works on whole chunks (Pipeline): `prepare` sees each chunk
    // before its first handler call, `chunk_done` after its last handler call or dead letter
    // (retries included). Neither may throw (std::terminate). With either set, max_demand 1
    // takes the general path (chunks of one).
    std::function<void(std::span<T>, Out&)> prepare = {};
    std::function<void(std::span<T>, Out&)> chunk_done = {};
    const void* sink = nullptr;  // what its handlers emit into (a Stage's sink), or null
  };

  // Validates everything first (std::invalid_argument: nothing else happens), calls on_start, then
  // starts the threads. If starting one fails (std::system_error), stops the threads already
  // started (each handles what it holds), joins them, calls on_finished and rethrows; the source
  // stays open.
  PoolCore(SourceRef<T> source, PoolOptions options, Callbacks callbacks)
      : source_(std::move(source)),
        plan_(plan_pool(options)),
        max_demand_(options.max_demand),
        manual_(options.demand == DemandMode::Manual),
        chunk_(options.max_demand - plan_.min_demand),
        callbacks_(std::move(callbacks)),
        on_error_(std::move(options.on_error)),
        retry_(options.retry),
        deadline_(options.deadline),
        has_deadline_(options.deadline.count() > 0),
        rate_(options.rate_limit),
        listing_(listing_spec(options)) {
    if (!callbacks_.handler && !callbacks_.batch_handler) {
      throw std::invalid_argument(std::string(callbacks_.owner) + ": handler must not be empty");
    }
    check_source(options);
    consumers_.store(options.consumers, std::memory_order_relaxed);
    // relaxed: no consumer runs yet; the thread starts order it before their first check.
    if (options.start_paused) paused_.store(1, std::memory_order_relaxed);
    if (callbacks_.on_start) callbacks_.on_start();
    started_ = true;
    try {
      for (std::size_t i = 0; i < options.consumers; ++i) {
        const std::lock_guard lock(workers_mutex_);
        start_worker_locked();
      }
    } catch (...) {
      stop();  // else a paused or manual pool's threads could wait for ever
      join_threads();
      finish_once();
      throw;
    }
    listing_.join();
  }

  detail::ListingSpec listing_spec(const PoolOptions& options) {
    detail::ListingSpec spec;
    const bool stage = std::string_view(callbacks_.owner) == "Stage";
    spec.kind = stage ? ComponentKind::Stage : ComponentKind::ConsumerPool;
    spec.name = options.name;
    spec.name_field = "PoolOptions::name";
    spec.observer = options.observer;
    spec.identity = this;
    spec.source = source_.identity();
    spec.sink = callbacks_.sink;
    spec.options = detail::describe(options);
    spec.fill = [this](ComponentSnapshot& s) {
      PoolSnapshot p = detail::sum_consumers(stats());
      p.consumers = size();
      p.paused = paused();
      p.manual = manual_;
      p.demand = demand();
      s.pool = p;
    };
    return spec;
  }

  // Throws std::invalid_argument unless the source takes options.consumers consumers and, for
  // DemandMode::Manual, can wait for readiness (pushstage/source.hpp).
  void check_source(const PoolOptions& options) const {
    const std::size_t fixed = source_.fixed_consumers();
    if (fixed != 0 && options.consumers != fixed) {
      throw std::invalid_argument("PoolOptions::consumers must be " + std::to_string(fixed) +
                                  ", one per " + source_.consumer_role() + "; got " +
                                  std::to_string(options.consumers));
    }
    if (manual_ && !source_.manual_ready()) {
      throw std::invalid_argument(
          "PoolOptions::demand Manual needs a source whose handles have wait_ready(), drained() "
          "and wait_until(), and that has notify() (pushstage/source.hpp)");
    }
  }

 public:
  // Before a final join of a closed source: resumes a paused pool and lifts a manual pool's
  // demand limit for good, so that the consumers take every event until the source drains
  // (Batcher's destructor does this with its processors). Safe from any thread; idempotent.
  void lift_limits() noexcept {
    unlimited_.store(true, std::memory_order_seq_cst);  // N1 of the sources' notice
    source_.notify();
    resume();
  }

 private:
  // One consumer's counters, written only by its thread, on its own cache lines.
  struct alignas(kCacheLine) State {
    std::size_t index = 0;  // the consumer's, in start order (set before its thread starts)
    std::atomic<int> cpu{-1};
    std::atomic<std::uint64_t> handled{0};
    std::atomic<std::uint64_t> failed{0};
    std::atomic<std::uint64_t> retried{0};
    std::atomic<std::uint64_t> expired{0};
    std::atomic<std::int64_t> busy_ns{0};
    std::atomic<bool> ended{false};
  };
  struct Worker {
    State state;
    std::size_t index = 0;
    std::atomic<bool> retire{false};         // set by resize() and stop(), read by the consumer
    std::atomic<std::int64_t> credits{0};    // manual demand aimed at this consumer (ask_consumer)
    std::optional<Interrupter> interrupter;  // its source handle's, set by the consumer once
    std::atomic<bool> interruptible{false};  // interrupter is set (PR1)
    std::thread thread;
  };
  using Handle = PoolHandle<T>;
  enum class Exit { kDrained, kRetired };

  static void bump(std::atomic<std::uint64_t>& counter, std::uint64_t n = 1) noexcept {
    counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  static void add_busy(State& state, Clock::duration spent) noexcept {
    state.busy_ns.store(state.busy_ns.load(std::memory_order_relaxed) +
                            std::chrono::duration_cast<std::chrono::nanoseconds>(spent).count(),
                        std::memory_order_relaxed);
  }

  void start_worker_locked() {
    auto w = std::make_unique<Worker>();
    w->index = workers_.size();
    w->state.index = w->index;
    Worker& ref = *w;
    workers_.push_back(std::move(w));
    live_.fetch_add(1, std::memory_order_relaxed);  // ordered by the thread start
    try {
      ref.thread = std::thread([this, &ref] { run(ref); });
    } catch (...) {
      live_.fetch_sub(1, std::memory_order_relaxed);
      workers_.pop_back();
      throw;
    }
  }

  // Asks a consumer to end (see retire in the header block). Caller holds workers_mutex_.
  static void retire_locked(Worker& w) noexcept {
    // (PR2) seq_cst: Dekker with the consumer's (PR1); also the N1 of the sources' notice for a
    // consumer waiting for manual demand.
    w.retire.store(true, std::memory_order_seq_cst);
    if (w.interruptible.load(std::memory_order_seq_cst)) w.interrupter->interrupt();
  }
  // Retires every consumer and lets paused ones go on, so that each ends once it has handled what
  // it holds.
  void stop() noexcept {
    {
      const std::lock_guard lock(workers_mutex_);
      for (const auto& w : workers_) retire_locked(*w);
    }
    source_.notify();
    resume();
  }
  void join_threads() {
    const std::lock_guard lock(join_mutex_);
    for (std::size_t i = 0;; ++i) {
      std::thread* t = nullptr;
      {
        const std::lock_guard workers(workers_mutex_);
        if (i >= workers_.size()) break;
        t = &workers_[i]->thread;
      }
      if (t->joinable()) t->join();
    }
  }
  // on_finished, once, if on_start ran (PF1).
  void finish_once() noexcept {
    if (started_ && !finished_.exchange(true, std::memory_order_acq_rel) &&
        callbacks_.on_finished) {
      callbacks_.on_finished();
    }
  }

  void run(Worker& w) noexcept {
    const int cpu = take_cpu(plan_, w.index);
    w.state.cpu.store(cpu, std::memory_order_relaxed);  // statistics
    // The CPU is given back before finish(): a consumer whose stats read as ended counts on none.
    if constexpr (kNoOutput) {
      NoOutput out;
      const Exit exit = consume(w, out);
      give_back_cpu(cpu);
      finish(w, exit);
    } else {
      Out out = callbacks_.make_output();  // noexcept context: a throw terminates
      const Exit exit = consume(w, out);
      give_back_cpu(cpu);
      finish(w, exit);
    }
  }

  // (PF1).
  void finish(Worker& w, Exit exit) noexcept {
    w.state.ended.store(true, std::memory_order_relaxed);                         // statistics
    if (exit == Exit::kDrained) drained_.store(true, std::memory_order_relaxed);  // ordered by PF1
    if (live_.fetch_sub(1, std::memory_order_acq_rel) == 1 &&                     // PF1
        drained_.load(std::memory_order_acquire)) {
      report(Telemetry::Drained);
      finish_once();
    }
  }

  // seq_cst (a plain load on x86-64): the (PR1) half of the Dekker pair with retire_locked().
  static bool retiring(const Worker& w) noexcept {
    return w.retire.load(std::memory_order_seq_cst);
  }

  Exit consume(Worker& w, Out& out) {
    const std::unique_ptr<Handle> handle = source_.handle_for(w.index);
    Handle& h = *handle;
    // (PR1): publish the interrupter, then check retire (below, before every take): either
    // retire_locked() finds it and interrupts our wait, or our check sees the flag.
    w.interrupter.emplace(h.interrupter());
    w.interruptible.store(true, std::memory_order_seq_cst);
    if (max_demand_ == 1 && callbacks_.handler && !manual_ && !callbacks_.prepare &&
        !callbacks_.chunk_done) {
      // One event at a time: nothing held, nothing to top up. The handler's start is the previous
      // handler's end when nothing waited in between (no take that waited, no pause, no rate
      // limit, no deadline): one clock read per event in a busy stream instead of two.
      Clock::time_point last_end{};
      for (;;) {
        bool waited = hold_while_paused();
        if (retiring(w)) [[unlikely]]
          return Exit::kRetired;
        std::optional<T> e;
        if (!h.try_take_one(e)) {
          const TakeResult r = h.take_one(e);
          if (r == TakeResult::Drained) return Exit::kDrained;
          if (r != TakeResult::Got) continue;  // interrupted: re-check retire and pause
          waited = true;
        }
        waited |= hold_while_paused();                // paused before we took it: hold the event
        const Clock::time_point taken = taken_now();  // the deadline counts the rate limit's wait
        if (rate_ != nullptr) rate_->acquire(1);
        const bool reuse = !waited && rate_ == nullptr && !has_deadline_;
        last_end = handle_one(w.state, out, *e, taken, reuse ? last_end : Clock::time_point{});
        h.release();
#ifdef PUSHSTAGE_PERF_GATE_SLOW_LOOP  // defined only by the perf gate's self-test builds
        for (volatile int slow = 0; slow < PUSHSTAGE_PERF_GATE_SLOW_LOOP;) slow = slow + 1;
#endif
      }
    }
    std::vector<T> held;
    std::vector<T> spare;
    std::vector<Clock::time_point> taken;  // when each held event was taken (deadline only)
    held.reserve(max_demand_);
    std::size_t head = 0;  // held[0, head) are handled, held[head, size) wait
    for (;;) {
      hold_while_paused();
      if (head == held.size()) {
        h.release();
        held.clear();
        taken.clear();
        head = 0;
        if (retiring(w)) return Exit::kRetired;  // holds nothing
        const TakeResult r = manual_ ? take_with_credits(w, h, held) : h.take(held, max_demand_);
        if (r == TakeResult::Drained) return Exit::kDrained;
        if (r != TakeResult::Got) continue;  // interrupted, or no credits yet: re-check
        if (has_deadline_) taken.assign(held.size(), Clock::now());
      } else if (held.size() - head <= plan_.min_demand) {
        // Top up to max_demand: move what is left to the front, then take more without waiting.
        spare.clear();
        for (std::size_t i = head; i < held.size(); ++i) spare.push_back(std::move(held[i]));
        held.swap(spare);
        if (has_deadline_)
          taken.erase(taken.begin(), taken.begin() + static_cast<std::ptrdiff_t>(head));
        head = 0;
        const Grant allowed = try_take_credits(w, max_demand_ - held.size());
        if (allowed.total() != 0) {
          const std::size_t got = h.try_top_up(held, allowed.total());
          give_back_credits(w, allowed, got);
          if (has_deadline_) taken.resize(held.size(), Clock::now());
        }
      }
      hold_while_paused();  // paused before a take above: hold the events
      head += handle_chunk(w.state, out, std::span<T>(held.data() + head, held.size() - head),
                           has_deadline_ ? taken.data() + head : nullptr);
    }
  }

  // Manual demand: waits until the source has an event, then takes credits for what it takes
  // (at most max_demand), so that no consumer sits on demand while it waits. Without credits it
  // waits for some (or for retire, shutdown, the source drained) and returns TimedOut: the caller
  // re-checks and comes back.
  TakeResult take_with_credits(Worker& w, Handle& h, std::vector<T>& held) {
    const TakeResult r = h.wait_ready();
    if (r != TakeResult::Got) return r;
    const Grant allowed = try_take_credits(w, max_demand_);
    if (allowed.total() == 0) {
      auto demand_or_end = [this, &w, &h] {  // A3: pairs with the N1 of ask(), resize(), ...
        return credits_.load(std::memory_order_seq_cst) > 0 ||
               w.credits.load(std::memory_order_seq_cst) > 0 ||
               unlimited_.load(std::memory_order_seq_cst) ||
               w.retire.load(std::memory_order_seq_cst) || h.drained();
      };
      h.wait_until(PredicateRef(demand_or_end));
      return TakeResult::TimedOut;
    }
    const std::size_t got = h.try_take(held, allowed.total());
    give_back_credits(w, allowed, got);
    if (got == 0) {
      std::this_thread::yield();  // another consumer was faster, or a dequeue missed for a moment
      return TakeResult::TimedOut;
    }
    return TakeResult::Got;
  }

  // True if it waited for resume().
  bool hold_while_paused() noexcept {
    // acquire: a pause() that happens-before the push of the event we just took is seen here.
    if (paused_.load(std::memory_order_acquire) == 0) [[likely]]
      return false;
    signal_.wait_for([this] { return paused_.load(std::memory_order_seq_cst) == 0; },  // A3
                     std::chrono::nanoseconds::max());
    return true;
  }

  // Credits a consumer took: from its own (ask_consumer) and from the pool's (ask).
  struct Grant {
    std::size_t own = 0;
    std::size_t shared = 0;
    [[nodiscard]] std::size_t total() const noexcept { return own + shared; }
  };
  // Up to `want` credits from `pool`, without waiting (0: none).
  static std::size_t take_from(std::atomic<std::int64_t>& pool, std::size_t want) noexcept {
    std::int64_t c = pool.load(std::memory_order_relaxed);
    while (c > 0 && want > 0) {
      const std::int64_t take = std::min<std::int64_t>(c, static_cast<std::int64_t>(want));
      // relaxed: credits are a count; they publish nothing.
      if (pool.compare_exchange_weak(c, c - take, std::memory_order_relaxed)) {
        return static_cast<std::size_t>(take);
      }
    }
    return 0;
  }
  // Manual demand: up to `want` credits, the consumer's own first, without waiting (0: none).
  // Automatic: `want`.
  Grant try_take_credits(Worker& w, std::size_t want) noexcept {
    if (!manual_ || unlimited_.load(std::memory_order_relaxed)) return {0, want};  // see below
    Grant g;
    g.own = take_from(w.credits, want);
    g.shared = take_from(credits_, want - g.own);
    return g;
  }
  // Gives back what `used` events did not use of `g`: the events count against the consumer's own
  // credits first, so that demand aimed at it stays with it.
  void give_back_credits(Worker& w, Grant g, std::size_t used) noexcept {
    if (!manual_ || g.total() == used || unlimited_.load(std::memory_order_relaxed)) return;
    const std::size_t own_used = std::min(used, g.own);
    const std::size_t own_back = g.own - own_used;
    const std::size_t shared_back = g.shared - (used - own_used);
    // N1: seq_cst, then notify.
    if (own_back != 0)
      w.credits.fetch_add(static_cast<std::int64_t>(own_back), std::memory_order_seq_cst);
    if (shared_back != 0)
      credits_.fetch_add(static_cast<std::int64_t>(shared_back), std::memory_order_seq_cst);
    source_.notify();
  }

  // Handles the first chunk of `events` (at most max_demand - min_demand, and with a rate limit
  // what the current window grants); returns how many it handled. `taken`: when each was taken
  // (null without a deadline).
  std::size_t handle_chunk(State& state, Out& out, std::span<T> events,
                           const Clock::time_point* taken) noexcept {
    std::size_t n = std::min(chunk_, events.size());
    if (rate_ != nullptr) n = static_cast<std::size_t>(rate_->acquire_up_to(n));
    const std::span<T> chunk = events.first(n);
    if (callbacks_.prepare) callbacks_.prepare(chunk, out);  // noexcept context: a throw terminates
    if (callbacks_.batch_handler) {
      handle_batch(state, out, chunk, taken != nullptr ? taken[0] : Clock::time_point{});
    } else {
      for (std::size_t i = 0; i < n; ++i) {
        handle_one(state, out, chunk[i], taken != nullptr ? taken[i] : Clock::time_point{});
      }
    }
    if (callbacks_.chunk_done) callbacks_.chunk_done(chunk, out);
    return n;
  }

  // When a consumer takes an event: read only when there is a deadline.
  Clock::time_point taken_now() const noexcept {
    return has_deadline_ ? Clock::now() : Clock::time_point{};
  }
  bool past_deadline(Clock::time_point taken, Clock::time_point now) const noexcept {
    return has_deadline_ && now - taken > deadline_;
  }

  // One event, with retries; `taken`: when the consumer took it (deadline only); `start`: when the
  // first attempt starts, if the caller knows ({}: read the clock). Returns when it ended. With an
  // observer: the same, reporting each call (the one branch an unobserved pool pays per event).
  Clock::time_point handle_one(State& state, Out& out, T& event, Clock::time_point taken,
                               Clock::time_point start_known = {}) noexcept {
    if (listing_.observer() != nullptr) [[unlikely]] {
      return handle_one_as<true>(state, out, event, taken, start_known);
    }
    return handle_one_as<false>(state, out, event, taken, start_known);
  }
  template <bool kObserved>
  Clock::time_point handle_one_as(State& state, Out& out, T& event, Clock::time_point taken,
                                  Clock::time_point start_known) noexcept {
    for (unsigned attempt = 1;; ++attempt) {
      const Clock::time_point start =
          attempt == 1 && start_known != Clock::time_point{} ? start_known : Clock::now();
      if (past_deadline(taken, start)) [[unlikely]] {
        fail_one(state, event, {FailureKind::DeadlineExceeded, nullptr, attempt - 1});
        return start;
      }
      if constexpr (kObserved) report_start(state, std::span<T>(&event, 1), attempt, start);
      std::exception_ptr error;
      try {
        if constexpr (kNoOutput) {
          callbacks_.handler(event);
        } else {
          callbacks_.handler(event, out);
        }
      } catch (...) {
        error = std::current_exception();
      }
      const Clock::time_point end = Clock::now();
      add_busy(state, end - start);
      if constexpr (kObserved) report_end(state, 1, attempt, end - start, error);
      if (!error) [[likely]] {
        if (past_deadline(taken, end)) [[unlikely]] {
          fail_one(state, event, {FailureKind::DeadlineExceeded, nullptr, attempt});
          return end;
        }
        bump(state.handled);
        return end;
      }
      if (on_error_) on_error_(error);  // noexcept context: a throw terminates
      const bool late = past_deadline(taken, end);
      if (late || attempt >= retry_.max_attempts) {
        fail_one(state, event,
                 {late ? FailureKind::DeadlineExceeded : FailureKind::Threw, error, attempt});
        return end;
      }
      bump(state.retried);
      if constexpr (kObserved) report(Telemetry::Retry, state, 1, attempt, backoff(attempt), error);
      std::this_thread::sleep_for(backoff(attempt));
      if (rate_ != nullptr) rate_->acquire(1);  // a retry is a handler call: it takes its grant
    }
  }

  // One chunk for the batch handler, with retries; `oldest`: when its oldest event was taken.
  void handle_batch(State& state, Out& out, std::span<T> events,
                    Clock::time_point oldest) noexcept {
    if (listing_.observer() != nullptr) [[unlikely]] {
      handle_batch_as<true>(state, out, events, oldest);
    } else {
      handle_batch_as<false>(state, out, events, oldest);
    }
  }
  template <bool kObserved>
  void handle_batch_as(State& state, Out& out, std::span<T> events,
                       Clock::time_point oldest) noexcept {
    for (unsigned attempt = 1;; ++attempt) {
      const Clock::time_point start = Clock::now();
      if (past_deadline(oldest, start)) [[unlikely]] {
        fail_all(state, events, {FailureKind::DeadlineExceeded, nullptr, attempt - 1});
        return;
      }
      if constexpr (kObserved) report_start(state, events, attempt, start);
      std::exception_ptr error;
      try {
        if constexpr (kNoOutput) {
          callbacks_.batch_handler(events);
        } else {
          callbacks_.batch_handler(events, out);
        }
      } catch (...) {
        error = std::current_exception();
      }
      const Clock::time_point end = Clock::now();
      add_busy(state, end - start);
      if constexpr (kObserved) report_end(state, events.size(), attempt, end - start, error);
      const bool late = past_deadline(oldest, end);
      if (!error && !late) {
        bump(state.handled, events.size());
        return;
      }
      if (error && on_error_) on_error_(error);  // noexcept context: a throw terminates
      if (late || attempt >= retry_.max_attempts) {
        fail_all(state, events,
                 {late ? FailureKind::DeadlineExceeded : FailureKind::Threw, error, attempt});
        return;
      }
      bump(state.retried);
      if constexpr (kObserved) {
        report(Telemetry::Retry, state, events.size(), attempt, backoff(attempt), error);
      }
      std::this_thread::sleep_for(backoff(attempt));
      if (rate_ != nullptr) rate_->acquire(events.size());  // the chunk's grants, again
    }
  }

  void fail_one(State& state, T& event, const Failure& failure) noexcept {
    bump(state.failed);
    if (failure.kind == FailureKind::DeadlineExceeded) bump(state.expired);
    if (listing_.observer() != nullptr) [[unlikely]] {
      TelemetryEvent e = listing_.event(Telemetry::DeadLetter);
      e.consumer = state.index;
      e.count = 1;
      e.attempt = failure.attempts;
      e.failure = failure.kind;
      e.error = failure.error;
      listing_.emit(e);
    }
    if (callbacks_.dead_letter) callbacks_.dead_letter(event, failure);  // a throw terminates
  }

  // ---- telemetry (only with an observer) ----
  void report(Telemetry what, const State& state, std::uint64_t count, unsigned attempt,
              std::chrono::nanoseconds duration, const std::exception_ptr& error) const noexcept {
    TelemetryEvent e = listing_.event(what);
    e.consumer = state.index;
    e.count = count;
    e.attempt = attempt;
    e.duration = duration;
    e.error = error;
    listing_.emit(e);
  }
  void report_start(const State& state, std::span<T> events, unsigned attempt,
                    Clock::time_point start) const noexcept {
    TelemetryEvent e = listing_.event(Telemetry::HandlerStart);
    e.consumer = state.index;
    e.count = events.size();
    e.attempt = attempt;
    if constexpr (StampedEvent<T>) {
      if (attempt == 1) e.dispatch_latency = start - pushstage_pushed_at(events.front());
    }
    listing_.emit(e);
  }
  void report_end(const State& state, std::uint64_t count, unsigned attempt, Clock::duration took,
                  const std::exception_ptr& error) const noexcept {
    report(error ? Telemetry::HandlerException : Telemetry::HandlerStop, state, count, attempt,
           took, error);
  }
  void report(Telemetry what, std::uint64_t count = 0) const noexcept {
    if (listing_.observer() == nullptr) return;
    TelemetryEvent e = listing_.event(what);
    e.count = count;
    listing_.emit(e);
  }
  void fail_all(State& state, std::span<T> events, const Failure& failure) noexcept {
    for (T& e : events) fail_one(state, e, failure);
  }

  // The wait before attempt + 1: backoff * multiplier^(attempt - 1), at most max_backoff.
  std::chrono::nanoseconds backoff(unsigned attempt) const noexcept {
    auto ns = static_cast<double>(retry_.backoff.count());
    const auto cap = static_cast<double>(retry_.max_backoff.count());
    for (unsigned i = 1; i < attempt && ns < cap; ++i) ns *= retry_.multiplier;
    return std::chrono::nanoseconds(static_cast<std::int64_t>(ns < cap ? ns : cap));
  }

  SourceRef<T> source_;
  const PoolPlan plan_;
  const std::size_t max_demand_;
  const bool manual_;        // DemandMode::Manual
  const std::size_t chunk_;  // max_demand - min_demand
  const Callbacks callbacks_;
  const std::function<void(std::exception_ptr)> on_error_;
  const RetryPolicy retry_;
  const std::chrono::nanoseconds deadline_;
  const bool has_deadline_;
  const std::shared_ptr<RateLimiter> rate_;  // may be null

  mutable std::mutex workers_mutex_;              // guards workers_ (not the workers' counters)
  std::vector<std::unique_ptr<Worker>> workers_;  // in start order; never shrinks
  std::mutex join_mutex_;                         // one join() at a time
  std::atomic<std::size_t> live_{0};              // running threads (PF1)
  std::atomic<std::size_t> consumers_{0};         // for size()
  std::atomic<bool> drained_{false};              // some thread saw its queue drained (PF1)
  bool started_ = false;                          // on_start ran (set before any thread starts)
  std::atomic<bool> finished_{false};             // on_finished ran (PF1)
  alignas(kCacheLine) std::atomic<std::uint32_t> paused_{0};  // read before each take and chunk
  std::atomic<std::int64_t> credits_{0};  // manual demand granted and not yet used
  std::atomic<bool> unlimited_{false};    // lift_limits(): manual demand no longer limits
  Signal signal_;                         // pause: resume() wakes paused consumers
  // Its Topology entry and observer. Last: destroyed first, once the destructor has joined every
  // thread (so after the last event), before anything its stats read.
  detail::Listing listing_;
};

}  // namespace pushstage::detail
