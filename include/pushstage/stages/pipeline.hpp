// pushstage/stages/pipeline.hpp: Broadway's pipeline in one object. Declare a source (push(), a
// feed: the NATS source, a range), processors, named batchers and the callbacks (handle_message,
// handle_batch, handle_failed, prepare_messages) in PipelineOptions; the pipeline wires an input
// Dispatcher (a PartitionDispatcher with partition_by), a pool of processors and one Batcher per
// name, acknowledges every message once, passes barriers and stops in order.
//
// Threading: every member is safe from any thread except stop(), join() and the destructor,
//            which must not run on the pipeline's own threads (inside a callback). Callbacks run
//            on the processors (handle_message, prepare_messages) and the batchers' processors
//            (handle_batch), concurrently with themselves.
// Flow:      push (or the feed) -> input -> processors: prepare_messages(chunk), handle_message
//            per message; a message routed with put_batcher(name) goes to that batcher, which
//            batches it by batch key (batch_size, batch_weight, batch_timeout, flush) ->
//            handle_batch. Backpressure end to end: a full batcher input holds its processors, a
//            full input holds push().
// Acknowledgement: exactly once per message accepted by push() (or refused by it: see
//            PipelineOptions::input). A message is done when its batch is handled, or, going to no
//            batcher, when handle_message returned; then failed ones go to handle_failed, and
//            each group that finished together (a processor's chunk, a batch) is acknowledged
//            per acknowledger, successful and failed apart (Broadway's ack/3). Retries happen
//            before that (PoolOptions::retry); the acknowledger hears attempt_failed() for each
//            failed attempt and ack() once.
// Deadlines: PoolOptions::deadline (the processors', a batcher's) fails a message whose handler
//            had not started by then (MessageFailure::DeadlineExceeded, unhandled) or threw past
//            it (no retry); one whose handler returned past it keeps its status, as its work is
//            done (nats::from_jetstream() acks it), though the pool's stats count it expired.
// Ordering:  with partition_by, messages of one partition (from one producer) are handled, routed
//            to their batcher and, without a batcher, acknowledged in push order; batches of one
//            key go out in order (handled in order with one batch processor). Without it, no order
//            across processors.
// Barriers:  barrier() returns a future that is ready once every message pushed before the call
//            (every push that returned before it, through any producer, into any partition) has
//            been acknowledged (core/ledger.hpp). A batch that waits for more messages (timeout,
//            BatchFlush::OnClose) holds the barrier up until it goes out.
// Close:     close() ends the input (the feed's pushes are refused too): processors drain, then
//            each batcher is closed and flushed (BatchTrigger::Close), then its processors drain;
//            join() waits for all of it. stop(deadline) stops the feed, closes, and waits until
//            the deadline; what is not handled by then (in the input, held by a processor, in a
//            batcher) is failed with MessageFailure::Shutdown without its handler being called,
//            and acknowledged: nothing is lost. Handler calls in progress finish first. The
//            destructor is stop(now + PipelineOptions::shutdown).
// Memory:    what a producer did before push(m) happens-before every callback's call for m; what
//            an acknowledgement did happens-before the barrier that waits for it.
// Not guaranteed: order across partitions or processors; that a stop() deadline is met while a
//            rate limit or a retry backoff is pacing the drain (both still apply after it).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pushstage/core/ledger.hpp"
#include "pushstage/core/upstreams.hpp"
#include "pushstage/dispatcher.hpp"
#include "pushstage/modes/partition_dispatcher.hpp"
#include "pushstage/pool/pool_core.hpp"
#include "pushstage/stages/batcher.hpp"
#include "pushstage/stages/message.hpp"
#include "pushstage/stages/pipeline_options.hpp"

namespace pushstage {

template <class T>
class Pipeline : public detail::FanIn<Pipeline<T>> {
  using Clock = std::chrono::steady_clock;
  using Shared = Dispatcher<Message<T>>;
  using Partitioned = PartitionDispatcher<Message<T>>;

 public:
  using value_type = Message<T>;
  // A named batcher, as built: batcher(name).stats(), .processors().resize(n), ...
  using NamedBatcher = Batcher<Message<T>, std::string>;
  class Producer;
  class Processors;
  // What each processor thread writes to (PoolCore's Out): its producer handle of each batcher,
  // and scratch space for what it acknowledges.
  struct ProcessorOutput {
    std::vector<std::optional<typename Dispatcher<Message<T>>::Producer>> to_batcher;
    std::vector<Message<T>> done;
  };

  // Validates every option (std::invalid_argument naming the field) before it starts anything,
  // then starts the batchers, the processors and the feed (whose start() may throw: everything
  // started is stopped again, and the exception propagates).
  explicit Pipeline(PipelineOptions<T> options, std::unique_ptr<PipelineFeed<T>> feed = nullptr)
      : options_(checked(std::move(options))), feed_(std::move(feed)) {
    make_input();
    for (std::size_t b = 0; b < options_.batchers.size(); ++b) make_batcher(b);
    processors_.emplace(source(), options_.processors, *this);
    if (!feed_) return;
    try {
      feed_->start(*this);
    } catch (...) {
      feed_stopped_ = true;  // a feed that failed to start pushes nothing
      (void)stop(Clock::now());
      throw;
    }
  }
  // stop(now + PipelineOptions::shutdown).
  ~Pipeline() { (void)stop(Clock::now() + options_.shutdown); }
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Accepts a message (Dispatcher::push into the input: under Overflow::Block it waits for room).
  // Refused (Closed, or Rejected under Reject) it is acknowledged as failed (Refused) at once.
  PushResult push(Message<T> message) {
    enter(message);
    return shared_ ? shared_->push(std::move(message)) : partitioned_->push(std::move(message));
  }
  PushResult push(T data) { return push(Message<T>(std::move(data))); }
  // Never waits; a message refused stays with the caller, unacknowledged.
  [[nodiscard]] PushResult try_push(Message<T>& message) {
    enter(message);
    const PushResult r = shared_ ? shared_->try_push(message) : partitioned_->try_push(message);
    if (r == PushResult::Rejected || r == PushResult::Closed) ledger_.leave(message.epoch_);
    return r;
  }
  // A producer handle (the input's fastest push path), for one thread at a time.
  [[nodiscard]] Producer producer() { return Producer(*this); }

  // Ends the input: later pushes are refused; the pipeline drains in order (see Close). Idempotent.
  void close() noexcept {
    if (shared_) {
      shared_->close();
    } else {
      partitioned_->close();
    }
  }
  // Waits until the input is closed and every message is acknowledged and every thread of the
  // pipeline (feed aside) has ended. Safe from several threads.
  void join() {
    processors_->join();
    for (const auto& b : batchers_) b->join();
  }
  // Stops the feed, closes the input and waits until `deadline` for everything accepted to be
  // acknowledged; after the deadline the rest is failed with MessageFailure::Shutdown, unhandled,
  // and acknowledged. Returns once every thread has ended: true if no message was ever failed
  // with MessageFailure::Shutdown. A paused or manual pool is let go. Idempotent (a later call may
  // bring the deadline forward).
  bool stop(Clock::time_point deadline) {
    const std::lock_guard lock(stop_mutex_);
    const std::int64_t ns = deadline.time_since_epoch().count();
    if (!stopping_.load(std::memory_order_relaxed) ||
        ns < stop_deadline_.load(std::memory_order_relaxed)) {
      stop_deadline_.store(ns, std::memory_order_relaxed);  // published by the store below
    }
    stopping_.store(true, std::memory_order_release);  // pairs with past_stop_deadline()
    processors_->lift_limits();
    for (const auto& b : batchers_) b->processors().lift_limits();
    if (feed_ && !feed_stopped_) {
      feed_->stop();
      feed_stopped_ = true;
    }
    close();
    (void)ledger_.barrier().wait_until(deadline);  // past it, what is left fails fast (Shutdown)
    join();
    constexpr auto kShutdown = static_cast<std::size_t>(MessageFailure::Shutdown);
    return counters_.by_kind[kShutdown].load(std::memory_order_relaxed) ==
           0;  // after join()'s sync
  }
  bool stop(std::chrono::nanoseconds timeout) { return stop(Clock::now() + timeout); }

  // GenStage's sync_info for every partition at once (see Barriers).
  [[nodiscard]] std::future<void> barrier() { return ledger_.barrier(); }

  // Broadway's test_message / test_batch: pushes the data as messages acknowledged to the test,
  // whose future is ready once all of them are acknowledged, with their final statuses.
  [[nodiscard]] std::future<TestAck<T>> test_message(T data) {
    std::vector<Message<T>> one;
    one.emplace_back(std::move(data));
    return test_messages(std::move(one));
  }
  [[nodiscard]] std::future<TestAck<T>> test_batch(std::vector<T> data) {
    std::vector<Message<T>> messages;
    messages.reserve(data.size());
    for (T& d : data) messages.emplace_back(std::move(d));
    return test_messages(std::move(messages));
  }
  // The same for messages the test prepared (metadata, ...); their acknowledger is replaced.
  [[nodiscard]] std::future<TestAck<T>> test_messages(std::vector<Message<T>> messages);

  // The processors' pool: pause(), resume(), resize() (not with partition_by), stats(), ask().
  [[nodiscard]] Processors& processors() noexcept { return *processors_; }
  // The batcher named `name` (std::out_of_range if none): stats(), processors(). Do not close it.
  [[nodiscard]] NamedBatcher& batcher(std::string_view name) {
    const std::size_t b = batcher_index(name);
    if (b == kNone)
      throw std::out_of_range("Pipeline::batcher: no batcher named '" + std::string(name) + "'");
    return *batchers_[b];
  }
  // Messages the pipeline holds when every processor takes max_demand and every batcher holds a
  // full batch per processor and one open: a fair demand for a feed that counts what is in flight.
  [[nodiscard]] std::size_t in_flight_hint() const noexcept {
    std::size_t n = options_.processors.consumers * options_.processors.max_demand;
    for (const auto& b : options_.batchers) {
      n += b.options.batch_size * (2 * b.options.processors.consumers + 1);
    }
    return n;
  }
  // Why the feed ended by itself (null: it did not).
  [[nodiscard]] std::exception_ptr feed_error() const { return feed_ ? feed_->error() : nullptr; }

  [[nodiscard]] PipelineStats stats() const;

  // Movable, not copyable (as the input's handles it holds).
  class Producer {
   public:
    PushResult push(Message<T> message) {
      p_->enter(message);
      return shared_ ? shared_->push(std::move(message)) : partitioned_->push(std::move(message));
    }
    PushResult push(T data) { return push(Message<T>(std::move(data))); }
    [[nodiscard]] PushResult try_push(Message<T>& message) {
      p_->enter(message);
      const PushResult r = shared_ ? shared_->try_push(message) : partitioned_->try_push(message);
      if (r == PushResult::Rejected || r == PushResult::Closed) p_->ledger_.leave(message.epoch_);
      return r;
    }

   private:
    friend class Pipeline;
    explicit Producer(Pipeline& p) : p_(&p) {
      if (p.shared_) {
        shared_.emplace(p.shared_->producer());
      } else {
        partitioned_.emplace(p.partitioned_->producer());
      }
    }
    Pipeline* p_;
    std::optional<typename Shared::Producer> shared_;
    std::optional<typename Partitioned::Producer> partitioned_;
  };

  class Processors : public detail::PoolCore<Message<T>, ProcessorOutput> {
    using Core = detail::PoolCore<Message<T>, ProcessorOutput>;

   public:
    Processors(detail::SourceRef<Message<T>> source, const PoolOptions& options, Pipeline& p)
        : Core(std::move(source), options, callbacks(p)) {}

   private:
    static typename Core::Callbacks callbacks(Pipeline& p) {
      typename Core::Callbacks c{"Pipeline", {}, {}, {}, {}, {}, {}};
      c.handler = [&p](Message<T>& m, ProcessorOutput&) { p.handle(m); };
      c.dead_letter = [&p](Message<T>& m, const Failure& f) { p.processor_failed(m, f); };
      c.make_output = [&p] {
        ProcessorOutput out;
        out.to_batcher.resize(p.batchers_.size());
        return out;
      };
      c.on_finished = [&p] {  // the input is drained and every processor ended: batchers next
        for (const auto& b : p.batchers_) b->close();
      };
      c.prepare = [&p](std::span<Message<T>> chunk, ProcessorOutput&) { p.prepare(chunk); };
      c.chunk_done = [&p](std::span<Message<T>> chunk, ProcessorOutput& out) {
        p.chunk_done(chunk, out);
      };
      return c;
    }
  };

 private:
  static constexpr std::size_t kNone = ~std::size_t{0};
  class TestAcknowledger;
  // Epochs of the messages a settle() acknowledges, run-length: usually one run.
  class EpochRuns {
   public:
    void add(std::uint64_t e) {
      if (n_ != 0 && e == last_) {
        ++n_;
        return;
      }
      if (n_ != 0) more_.emplace_back(last_, n_);
      last_ = e;
      n_ = 1;
    }
    void leave(detail::Ledger& ledger) const noexcept {
      for (const auto& [e, n] : more_) ledger.leave(e, n);
      if (n_ != 0) ledger.leave(last_, n_);
    }

   private:
    std::uint64_t last_ = 0;
    std::int64_t n_ = 0;
    std::vector<std::pair<std::uint64_t, std::int64_t>> more_;
  };

  static PipelineOptions<T> checked(PipelineOptions<T> o) {
    detail::PipelineShape shape;
    shape.processors = &o.processors;
    shape.has_partition_by = static_cast<bool>(o.partition_by);
    for (const PipelineBatcher<T>& b : o.batchers) {
      shape.batchers.push_back({b.name, &b.options, static_cast<bool>(b.weight_of)});
    }
    shape.has_handle_message = static_cast<bool>(o.handle_message);
    shape.has_handle_batch = static_cast<bool>(o.handle_batch);
    shape.shutdown = o.shutdown;
    detail::check_pipeline_options(shape);
    return o;
  }

  void make_input() {
    auto on_drop = [this](Message<T>&& m, DropReason why) noexcept { dropped(std::move(m), why); };
    try {
      if (options_.partition_by) {
        partitioned_ = std::make_unique<Partitioned>(
            options_.processors.consumers, options_.partition_by, options_.input, on_drop);
      } else {
        shared_ = std::make_unique<Shared>(options_.input, on_drop);
      }
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(detail::input_option_error(e.what()));
    }
  }
  detail::SourceRef<Message<T>> source() {
    if (shared_) return detail::SourceRef<Message<T>>(*shared_);
    return detail::SourceRef<Message<T>>(*partitioned_);
  }
  void make_batcher(std::size_t b) {
    const PipelineBatcher<T>& spec = options_.batchers[b];
    typename NamedBatcher::Grouping grouping{[](const Message<T>& m) { return m.batch_key(); },
                                             spec.weight_of};
    batchers_.push_back(std::make_unique<NamedBatcher>(
        spec.options, std::move(grouping),
        [this, b](typename NamedBatcher::Batch& batch) { handle_batch(b, batch); },
        [this](typename NamedBatcher::Batch& batch, const Failure& f) { batch_failed(batch, f); }));
  }
  [[nodiscard]] std::size_t batcher_index(std::string_view name) const noexcept {
    for (std::size_t b = 0; b < options_.batchers.size(); ++b) {
      if (options_.batchers[b].name == name) return b;
    }
    return kNone;
  }

  // Counts a message in the current epoch before it reaches the input (LG1 of core/ledger.hpp).
  void enter(Message<T>& m) noexcept {
    m.returned_ = false;
    m.gone_ = false;
    m.epoch_ = ledger_.enter();
  }
  [[nodiscard]] bool past_stop_deadline() const noexcept {
    if (!stopping_.load(std::memory_order_acquire)) [[likely]]  // pairs with stop()'s release
      return false;
    return Clock::now().time_since_epoch().count() >=
           stop_deadline_.load(std::memory_order_relaxed);
  }
  static void fail_for_shutdown(Message<T>& m) {
    m.fail_with(
        {MessageFailure::Shutdown, "stop()'s deadline passed before it was handled", {}, 0});
  }
  static std::string what_of(const std::exception_ptr& e) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      return ex.what();
    } catch (...) {
      return "an exception not derived from std::exception";
    }
  }
  static MessageError failure_of(const char* where, const Failure& f) {
    if (f.kind == FailureKind::Threw) {
      return {MessageFailure::Threw, std::string(where) + " threw: " + what_of(f.error), f.error,
              f.attempts};
    }
    return {MessageFailure::DeadlineExceeded,
            "PoolOptions::deadline passed after " + std::to_string(f.attempts) + " attempts",
            f.error, f.attempts};
  }
  void report(std::exception_ptr e) const noexcept {
    if (options_.processors.on_error) options_.processors.on_error(std::move(e));
  }

  // ---- processors (on their threads) ----
  void prepare(std::span<Message<T>> chunk) noexcept {
    if (!options_.prepare_messages || past_stop_deadline()) return;
    try {
      options_.prepare_messages(chunk);
    } catch (...) {
      const std::exception_ptr e = std::current_exception();
      report(e);
      for (Message<T>& m : chunk) {
        m.fail_with({MessageFailure::Threw, "prepare_messages threw: " + what_of(e), e, 1});
      }
    }
  }
  void handle(Message<T>& m) {
    if (m.returned_ || m.failed()) return;  // failed by prepare_messages, or by an earlier attempt
    if (past_stop_deadline()) {
      fail_for_shutdown(m);
      m.returned_ = true;
      return;
    }
    try {
      options_.handle_message(m);
    } catch (...) {
      if (m.acknowledger_ != nullptr) m.acknowledger_->attempt_failed(m);
      throw;  // the pool retries, or gives up: processor_failed()
    }
    m.returned_ = true;
  }
  void processor_failed(Message<T>& m, const Failure& f) {
    if (m.returned_) return;  // returned past the deadline: its status stands
    m.fail_with(failure_of("handle_message", f));
  }
  // Routes what handle_message sent to a batcher, then acknowledges the rest of the chunk.
  void chunk_done(std::span<Message<T>> chunk, ProcessorOutput& output) noexcept {
    bool forwarded = false;
    for (Message<T>& m : chunk) {
      if (!m.ok() || m.batcher_.empty()) continue;
      const std::size_t b = batcher_index(m.batcher_);
      if (b == kNone) {
        m.fail_with({MessageFailure::NoBatcher, "no batcher named '" + m.batcher_ + "'", {}, 0});
        continue;
      }
      auto& out = output.to_batcher[b];
      if (!out) out.emplace(batchers_[b]->producer());
      // Waits for room (backpressure). Never Closed: batchers close once every processor ended.
      (void)out->push(std::move(m));
      m.gone_ = true;
      forwarded = true;
    }
    if (!forwarded) {
      settle(chunk);
      return;
    }
    for (Message<T>& m : chunk) {
      if (!m.gone_) output.done.push_back(std::move(m));
    }
    settle(output.done);
    output.done.clear();
  }

  // ---- batchers (on their processors) ----
  void handle_batch(std::size_t b, typename NamedBatcher::Batch& batch) {
    std::vector<Message<T>>& messages = batch.events;
    if (messages.empty() || messages.front().gone_) return;
    if (past_stop_deadline()) {
      for (Message<T>& m : messages) fail_for_shutdown(m);
    } else {
      const BatchInfo info{options_.batchers[b].name, batch.key, messages.size(), batch.trigger};
      try {
        options_.handle_batch(std::span<Message<T>>(messages), info);
      } catch (...) {
        for (Message<T>& m : messages) {
          if (m.acknowledger_ != nullptr) m.acknowledger_->attempt_failed(m);
        }
        throw;  // the pool retries, or gives up: batch_failed()
      }
    }
    settle(messages);
    for (Message<T>& m : messages) m.gone_ = true;  // a late return's dead letter: nothing to do
  }
  void batch_failed(typename NamedBatcher::Batch& batch, const Failure& f) {
    std::vector<Message<T>>& messages = batch.events;
    if (messages.empty() || messages.front().gone_) return;
    const MessageError error = failure_of("handle_batch", f);
    for (Message<T>& m : messages) m.fail_with(error);
    settle(messages);
    for (Message<T>& m : messages) m.gone_ = true;
  }

  // ---- the input's drops and refusals (on the pushing thread) ----
  void dropped(Message<T>&& message, DropReason why) noexcept {
    Message<T> m(std::move(message));
    switch (why) {
      case DropReason::Oldest:
        m.fail_with(
            {MessageFailure::Dropped, "dropped for a newer message (Overflow::DropOldest)", {}, 0});
        break;
      case DropReason::Rejected:
        m.fail_with({MessageFailure::Refused, "the input is full (Overflow::Reject)", {}, 0});
        break;
      case DropReason::Closed:
        m.fail_with({MessageFailure::Refused, "the pipeline is closed", {}, 0});
        break;
      case DropReason::Destroyed:
        m.fail_with({MessageFailure::Shutdown, "still in the input at destruction", {}, 0});
        break;
      case DropReason::Discarded:  // not from the pipeline's inputs (no router, no broadcast)
      case DropReason::Cancelled:
        m.fail_with({MessageFailure::Dropped, "dropped by the input's dispatch mode", {}, 0});
        break;
    }
    settle(std::span<Message<T>>(&m, 1));
  }

  // Acknowledges messages that are done: handle_failed for the failed ones, ack() per
  // acknowledger, then the ledger (after the acknowledgers: a barrier waits for them). Reorders.
  void settle(std::span<Message<T>> done) noexcept;
  void count(std::span<const Message<T>> ok, std::span<const Message<T>> failed) noexcept;

  const PipelineOptions<T> options_;
  detail::Ledger ledger_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::int64_t> stop_deadline_{0};  // Clock ticks; read after stopping_ (acquire)
  std::mutex stop_mutex_;
  bool feed_stopped_ = false;  // guarded by stop_mutex_ (and the constructor)
  static constexpr std::size_t kFailureKinds = 7;
  static_assert(static_cast<std::size_t>(MessageFailure::NoBatcher) == kFailureKinds - 1);
  struct alignas(detail::kCacheLine) Counters {
    std::atomic<std::uint64_t> successful{0};
    std::atomic<std::uint64_t> by_kind[kFailureKinds] = {};  // failed, per MessageFailure
  } counters_;
  std::unique_ptr<Shared> shared_;                       // the input without partition_by
  std::unique_ptr<Partitioned> partitioned_;             // the input with it
  std::vector<std::unique_ptr<NamedBatcher>> batchers_;  // built before, joined after, processors_
  std::optional<Processors> processors_;
  std::unique_ptr<PipelineFeed<T>> feed_;
};

template <class T>
class Pipeline<T>::TestAcknowledger final : public Acknowledger<T> {
 public:
  explicit TestAcknowledger(std::size_t expected) : left_(expected) {}
  std::future<TestAck<T>> future() { return promise_.get_future(); }
  // Completes the promise and frees itself once every expected message was acknowledged.
  void ack(std::span<Message<T>> successful, std::span<Message<T>> failed) override {
    bool last = false;
    {
      const std::lock_guard lock(mutex_);
      for (Message<T>& m : successful) result_.successful.push_back(std::move(m));
      for (Message<T>& m : failed) result_.failed.push_back(std::move(m));
      left_ -= successful.size() + failed.size();
      last = left_ == 0;
    }
    if (last) finish();
  }
  void finish() {
    promise_.set_value(std::move(result_));
    delete this;
  }

 private:
  std::mutex mutex_;
  std::size_t left_;
  TestAck<T> result_;
  std::promise<TestAck<T>> promise_;
};

template <class T>
std::future<TestAck<T>> Pipeline<T>::test_messages(std::vector<Message<T>> messages) {
  auto* acknowledger = new TestAcknowledger(messages.size());
  std::future<TestAck<T>> f = acknowledger->future();
  if (messages.empty()) {
    acknowledger->finish();
    return f;
  }
  for (Message<T>& m : messages) {
    m.acknowledger_ = acknowledger;
    (void)push(std::move(m));  // refused: acknowledged as failed (Refused)
  }
  return f;
}

template <class T>
void Pipeline<T>::settle(std::span<Message<T>> done) noexcept {
  if (done.empty()) return;
  const auto mid =
      std::stable_partition(done.begin(), done.end(), [](const Message<T>& m) { return m.ok(); });
  const auto n_ok = static_cast<std::size_t>(mid - done.begin());
  const std::span<Message<T>> ok = done.first(n_ok);
  const std::span<Message<T>> failed = done.subspan(n_ok);
  if (!failed.empty() && options_.handle_failed) {
    try {
      options_.handle_failed(failed);
    } catch (...) {
      report(std::current_exception());
    }
  }
  count(ok, failed);
  EpochRuns epochs;  // before the acknowledgers, which may move from the messages
  for (const Message<T>& m : done) epochs.add(m.epoch_);
  auto call = [this](Acknowledger<T>* a, std::span<Message<T>> s, std::span<Message<T>> f) {
    if (a == nullptr) return;
    try {
      a->ack(s, f);
    } catch (...) {
      report(std::current_exception());
    }
  };
  Acknowledger<T>* const first = done.front().acknowledger_;
  const bool one = std::all_of(done.begin(), done.end(),
                               [first](const Message<T>& m) { return m.acknowledger_ == first; });
  if (one) {
    call(first, ok, failed);
  } else {
    // Broadway's grouping: one ack() per acknowledger. Groups are found before any ack() runs (a
    // test's acknowledger frees itself in its last one).
    const std::less<Acknowledger<T>*> before;
    auto by = [&before](const Message<T>& a, const Message<T>& b) {
      return before(a.acknowledger_, b.acknowledger_);
    };
    std::stable_sort(ok.begin(), ok.end(), by);
    std::stable_sort(failed.begin(), failed.end(), by);
    struct Group {
      Acknowledger<T>* a;
      std::size_t ok_begin, ok_end, failed_begin, failed_end;
    };
    std::vector<Group> groups;
    std::size_t i = 0;
    std::size_t j = 0;
    while (i < ok.size() || j < failed.size()) {
      Acknowledger<T>* a = i == ok.size() ? failed[j].acknowledger_
                           : j == failed.size()
                               ? ok[i].acknowledger_
                               : std::min(ok[i].acknowledger_, failed[j].acknowledger_, before);
      const std::size_t i0 = i;
      const std::size_t j0 = j;
      while (i < ok.size() && ok[i].acknowledger_ == a) ++i;
      while (j < failed.size() && failed[j].acknowledger_ == a) ++j;
      groups.push_back({a, i0, i, j0, j});
    }
    for (const Group& g : groups) {
      call(g.a, ok.subspan(g.ok_begin, g.ok_end - g.ok_begin),
           failed.subspan(g.failed_begin, g.failed_end - g.failed_begin));
    }
  }
  epochs.leave(ledger_);
}

template <class T>
void Pipeline<T>::count(std::span<const Message<T>> ok,
                        std::span<const Message<T>> failed) noexcept {
  // relaxed throughout: statistics
  if (!ok.empty()) counters_.successful.fetch_add(ok.size(), std::memory_order_relaxed);
  for (const Message<T>& m : failed) {
    counters_.by_kind[static_cast<std::size_t>(m.error()->kind)].fetch_add(
        1, std::memory_order_relaxed);
  }
}

template <class T>
PipelineStats Pipeline<T>::stats() const {
  PipelineStats s;
  s.successful = counters_.successful.load(std::memory_order_relaxed);  // statistics: relaxed
  std::uint64_t* const kinds[kFailureKinds] = {&s.marked,  &s.threw,   &s.expired,   &s.shutdown,
                                               &s.dropped, &s.refused, &s.no_batcher};
  for (std::size_t k = 0; k < kFailureKinds; ++k) {
    *kinds[k] = counters_.by_kind[k].load(std::memory_order_relaxed);
    s.failed += *kinds[k];
  }
  s.input = shared_ ? shared_->stats() : partitioned_->stats().total();
  s.processors = processors_->stats();
  for (std::size_t b = 0; b < batchers_.size(); ++b) {
    s.batchers.emplace_back(options_.batchers[b].name, batchers_[b]->stats());
  }
  return s;
}

}  // namespace pushstage
