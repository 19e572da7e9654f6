// pushstage/stages/batcher.hpp: Broadway's batchers. Events pushed into a Batcher are grouped by
// batch key into batches of batch_size (and, with a weight function, of at most batch_weight),
// flushed when full or batch_timeout after their first event at the latest (BatchFlush::OnClose:
// only full ones, until close); a batch handler runs on the batcher's own ConsumerPool (its
// processors). Push into it from a handler, or make it the sink of a Stage.
//
// Threading: every member is safe from any thread. One thread of the batcher's own (not pinned)
//            groups events; the processors (PoolOptions) call the handler, concurrently.
// Progress:  the input is a Dispatcher (BatcherOptions::input; bounded by default), and a full
//            batch waits for room among the processors' batches (2 per processor): slow
//            processors push back through the grouping thread to the batcher's producers.
// Ordering:  a batch holds its key's events in the order the grouping thread took them (per
//            producer: push order); batches of one key are flushed in order; processors may
//            handle them in any order (one processor: in order).
// Close:     close() closes the input; the grouping thread takes everything left, flushes every
//            partial batch (BatchTrigger::Close) and closes the processors' source; join() waits
//            until every batch was handled (processors paused, or under DemandMode::Manual, hold
//            it up until resume() or ask()). Nothing accepted is lost. The destructor closes,
//            resumes the processors and lifts a manual demand limit, then joins.
// Memory:    what a producer did before push(e) happens-before the handler's call for e's batch.
// Failure:   a handler that throws is retried under processors.retry; a batch that still fails
//            goes to the dead-letter callback (see ConsumerPool). key_of must not throw
//            (std::terminate if it does).
// Observed: BatcherOptions::name names it in the Topology (its input is its buffer; its
//            processors are the pool "<name>.processors", fed by it); BatcherOptions::observer
//            receives BatchStart and BatchStop around each batch handler call, and its input's
//            drops and close, and is the processors' observer unless processors.observer is set.
// Not guaranteed: timeouts to better than the grouping thread's wake-up (microseconds to a few
//            milliseconds on a loaded machine).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "pushstage/dispatcher.hpp"
#include "pushstage/observe/listing.hpp"
#include "pushstage/observe/observer.hpp"
#include "pushstage/pool/consumer_pool.hpp"
#include "pushstage/pool/pool_options.hpp"

namespace pushstage {

// Why a batch was flushed: BatchTrigger, in pushstage/observe/observer.hpp.

// When a batch that is not full goes out.
enum class BatchFlush {
  OnTimeout,  // batch_timeout after its first event (Broadway's bulk mode), or at close
  OnClose,    // only at close: until then every batch goes out full (by count or by weight)
};

struct BatcherOptions {
  // Events per batch, in [1, 65536] (Broadway's default: 100).
  std::size_t batch_size = 100;
  // With a weight function (Batcher::Grouping::weight_of), the most total weight per batch, in
  // [1, 2^62]; 0 (the default) without one. A batch goes out full once the next event's weight
  // would take it beyond batch_weight, or once it reaches batch_weight; an event heavier than
  // batch_weight makes a batch of its own. batch_size applies as well.
  std::uint64_t batch_weight = 0;
  // Most time from a batch's first event to its flush, in [1 us, 24 h] (Broadway's: 1 s).
  std::chrono::nanoseconds batch_timeout = std::chrono::seconds(1);
  // OnTimeout, or OnClose (batch_timeout is then unused).
  BatchFlush flush = BatchFlush::OnTimeout;
  // The batcher's input buffer. Default: 10 000 events under Overflow::Block (GenStage's default
  // buffer_size), so that a slow batcher pushes back.
  DispatcherOptions input = default_input();
  // The processors that run the batch handler: consumers, pinning, retry, deadline, rate limit.
  // Their name defaults to "<name>.processors".
  PoolOptions processors;
  // The batcher's name in the Topology and its metrics, at most 128 bytes; empty: "batcher-N".
  std::string name;
  // Receives its batches, its input's drops and close (pushstage/observe/observer.hpp).
  std::shared_ptr<Observer> observer;

  [[nodiscard]] static DispatcherOptions default_input() {
    DispatcherOptions o;
    o.capacity = 10'000;
    return o;
  }
};

struct BatcherStats {
  std::uint64_t events = 0;     // events put into batches
  std::uint64_t batches = 0;    // batches flushed (full + timed_out + at_close)
  std::uint64_t full = 0;       // flushed by size
  std::uint64_t timed_out = 0;  // flushed by batch_timeout
  std::uint64_t at_close = 0;   // flushed by close()
  DispatcherStats input;        // the input buffer
  std::vector<ConsumerStats> processors;
};

namespace detail {
// Throws std::invalid_argument naming the field (processors: "BatcherOptions::processors.consumers"
// and so on; `prefix` replaces "BatcherOptions::") unless every option is in range, or
// "Batcher: handler must not be empty". has_weight: a weight function was given.
void check_batcher_options(const BatcherOptions& options, bool has_handler, bool has_weight = false,
                           std::string_view prefix = "BatcherOptions::");
}  // namespace detail

template <class T, class Key = int>
class Batcher {
 public:
  using value_type = T;
  struct Batch {
    Key key{};
    std::vector<T> events;
    BatchTrigger trigger = BatchTrigger::Full;
  };
  using KeyOf = std::function<Key(const T&)>;
  // An event's weight (bytes, rows, ...), for BatcherOptions::batch_weight.
  using WeightOf = std::function<std::uint64_t(const T&)>;
  // How events are grouped: by key_of (empty: one key) and, with weight_of, by weight too.
  struct Grouping {
    KeyOf key_of;
    WeightOf weight_of;
  };
  // Called once per batch, on a processor thread.
  using Handler = std::function<void(Batch&)>;
  // Receives each batch that failed for good.
  using DeadLetter = std::function<void(Batch&, const Failure&)>;
  using Producer = typename Dispatcher<T>::Producer;

  // Every event in one key (Key{}). Throws std::invalid_argument for invalid options or an empty
  // handler, before starting anything.
  Batcher(BatcherOptions options, Handler handler, DeadLetter dead_letter = {})
      : Batcher(std::move(options), KeyOf{}, std::move(handler), std::move(dead_letter)) {}
  // Events grouped by key_of(event) (Key: hashable, equality-comparable, copyable).
  Batcher(BatcherOptions options, KeyOf key_of, Handler handler, DeadLetter dead_letter = {})
      : Batcher(std::move(options), Grouping{std::move(key_of), {}}, std::move(handler),
                std::move(dead_letter)) {}
  // Events grouped by key and weight (see Grouping and BatcherOptions::batch_weight). Throws
  // std::invalid_argument also when batch_weight and weight_of do not come together.
  Batcher(BatcherOptions options, Grouping grouping, Handler handler, DeadLetter dead_letter = {})
      : listing_(listing_spec(options, static_cast<bool>(handler),
                              static_cast<bool>(grouping.weight_of))),
        size_(options.batch_size),
        timeout_(options.batch_timeout),
        timed_(options.flush == BatchFlush::OnTimeout),
        max_weight_(options.batch_weight),
        key_of_(std::move(grouping.key_of)),
        weight_of_(std::move(grouping.weight_of)),
        input_(detail::PartOf{&listing_}, options.input),
        batches_(detail::PartOf{&listing_, false}, batch_buffer(options.processors)),
        processors_(batches_, processor_options(options), observed(std::move(handler)),
                    std::move(dead_letter)) {
    listing_.add_alias(&batches_);  // the processors take from it: the Topology's edge
    grouper_ = std::thread([this] { group(); });
    listing_.join();
  }
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;
  // Closes, lets paused or manual processors take every batch (else the grouping thread would
  // wait for room among their batches for ever), and joins.
  ~Batcher() {
    listing_.leave();
    close();
    processors_.lift_limits();
    join();
  }

  // Dispatcher::push() into the input (Closed after close()).
  PushResult push(T event) { return input_.push(std::move(event)); }
  [[nodiscard]] PushResult try_push(T& event) { return input_.try_push(event); }
  [[nodiscard]] Producer producer() { return input_.producer(); }

  // Closes the input: what is left is grouped and flushed, then the processors drain.
  void close() noexcept {
    const bool first = !input_.closed();  // telemetry only: two racing first calls both report
    input_.close();
    if (first) listing_.report(Telemetry::Closed);
  }
  // Fan-in (see Dispatcher::add_upstream()): the input closes after the last stage leaves.
  void add_upstream() noexcept { input_.add_upstream(); }
  void remove_upstream() noexcept { input_.remove_upstream(); }
  // Waits until the batcher is closed and every batch handled. Safe from several threads.
  void join() {
    {
      const std::lock_guard lock(join_mutex_);
      if (grouper_.joinable()) grouper_.join();
    }
    processors_.join();
  }

  // The processors' pool: pause(), resume(), resize(), stats().
  [[nodiscard]] ConsumerPool<Batch>& processors() noexcept { return processors_; }
  // Its name in the Topology (BatcherOptions::name, or the default).
  [[nodiscard]] const std::string& name() const noexcept { return listing_.name(); }

  [[nodiscard]] BatcherStats stats() const {
    BatcherStats s = stats_without_processors();
    s.processors = processors_.stats();
    return s;
  }

 private:
  struct Open {
    std::vector<T> events;
    std::uint64_t weight = 0;  // with weight_of_: the sum of the events' weights
    std::uint64_t id = 0;      // tells a timer entry whether its batch is still the open one
  };
  struct Timer {
    std::chrono::steady_clock::time_point due;
    Key key;
    std::uint64_t id;
  };

  // Validates the options (first: nothing is built for invalid ones) and lists the batcher.
  detail::ListingSpec listing_spec(const BatcherOptions& options, bool has_handler,
                                   bool has_weight) {
    detail::check_batcher_options(options, has_handler, has_weight);
    detail::ListingSpec spec =
        detail::dispatcher_spec(ComponentKind::Batcher, options.input, this);  // its input's
    spec.name = options.name;
    spec.name_field = "BatcherOptions::name";
    spec.observer = options.observer;
    spec.options.emplace_back("batch_size", std::to_string(options.batch_size));
    spec.options.emplace_back("batch_timeout",
                              std::to_string(options.batch_timeout.count()) + " ns");
    spec.options.emplace_back("flush",
                              options.flush == BatchFlush::OnTimeout ? "OnTimeout" : "OnClose");
    spec.options.emplace_back("batch_weight", std::to_string(options.batch_weight));
    spec.fill = [this, capacity = options.input.capacity](ComponentSnapshot& s) {
      const BatcherStats b = stats_without_processors();
      s.buffer = b.input;
      s.capacity = capacity;
      s.batches = BatchSnapshot{b.events, b.batches, b.full, b.timed_out, b.at_close};
    };
    return spec;
  }
  [[nodiscard]] PoolOptions processor_options(const BatcherOptions& options) const {
    PoolOptions p = options.processors;
    if (p.name.empty()) p.name = listing_.name() + ".processors";
    if (!p.observer) p.observer = options.observer;
    return p;
  }
  // With an observer: the handler reports BatchStart and BatchStop around each batch.
  Handler observed(Handler handler) const {
    if (listing_.observer() == nullptr) return handler;
    return [this, h = std::move(handler)](Batch& batch) {
      TelemetryEvent start = listing_.event(Telemetry::BatchStart);
      start.count = batch.events.size();
      start.trigger = batch.trigger;
      listing_.emit(start);
      const auto began = std::chrono::steady_clock::now();
      TelemetryEvent stop = listing_.event(Telemetry::BatchStop);
      stop.count = batch.events.size();
      stop.trigger = batch.trigger;
      try {
        h(batch);
      } catch (...) {
        stop.error = std::current_exception();
        stop.duration = std::chrono::steady_clock::now() - began;
        listing_.emit(stop);
        throw;  // the processors retry it or send it to the dead letter
      }
      stop.duration = std::chrono::steady_clock::now() - began;
      listing_.emit(stop);
    };
  }
  [[nodiscard]] BatcherStats stats_without_processors() const {
    BatcherStats s;
    s.full = full_.load(std::memory_order_relaxed);  // statistics: relaxed throughout
    s.timed_out = timed_out_.load(std::memory_order_relaxed);
    s.at_close = at_close_.load(std::memory_order_relaxed);
    s.batches = s.full + s.timed_out + s.at_close;
    s.events = events_.load(std::memory_order_relaxed);
    s.input = input_.stats();
    return s;
  }

  // Built before the processors' pool, from options check_batcher_options() already validated.
  static DispatcherOptions batch_buffer(const PoolOptions& processors) {
    DispatcherOptions o;
    o.capacity = 2 * processors.consumers;  // consumers in [1, 65536]
    return o;
  }

  // The grouping thread. Timers are due in creation order (one timeout for all), so a deque in
  // that order finds the next due batch in O(1); a timer whose batch was flushed full is stale.
  // Each open batch has exactly one live timer; once stale ones outnumber them, a full flush drops
  // them all (O(timers), amortised O(1) per full batch), so the deque holds at most 2 x the open
  // batches + 1 timers however long the timeout.
  void group() noexcept {
    using Clock = std::chrono::steady_clock;
    typename Dispatcher<T>::Consumer in = input_.consumer();
    typename Dispatcher<Batch>::Producer out = batches_.producer();
    std::unordered_map<Key, Open> open;
    std::deque<Timer> timers;
    std::uint64_t next_id = 0;
    auto stale = [&open](const Timer& t) {
      auto it = open.find(t.key);
      return it == open.end() || it->second.id != t.id;
    };
    auto flush = [&](const Key& key, BatchTrigger why) {
      auto it = open.find(key);
      if (it == open.end()) return;
      // Counted before the push, so that a handler that ran for the batch sees it counted.
      const auto n = it->second.events.size();
      events_.store(events_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
      auto& counter = why == BatchTrigger::Full      ? full_
                      : why == BatchTrigger::Timeout ? timed_out_
                                                     : at_close_;
      counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      Batch b{key, std::move(it->second.events), why};
      open.erase(it);
      (void)out.push(std::move(b));  // waits for room among the processors (backpressure)
    };
    auto flush_full = [&](const Key& key) {
      flush(key, BatchTrigger::Full);
      if (timers.size() > 2 * open.size()) std::erase_if(timers, stale);
    };
    for (;;) {
      const Clock::time_point now = Clock::now();
      while (!timers.empty() && timers.front().due <= now) {
        const Timer t = timers.front();
        timers.pop_front();
        if (!stale(t)) flush(t.key, BatchTrigger::Timeout);
      }
      std::optional<T> e = in.try_pop();
      if (!e) e = timers.empty() ? in.pop() : in.pop_for(timers.front().due - now);
      if (!e) {
        if (input_.drained()) break;
        continue;  // a timer is due
      }
      const Key key = key_of_ ? key_of_(*e) : Key{};
      // Clamped: an event heavier than a batch fills one alone, and sums cannot overflow.
      const std::uint64_t w = weight_of_ ? std::min(weight_of_(*e), max_weight_) : 0;
      auto it = open.find(key);
      if (weight_of_ && it != open.end() && it->second.weight + w > max_weight_) {
        flush_full(key);
        it = open.end();
      }
      if (it == open.end()) {
        it = open.try_emplace(key).first;
        it->second.id = ++next_id;
        it->second.events.reserve(size_);
        if (timed_) timers.push_back(Timer{Clock::now() + timeout_, key, it->second.id});
      }
      it->second.events.push_back(std::move(*e));
      it->second.weight += w;
      if (it->second.events.size() >= size_ || (weight_of_ && it->second.weight >= max_weight_)) {
        flush_full(key);
      }
    }
    // Closed and drained: flush what is open, oldest first, then let the processors drain.
    if (timed_) {
      for (const Timer& t : timers) {
        if (!stale(t)) flush(t.key, BatchTrigger::Close);
      }
    } else {
      std::vector<std::pair<std::uint64_t, Key>> left;  // OnClose keeps no timers: order by id
      for (const auto& [key, batch] : open) left.emplace_back(batch.id, key);
      std::sort(left.begin(), left.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      for (const auto& entry : left) flush(entry.second, BatchTrigger::Close);
    }
    batches_.close();
  }

  // First: its parts report as the batcher until they are destroyed.
  detail::Listing listing_;
  const std::size_t size_;
  const std::chrono::nanoseconds timeout_;
  const bool timed_;                // BatchFlush::OnTimeout
  const std::uint64_t max_weight_;  // batch_weight (used only with weight_of_)
  const KeyOf key_of_;
  const WeightOf weight_of_;
  Dispatcher<T> input_;
  Dispatcher<Batch> batches_;
  ConsumerPool<Batch> processors_;
  std::atomic<std::uint64_t> events_{0};  // written by the grouping thread only
  std::atomic<std::uint64_t> full_{0};
  std::atomic<std::uint64_t> timed_out_{0};
  std::atomic<std::uint64_t> at_close_{0};
  std::mutex join_mutex_;
  std::thread grouper_;  // started last, joined first
};

}  // namespace pushstage
