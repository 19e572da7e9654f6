// pipeline_test.cpp: Pipeline<T>: every message acknowledged exactly once with its final status,
// named batchers, partition order, failures (marked, thrown, unknown batcher), invalid options,
// prepare_messages, ordered close, the input's overflow (Reject, DropOldest), the processors'
// deadline, rate limit and resize(), stop with a deadline, barriers, the test helpers, ranges.
#include "pushstage/stages/pipeline.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "messages.hpp"
#include "pushstage/dispatcher.hpp"
#include "pushstage/pool/rate_limiter.hpp"
#include "pushstage/stages/message.hpp"
#include "pushstage/stages/pipeline_options.hpp"
#include "pushstage/stages/ranges.hpp"

namespace pushstage {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Records each acknowledgement of messages whose data is an index in [0, n): how often, with
// which status, in which order, and how many ack() calls.
class Recorder final : public Acknowledger<int> {
 public:
  explicit Recorder(std::size_t n) : times_(n) {
    for (auto& t : times_) t.store(0, std::memory_order_relaxed);
  }
  void ack(std::span<Message<int>> successful, std::span<Message<int>> failed) override {
    calls_.fetch_add(1, std::memory_order_relaxed);
    const std::lock_guard lock(mutex_);
    for (const Message<int>& m : successful) {
      EXPECT_TRUE(m.ok());
      record(m, true);
    }
    for (const Message<int>& m : failed) {
      EXPECT_TRUE(m.failed());
      record(m, false);
    }
  }
  void attempt_failed(Message<int>& /*message*/) noexcept override {
    attempts_failed_.fetch_add(1, std::memory_order_relaxed);
  }

  // The count of acknowledgements of message i (relaxed: read after join or a barrier).
  [[nodiscard]] int times(std::size_t i) const { return times_[i].load(std::memory_order_relaxed); }
  [[nodiscard]] bool each_once() const {
    return std::all_of(times_.begin(), times_.end(),
                       [](const auto& t) { return t.load(std::memory_order_relaxed) == 1; });
  }
  [[nodiscard]] std::vector<int> order() const {
    const std::lock_guard lock(mutex_);
    return order_;
  }
  [[nodiscard]] std::map<int, MessageFailure> failures() const {
    const std::lock_guard lock(mutex_);
    return failures_;
  }
  [[nodiscard]] std::size_t succeeded() const {
    const std::lock_guard lock(mutex_);
    return order_.size() - failures_.size();
  }
  [[nodiscard]] unsigned attempts_failed() const {
    return attempts_failed_.load(std::memory_order_relaxed);
  }

 private:
  void record(const Message<int>& m, bool ok) {
    times_.at(static_cast<std::size_t>(m.data())).fetch_add(1, std::memory_order_relaxed);
    order_.push_back(m.data());
    if (!ok) failures_[m.data()] = m.error()->kind;
  }

  std::vector<std::atomic<int>> times_;
  std::atomic<unsigned> calls_{0};
  std::atomic<unsigned> attempts_failed_{0};
  mutable std::mutex mutex_;
  std::vector<int> order_;                  // guarded by mutex_
  std::map<int, MessageFailure> failures_;  // guarded by mutex_
};

PipelineOptions<int> base_options(std::size_t consumers, std::size_t max_demand) {
  PipelineOptions<int> o;
  o.processors.consumers = consumers;
  o.processors.pin = false;
  o.processors.max_demand = max_demand;
  o.handle_message = [](Message<int>&) {};
  return o;
}

// A batcher named `name` of batches of `size`, flushed after an hour (in effect: at close), on one
// unpinned processor.
PipelineBatcher<int> batcher(std::string name, std::size_t size) {
  PipelineBatcher<int> b;
  b.name = std::move(name);
  b.options.batch_size = size;
  b.options.batch_timeout = 1h;
  b.options.processors.pin = false;
  return b;
}

void push_all(Pipeline<int>& p, Recorder& r, int n) {
  for (int i = 0; i < n; ++i) ASSERT_EQ(p.push(Message<int>(i, &r)), PushResult::Pushed);
}

// Builds a pipeline, pushes messages 0..n-1 acknowledged to r, closes it and waits for it: each
// must have been acknowledged once. Returns its stats.
PipelineStats run(const PipelineOptions<int>& o, Recorder& r, int n) {
  Pipeline<int> p(o);
  push_all(p, r, n);
  p.close();
  p.join();
  EXPECT_TRUE(r.each_once());
  return p.stats();
}

// A feed that pushes nothing and tells when stop() reached it: stop() stops the feed right after
// it has marked the pipeline as stopping, so a handler that waits for this knows the deadline
// is in force.
class StopSignal final : public PipelineFeed<int> {
 public:
  explicit StopSignal(std::atomic<bool>& stopped) : stopped_(&stopped) {}
  void start(Pipeline<int>& /*into*/) override {}
  void stop() noexcept override {
    stopped_->store(true, std::memory_order_release);
    stopped_->notify_all();
  }

 private:
  std::atomic<bool>* stopped_;
};

TEST(Pipeline, EveryMessageIsAcknowledgedOnceWithItsStatus) {
  constexpr int kN = 2000;
  Recorder r(kN);
  std::mutex m;
  std::vector<int> failed_seen;
  PipelineOptions<int> o = base_options(2, 16);
  o.handle_message = [](Message<int>& msg) {
    if (msg.data() % 3 == 0) msg.fail("divisible by 3");
  };
  o.handle_failed = [&](std::span<Message<int>> failed) {
    const std::lock_guard lock(m);
    for (const Message<int>& msg : failed) {
      EXPECT_EQ(msg.error()->kind, MessageFailure::Marked);
      EXPECT_EQ(msg.error()->reason, "divisible by 3");
      failed_seen.push_back(msg.data());
    }
  };
  const PipelineStats s = run(o, r, kN);
  const auto failures = r.failures();
  EXPECT_EQ(failures.size(), static_cast<std::size_t>((kN + 2) / 3));
  for (const auto& [i, kind] : failures) {
    EXPECT_EQ(i % 3, 0);
    EXPECT_EQ(kind, MessageFailure::Marked);
  }
  std::sort(failed_seen.begin(), failed_seen.end());
  std::vector<int> expected;
  for (int i = 0; i < kN; i += 3) expected.push_back(i);
  EXPECT_EQ(failed_seen, expected);
  EXPECT_EQ(s.successful, static_cast<std::uint64_t>(kN) - expected.size());
  EXPECT_EQ(s.failed, expected.size());
  EXPECT_EQ(s.marked, expected.size());
}

// Messages go to the batcher handle_message names, grouped by batch key; each is acknowledged
// once, after handle_batch returned for its batch, with what handle_batch made of it.
TEST(Pipeline, NamedBatchersGetRoutedMessagesByKeyAndAckAfterTheBatch) {
  constexpr int kN = 600;
  Recorder r(kN);
  std::vector<std::atomic<bool>> batched(kN);
  std::mutex m;
  std::map<std::string, std::size_t> per_batcher;
  PipelineOptions<int> o = base_options(2, 8);
  o.handle_message = [](Message<int>& msg) {
    msg.put_batcher(msg.data() % 2 == 0 ? "even" : "odd");
    msg.put_batch_key(std::to_string(msg.data() % 3));
  };
  for (const char* name : {"even", "odd"}) {
    o.batchers.push_back(batcher(name, 10));
  }
  o.handle_batch = [&](std::span<Message<int>> batch, const BatchInfo& info) {
    EXPECT_EQ(info.size, batch.size());
    EXPECT_LE(batch.size(), 10U);
    const std::lock_guard lock(m);
    per_batcher[std::string(info.batcher)] += batch.size();
    for (Message<int>& msg : batch) {
      EXPECT_EQ(msg.batcher(), info.batcher);
      EXPECT_EQ(msg.data() % 2 == 0 ? "even" : "odd", info.batcher);
      EXPECT_EQ(std::to_string(msg.data() % 3), info.batch_key);
      batched[static_cast<std::size_t>(msg.data())].store(true, std::memory_order_relaxed);
      if (msg.data() % 5 == 0) msg.fail("multiple of 5");
    }
  };
  // Checked inside ack(): the batch was handled before its acknowledgement.
  class Checking final : public Acknowledger<int> {
   public:
    Checking(Recorder& r, std::vector<std::atomic<bool>>& batched) : r_(&r), batched_(&batched) {}
    void ack(std::span<Message<int>> ok, std::span<Message<int>> failed) override {
      for (const auto* s : {&ok, &failed}) {
        for (const Message<int>& msg : *s) {
          EXPECT_TRUE(
              (*batched_)[static_cast<std::size_t>(msg.data())].load(std::memory_order_relaxed));
        }
      }
      r_->ack(ok, failed);
    }

   private:
    Recorder* r_;
    std::vector<std::atomic<bool>>* batched_;
  } checking(r, batched);
  Pipeline<int> p(o);
  for (int i = 0; i < kN; ++i) ASSERT_EQ(p.push(Message<int>(i, &checking)), PushResult::Pushed);
  p.close();
  p.join();
  EXPECT_TRUE(r.each_once());
  EXPECT_EQ(per_batcher["even"], static_cast<std::size_t>(kN / 2));
  EXPECT_EQ(per_batcher["odd"], static_cast<std::size_t>(kN / 2));
  EXPECT_EQ(r.failures().size(), static_cast<std::size_t>(kN / 5));
  EXPECT_EQ(p.batcher("even").stats().events, static_cast<std::uint64_t>(kN / 2));
  EXPECT_THROW((void)p.batcher("none"), std::out_of_range);
}

// A batcher with a weight function: no batch weighs more than batch_weight (each message weighs
// its data), one processor keeps push order, and every message is acknowledged once.
TEST(Pipeline, BatchersBatchByWeight) {
  constexpr int kN = 200;
  Recorder r(kN);
  std::mutex m;
  std::vector<std::vector<int>> batches;
  PipelineOptions<int> o = base_options(1, 8);
  o.handle_message = [](Message<int>& msg) { msg.put_batcher("w"); };
  PipelineBatcher<int> w = batcher("w", 1000);
  w.options.batch_weight = 500;
  w.weight_of = [](const Message<int>& msg) { return static_cast<std::uint64_t>(msg.data()); };
  o.batchers.push_back(w);
  o.handle_batch = [&](std::span<Message<int>> batch, const BatchInfo&) {
    const std::lock_guard lock(m);
    std::vector<int> values;
    for (const Message<int>& msg : batch) values.push_back(msg.data());
    batches.push_back(values);
  };
  (void)run(o, r, kN);
  std::vector<int> all;
  for (const std::vector<int>& b : batches) {
    EXPECT_LE(std::accumulate(b.begin(), b.end(), 0), 500);
    all.insert(all.end(), b.begin(), b.end());
  }
  std::vector<int> expected(kN);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(all, expected);
  EXPECT_GE(batches.size(), static_cast<std::size_t>(199 * 200 / 2 / 500));
}

// handle_batch throwing on every attempt fails each message of the batch (Threw, with the
// batcher's attempts); the acknowledger hears each failed attempt for each message.
TEST(Pipeline, AThrowingBatchFailsEachOfItsMessages) {
  constexpr int kN = 12;
  Recorder r(kN);
  PipelineOptions<int> o = base_options(1, 4);
  o.handle_message = [](Message<int>& msg) { msg.put_batcher("b"); };
  PipelineBatcher<int> b = batcher("b", 4);
  b.options.processors.retry.max_attempts = 2;
  b.options.processors.retry.backoff = 0ns;
  o.batchers.push_back(b);
  o.handle_batch = [](std::span<Message<int>> batch, const BatchInfo&) {
    if (batch.front().data() == 4) throw std::runtime_error("disk full");
  };
  const PipelineStats s = run(o, r, kN);
  const auto failures = r.failures();
  ASSERT_EQ(failures.size(), 4U);
  for (int i = 4; i < 8; ++i) EXPECT_EQ(failures.at(i), MessageFailure::Threw);
  EXPECT_EQ(r.attempts_failed(), 2U * 4U);
  EXPECT_EQ(s.threw, 4U);
  EXPECT_EQ(s.successful, 8U);
}

// With partition_by, one processor handles each partition in push order, and (without a
// batcher) acknowledges it in that order too.
TEST(Pipeline, PartitionByKeepsPushOrderPerPartition) {
  constexpr int kN = 4000;
  constexpr std::size_t kParts = 3;
  Recorder r(kN);
  std::mutex m;
  std::vector<std::vector<int>> handled(kParts);
  PipelineOptions<int> o = base_options(kParts, 7);
  o.partition_by = [](const Message<int>& msg) { return static_cast<std::size_t>(msg.data()); };
  o.handle_message = [&](Message<int>& msg) {
    const std::lock_guard lock(m);
    handled[static_cast<std::size_t>(msg.data()) % kParts].push_back(msg.data());
  };
  (void)run(o, r, kN);
  std::vector<std::vector<int>> acked(kParts);
  for (const int i : r.order()) acked[static_cast<std::size_t>(i) % kParts].push_back(i);
  for (std::size_t k = 0; k < kParts; ++k) {
    EXPECT_EQ(handled[k].size(), (kN - k + kParts - 1) / kParts);
    EXPECT_TRUE(std::is_sorted(handled[k].begin(), handled[k].end())) << "partition " << k;
    EXPECT_EQ(acked[k], handled[k]) << "partition " << k;
  }
}

// A handler that throws on every attempt: the acknowledger hears each failed attempt, then one
// acknowledgement as Threw with the attempts made. An unknown batcher fails the message.
TEST(Pipeline, ThrowsAndUnknownBatchersFailTheMessageOnce) {
  constexpr int kN = 40;
  Recorder r(kN);
  PipelineOptions<int> o = base_options(1, 4);
  o.processors.retry.max_attempts = 3;
  o.processors.retry.backoff = 0ns;
  std::atomic<int> errors{0};
  o.processors.on_error = [&](std::exception_ptr) { errors.fetch_add(1); };
  o.handle_message = [](Message<int>& msg) {
    if (msg.data() % 4 == 1) throw std::runtime_error("boom");
    if (msg.data() % 4 == 2) msg.put_batcher("nowhere");
  };
  std::mutex m;
  std::vector<MessageError> errors_seen;
  o.handle_failed = [&](std::span<Message<int>> failed) {
    const std::lock_guard lock(m);
    for (const Message<int>& msg : failed) errors_seen.push_back(*msg.error());
  };
  const PipelineStats s = run(o, r, kN);
  const auto failures = r.failures();
  ASSERT_EQ(failures.size(), static_cast<std::size_t>(kN / 2));
  for (const auto& [i, kind] : failures) {
    EXPECT_EQ(kind, i % 4 == 1 ? MessageFailure::Threw : MessageFailure::NoBatcher) << i;
  }
  EXPECT_EQ(r.attempts_failed(), 3U * (kN / 4));
  ASSERT_EQ(errors_seen.size(), static_cast<std::size_t>(kN / 2));
  for (const MessageError& e : errors_seen) {
    if (e.kind == MessageFailure::Threw) {
      EXPECT_EQ(e.attempts, 3U);
      EXPECT_EQ(e.reason, "handle_message threw: boom");
      EXPECT_NE(e.error, nullptr);
    } else {
      EXPECT_EQ(e.reason, "no batcher named 'nowhere'");
    }
  }
  EXPECT_EQ(s.threw, static_cast<std::uint64_t>(kN / 4));
  EXPECT_EQ(s.no_batcher, static_cast<std::uint64_t>(kN / 4));
  EXPECT_EQ(s.successful, static_cast<std::uint64_t>(kN / 2));
}

TEST(Pipeline, InvalidOptionsNameTheField) {
  auto message_of = [](PipelineOptions<int> o) {
    return test::message_of([&] { Pipeline<int> p(std::move(o)); });
  };
  PipelineOptions<int> o = base_options(1, 1);
  o.handle_message = {};
  EXPECT_EQ(message_of(o), "PipelineOptions::handle_message must not be empty");

  o = base_options(0, 1);
  EXPECT_EQ(message_of(o).rfind("PipelineOptions::processors.consumers must be in [1, 65536]", 0),
            0U)
      << message_of(o);

  o = base_options(1, 1);
  o.batchers.resize(2);
  o.batchers[0].name = "a";
  o.batchers[1].name = "b";
  EXPECT_EQ(message_of(o),
            "PipelineOptions::handle_batch must not be empty when there are 2 "
            "batchers");
  o.handle_batch = [](std::span<Message<int>>, const BatchInfo&) {};
  o.batchers[1].name = "";
  EXPECT_EQ(message_of(o), "PipelineOptions::batchers[1].name must not be empty");
  o.batchers[1].name = "a";
  EXPECT_EQ(message_of(o),
            "PipelineOptions::batchers[1].name must be unique; 'a' is also batchers[0].name");
  o.batchers[1].name = "b";
  o.batchers[1].options.batch_size = 0;
  EXPECT_EQ(message_of(o),
            "PipelineOptions::batchers[1].options.batch_size must be in [1, 65536]; got 0");
  o.batchers[1].options.batch_size = 1;
  o.batchers[1].options.batch_weight = 3;
  EXPECT_EQ(message_of(o),
            "PipelineOptions::batchers[1].options.batch_weight must be 0 without a "
            "weight function; got 3");
  o.batchers[1].options.batch_weight = 0;
  o.batchers[0].options.processors.pin = false;
  o.batchers[1].options.processors.pin = false;
  o.batchers[1].options.processors.consumers = 0;
  EXPECT_EQ(message_of(o).rfind(
                "PipelineOptions::batchers[1].options.processors.consumers must be in", 0),
            0U)
      << message_of(o);
  o.batchers[1].options.processors.consumers = 1;
  o.batchers[0].options.input.overflow = Overflow::Reject;
  EXPECT_EQ(message_of(o),
            "PipelineOptions::batchers[0].options.input.overflow must be "
            "Overflow::Block (a pipeline acknowledges every message; a batcher "
            "must not drop one)");
  o.batchers[0].options.input.overflow = Overflow::Block;
  o.shutdown = -1ns;
  EXPECT_EQ(message_of(o),
            "PipelineOptions::shutdown must be in [0, 24 h] = [0, 86400000000000] ns; got -1 ns");
  o.shutdown = 1s;
  o.input.spin = -1ns;
  EXPECT_EQ(message_of(o).rfind("PipelineOptions::input.spin must be >= 0 ns", 0), 0U)
      << message_of(o);
  o.input = PipelineOptions<int>::default_input();
  EXPECT_EQ(message_of(o), "accepted");
}

// prepare_messages sees each chunk before handle_message sees any message of it; a throw fails
// the whole chunk (Threw) without calling handle_message.
TEST(Pipeline, PrepareMessagesSeesEachChunkBeforeItsMessages) {
  constexpr int kN = 300;
  Recorder r(kN);
  std::atomic<std::size_t> chunks{0};
  std::atomic<int> handled{0};
  PipelineOptions<int> o = base_options(2, 10);
  o.prepare_messages = [&](std::span<Message<int>> chunk) {
    EXPECT_FALSE(chunk.empty());
    EXPECT_LE(chunk.size(), 10U);
    chunks.fetch_add(1, std::memory_order_relaxed);
    for (Message<int>& msg : chunk) {
      EXPECT_FALSE(msg.metadata("prepared").has_value());
      msg.put_metadata("prepared", "yes");
    }
    if (std::any_of(chunk.begin(), chunk.end(),
                    [](const Message<int>& msg) { return msg.data() == 77; })) {
      throw std::runtime_error("no rows");
    }
  };
  o.handle_message = [&](Message<int>& msg) {
    EXPECT_EQ(msg.metadata("prepared"), "yes");
    EXPECT_NE(msg.data(), 77);
    handled.fetch_add(1, std::memory_order_relaxed);
  };
  (void)run(o, r, kN);
  const auto failures = r.failures();
  ASSERT_FALSE(failures.empty());
  EXPECT_TRUE(failures.contains(77));
  for (const auto& [i, kind] : failures) EXPECT_EQ(kind, MessageFailure::Threw);
  EXPECT_EQ(static_cast<std::size_t>(handled.load()) + failures.size(),
            static_cast<std::size_t>(kN));
  EXPECT_GE(chunks.load(), static_cast<std::size_t>(kN / 10));
}

// close(): the processors drain, then each batcher flushes what it holds (BatchTrigger::Close)
// and its processors drain; join() returns once all of it is acknowledged. No handle_batch call
// starts before the last handle_message returned (the batch timeout is an hour).
TEST(Pipeline, CloseDrainsProcessorsThenBatchersInOrder) {
  constexpr int kN = 95;
  Recorder r(kN);
  std::atomic<int> handled{0};
  std::mutex m;
  std::vector<std::pair<BatchTrigger, std::vector<int>>> batches;
  PipelineOptions<int> o = base_options(1, 4);
  o.handle_message = [&](Message<int>& msg) {
    msg.put_batcher("out");
    handled.fetch_add(1, std::memory_order_relaxed);
  };
  o.batchers.push_back(batcher("out", 1000));
  o.handle_batch = [&](std::span<Message<int>> batch, const BatchInfo& info) {
    EXPECT_EQ(handled.load(std::memory_order_relaxed), kN);
    const std::lock_guard lock(m);
    std::vector<int> values;
    for (const Message<int>& msg : batch) values.push_back(msg.data());
    batches.emplace_back(info.trigger, values);
  };
  (void)run(o, r, kN);
  ASSERT_EQ(batches.size(), 1U);
  EXPECT_EQ(batches[0].first, BatchTrigger::Close);
  std::vector<int> all(kN);
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(batches[0].second, all);  // one processor: push order
}

// A push after close() is refused, and the message acknowledged (failed, Refused) at once.
TEST(Pipeline, APushAfterCloseIsAcknowledgedAsRefused) {
  Recorder r(1);
  Pipeline<int> p(base_options(1, 1));
  p.close();
  EXPECT_EQ(p.push(Message<int>(0, &r)), PushResult::Closed);
  EXPECT_TRUE(r.each_once());
  EXPECT_EQ(r.failures().at(0), MessageFailure::Refused);
  EXPECT_EQ(p.stats().refused, 1U);
}

// A full input under Overflow::Reject: push() refuses and acknowledges the message (Refused) at
// once; try_push() leaves it with the caller, unacknowledged, and holds no barrier up.
TEST(Pipeline, AFullInputRefusesAndAcknowledgesAtOnce) {
  constexpr int kN = 10;
  Recorder r(kN + 1);
  PipelineOptions<int> o = base_options(1, 1);
  o.input.capacity = 4;
  o.input.overflow = Overflow::Reject;
  Pipeline<int> p(o);
  p.processors().pause();  // may still take one round: 4 or 5 accepted
  int refused = 0;
  for (int i = 0; i < kN; ++i) {
    refused += p.push(Message<int>(i, &r)) == PushResult::Rejected ? 1 : 0;
  }
  EXPECT_GE(refused, kN - 5);
  Message<int> kept(kN, &r);
  EXPECT_EQ(p.try_push(kept), PushResult::Rejected);
  EXPECT_EQ(kept.data(), kN);  // still the caller's
  EXPECT_EQ(r.times(kN), 0);
  EXPECT_EQ(r.failures().size(), static_cast<std::size_t>(refused));
  for (const auto& [i, kind] : r.failures()) EXPECT_EQ(kind, MessageFailure::Refused);
  p.processors().resume();
  p.barrier().get();  // the accepted ones only
  for (int i = 0; i < kN; ++i) EXPECT_EQ(r.times(static_cast<std::size_t>(i)), 1) << i;
  p.close();
  p.join();
  EXPECT_EQ(p.stats().successful, static_cast<std::uint64_t>(kN - refused));
  EXPECT_EQ(p.stats().refused, static_cast<std::uint64_t>(refused));
}

// The input under Overflow::DropOldest: a push into a full input drops the oldest message, which is
// acknowledged at once as failed (Dropped, through handle_failed); nothing else is lost: the
// messages handled and the ones dropped add up to those pushed.
TEST(Pipeline, DropOldestAcknowledgesTheDroppedMessageAsFailed) {
  constexpr int kN = 10;
  constexpr int kCapacity = 4;
  Recorder r(kN);
  std::atomic<int> handled{0};
  std::atomic<int> failed_seen{0};
  PipelineOptions<int> o = base_options(1, 1);
  o.input.capacity = kCapacity;
  o.input.overflow = Overflow::DropOldest;
  o.processors.start_paused = true;  // nothing leaves the input until resume()
  o.handle_message = [&](Message<int>&) { handled.fetch_add(1); };
  o.handle_failed = [&](std::span<Message<int>> failed) {
    for (const Message<int>& msg : failed) {
      EXPECT_EQ(msg.error()->kind, MessageFailure::Dropped);
      EXPECT_EQ(msg.error()->reason, "dropped for a newer message (Overflow::DropOldest)");
      failed_seen.fetch_add(1);
    }
  };
  Pipeline<int> p(o);
  int dropped = 0;
  for (int i = 0; i < kN; ++i) {
    const PushResult result = p.push(Message<int>(i, &r));
    ASSERT_TRUE(result == PushResult::Pushed || result == PushResult::DroppedOldest) << i;
    dropped += result == PushResult::DroppedOldest ? 1 : 0;
  }
  EXPECT_EQ(dropped, kN - kCapacity);
  // One producer: the oldest are the first pushed, each acknowledged inside the push that dropped
  // it.
  std::vector<int> first(static_cast<std::size_t>(dropped));
  std::iota(first.begin(), first.end(), 0);
  EXPECT_EQ(r.order(), first);
  p.processors().resume();
  p.close();
  p.join();
  EXPECT_TRUE(r.each_once());
  EXPECT_EQ(handled.load() + dropped, kN);
  EXPECT_EQ(failed_seen.load(), dropped);
  const auto failures = r.failures();
  ASSERT_EQ(failures.size(), static_cast<std::size_t>(dropped));
  for (const auto& [i, kind] : failures) {
    EXPECT_LT(i, dropped);
    EXPECT_EQ(kind, MessageFailure::Dropped);
  }
  const PipelineStats s = p.stats();
  EXPECT_EQ(s.dropped, static_cast<std::uint64_t>(dropped));
  EXPECT_EQ(s.failed, static_cast<std::uint64_t>(dropped));
  EXPECT_EQ(s.successful, static_cast<std::uint64_t>(kN - dropped));
  EXPECT_EQ(s.input.dropped, static_cast<std::uint64_t>(dropped));
}

// The processors' PoolOptions::deadline. A message whose deadline passed before its handler
// started fails (DeadlineExceeded, 0 attempts) unhandled; one whose handler throws past it fails
// without a retry (1 attempt); one whose handler returns past it keeps its status, as its work is
// done (the pool still counts it expired). Each is acknowledged once; the rest succeed. The
// deadline is generous for the messages that must meet it; those that must miss it sleep past it.
TEST(Pipeline, ProcessorDeadlineFailsWhatItMissesAndAcknowledgesOnce) {
  constexpr auto kDeadline = 500ms;
  constexpr int kN = 12;  // chunks of 4: {0..3} {4..7} {8..11}
  Recorder r(kN);
  std::vector<std::atomic<int>> calls(kN);
  PipelineOptions<int> o = base_options(1, 4);
  o.processors.min_demand = 0;       // one chunk is all 4 messages taken together
  o.processors.start_paused = true;  // so that the first take finds all 12 waiting
  o.processors.deadline = kDeadline;
  o.processors.retry.max_attempts = 3;
  o.processors.retry.backoff = 0ns;
  o.handle_message = [&](Message<int>& msg) {
    calls[static_cast<std::size_t>(msg.data())].fetch_add(1);
    if (msg.data() == 0 || msg.data() == 4) std::this_thread::sleep_for(kDeadline + 10ms);
    if (msg.data() == 0) throw std::runtime_error("late and failing");
  };
  std::mutex m;
  std::map<int, MessageError> errors;
  o.handle_failed = [&](std::span<Message<int>> failed) {
    const std::lock_guard lock(m);
    for (const Message<int>& msg : failed) errors[msg.data()] = *msg.error();
  };
  Pipeline<int> p(o);
  push_all(p, r, kN);
  p.processors().resume();
  p.close();
  p.join();
  EXPECT_TRUE(r.each_once());
  const std::map<int, int> expected_attempts = {{0, 1}, {1, 0}, {2, 0}, {3, 0},
                                                {5, 0}, {6, 0}, {7, 0}};
  const auto failures = r.failures();
  ASSERT_EQ(failures.size(), expected_attempts.size());
  ASSERT_EQ(errors.size(), expected_attempts.size());
  for (const auto& [i, attempts] : expected_attempts) {
    EXPECT_EQ(failures.at(i), MessageFailure::DeadlineExceeded) << i;
    const MessageError& e = errors.at(i);
    EXPECT_EQ(e.kind, MessageFailure::DeadlineExceeded) << i;
    EXPECT_EQ(e.attempts, static_cast<unsigned>(attempts)) << i;
    EXPECT_EQ(e.reason,
              "PoolOptions::deadline passed after " + std::to_string(attempts) + " attempts")
        << i;
    EXPECT_EQ(e.error != nullptr, i == 0) << i;  // the exception of the late throw
    EXPECT_EQ(calls[static_cast<std::size_t>(i)].load(), attempts) << i;
  }
  for (const int i : {4, 8, 9, 10, 11}) {
    EXPECT_FALSE(failures.contains(i)) << i;
    EXPECT_EQ(calls[static_cast<std::size_t>(i)].load(), 1) << i;
  }
  EXPECT_EQ(r.attempts_failed(), 1U);  // message 0's one attempt
  const PipelineStats s = p.stats();
  EXPECT_EQ(s.expired, expected_attempts.size());
  EXPECT_EQ(s.failed, expected_attempts.size());
  EXPECT_EQ(s.successful, static_cast<std::uint64_t>(kN) - expected_attempts.size());
  ASSERT_EQ(s.processors.size(), 1U);
  EXPECT_EQ(s.processors[0].expired, expected_attempts.size() + 1);  // and message 4
  EXPECT_EQ(s.processors[0].retried, 0U);
}

// A rate limit on the processors paces them without losing or repeating anything: every message
// is handled and acknowledged once, every handler call (retries included) took one grant, and
// chunks cut to fit a window are prepared and acknowledged whole.
TEST(Pipeline, RateLimitedProcessorsHandleAndAcknowledgeEachMessageOnce) {
  constexpr int kN = 300;
  constexpr int kRetried = kN / 10;  // every tenth throws once
  Recorder r(kN);
  std::vector<std::atomic<int>> calls(kN);
  std::atomic<int> prepared{0};
  auto limit = std::make_shared<RateLimiter>(20, 2ms);
  PipelineOptions<int> o = base_options(2, 8);
  o.processors.rate_limit = limit;
  o.processors.retry.max_attempts = 2;
  o.processors.retry.backoff = 0ns;
  o.prepare_messages = [&](std::span<Message<int>> chunk) {
    prepared.fetch_add(static_cast<int>(chunk.size()));
  };
  o.handle_message = [&](Message<int>& msg) {
    const int before = calls[static_cast<std::size_t>(msg.data())].fetch_add(1);
    if (msg.data() % 10 == 0 && before == 0) throw std::runtime_error("once");
  };
  const PipelineStats s = run(o, r, kN);
  EXPECT_TRUE(r.failures().empty());
  for (int i = 0; i < kN; ++i) {
    EXPECT_EQ(calls[static_cast<std::size_t>(i)].load(), i % 10 == 0 ? 2 : 1) << i;
  }
  EXPECT_EQ(prepared.load(), kN);
  EXPECT_EQ(limit->granted(), static_cast<std::uint64_t>(kN + kRetried));
  EXPECT_EQ(r.attempts_failed(), static_cast<unsigned>(kRetried));
  EXPECT_EQ(s.successful, static_cast<std::uint64_t>(kN));
  std::uint64_t retried = 0;
  for (const ConsumerStats& c : s.processors) retried += c.retried;
  EXPECT_EQ(retried, static_cast<std::uint64_t>(kRetried));
}

// processors().resize() while messages flow (Broadway's #228): new processors route to the
// batcher too, retiring ones finish what they hold, and every message is handled and
// acknowledged once. With partition_by (one processor per partition) resize() refuses.
TEST(Pipeline, ResizingProcessorsWhileMessagesFlowLosesNothing) {
  constexpr int kPhase = 800;
  const std::vector<std::size_t> sizes = {4, 2, 1, 3};  // after each phase but the last
  const int n = kPhase * static_cast<int>(sizes.size() + 1);
  Recorder r(static_cast<std::size_t>(n));
  std::vector<std::atomic<int>> calls(static_cast<std::size_t>(n));
  std::atomic<int> batched{0};
  PipelineOptions<int> o = base_options(1, 8);
  o.handle_message = [&](Message<int>& msg) {
    calls[static_cast<std::size_t>(msg.data())].fetch_add(1);
    if (msg.data() % 2 == 1) msg.put_batcher("odd");
  };
  o.batchers.push_back(batcher("odd", 16));
  o.handle_batch = [&](std::span<Message<int>> batch, const BatchInfo&) {
    batched.fetch_add(static_cast<int>(batch.size()));
  };
  Pipeline<int> p(o);
  int next = 0;
  for (std::size_t phase = 0; phase <= sizes.size(); ++phase) {
    for (int i = 0; i < kPhase; ++i, ++next) {
      ASSERT_EQ(p.push(Message<int>(next, &r)), PushResult::Pushed);
    }
    if (phase < sizes.size()) p.processors().resize(sizes[phase]);
  }
  p.close();
  p.join();
  EXPECT_TRUE(r.each_once());
  EXPECT_TRUE(r.failures().empty());
  for (int i = 0; i < n; ++i) EXPECT_EQ(calls[static_cast<std::size_t>(i)].load(), 1) << i;
  EXPECT_EQ(batched.load(), n / 2);
  EXPECT_EQ(p.processors().size(), 3U);
  const PipelineStats s = p.stats();
  EXPECT_EQ(s.successful, static_cast<std::uint64_t>(n));
  ASSERT_EQ(s.processors.size(), 6U);  // 1, then 3 more, then 2 more after retiring 3
  std::uint64_t handled = 0;
  for (const ConsumerStats& c : s.processors) {
    handled += c.handled;
    EXPECT_FALSE(c.active);
  }
  EXPECT_EQ(handled, static_cast<std::uint64_t>(n));

  PipelineOptions<int> partitioned = base_options(2, 1);
  partitioned.partition_by = [](const Message<int>& msg) {
    return static_cast<std::size_t>(msg.data());
  };
  Pipeline<int> q(partitioned);
  EXPECT_THROW(q.processors().resize(3), std::invalid_argument);
}

// stop() with a deadline that passes while a handler is busy: that handler finishes, and every
// other message (in the processor's chunk, in the input, in the batcher) is failed as Shutdown
// without its handler, and acknowledged once. Nothing is lost.
TEST(Pipeline, StopPastItsDeadlineFailsTheRestAsShutdownAndLosesNothing) {
  constexpr int kN = 200;
  constexpr int kBlocker = 20;
  Recorder r(kN);
  std::atomic<bool> stopping{false};
  std::atomic<bool> blocked{false};
  std::atomic<int> handled{0};
  std::atomic<int> batch_calls{0};
  PipelineOptions<int> o = base_options(1, 8);
  o.handle_message = [&](Message<int>& msg) {
    if (msg.data() == kBlocker) {
      blocked.store(true);
      blocked.notify_all();
      stopping.wait(false);  // until stop() has set its deadline
    }
    handled.fetch_add(1);
    if (msg.data() % 2 == 0) msg.put_batcher("b");
  };
  o.batchers.push_back(batcher("b", 1000));
  o.handle_batch = [&](std::span<Message<int>>, const BatchInfo&) { batch_calls.fetch_add(1); };
  std::atomic<int> shutdown_seen{0};
  o.handle_failed = [&](std::span<Message<int>> failed) {
    for (const Message<int>& msg : failed) {
      EXPECT_EQ(msg.error()->kind, MessageFailure::Shutdown);
      shutdown_seen.fetch_add(1);
    }
  };
  Pipeline<int> p(o, std::make_unique<StopSignal>(stopping));
  push_all(p, r, kN);
  blocked.wait(false);
  EXPECT_FALSE(p.stop(Clock::now()));  // the deadline has passed already
  EXPECT_TRUE(r.each_once());
  EXPECT_EQ(handled.load(), kBlocker + 1);  // 0..kBlocker: the rest never reached its handler
  EXPECT_EQ(batch_calls.load(), 0);
  const auto failures = r.failures();
  // Odd messages up to kBlocker went to no batcher and were acknowledged ok; everything else
  // (the even ones, held by the batcher; the rest, unhandled) failed as Shutdown.
  EXPECT_EQ(r.succeeded(), static_cast<std::size_t>(kBlocker / 2));
  EXPECT_EQ(failures.size(), static_cast<std::size_t>(kN - kBlocker / 2));
  EXPECT_EQ(shutdown_seen.load(), kN - kBlocker / 2);
  EXPECT_EQ(p.stats().shutdown, static_cast<std::uint64_t>(kN - kBlocker / 2));
  EXPECT_FALSE(p.stop(Clock::now()));  // idempotent: it still tells that messages were failed
}

// stop() with time to spare drains everything normally: no Shutdown failures.
TEST(Pipeline, StopInTimeHandlesEverything) {
  constexpr int kN = 500;
  Recorder r(kN);
  PipelineOptions<int> o = base_options(2, 8);
  Pipeline<int> p(o);
  push_all(p, r, kN);
  EXPECT_TRUE(p.stop(1h));
  EXPECT_TRUE(r.each_once());
  EXPECT_TRUE(r.failures().empty());
}

// A barrier completes only once every message pushed before it was acknowledged, including those
// waiting in a batcher; messages pushed after it do not hold it up.
TEST(Pipeline, BarrierCompletesOnlyAfterEverythingBeforeIt) {
  constexpr int kN = 60;
  Recorder r(kN);
  std::atomic<bool> open{false};
  PipelineOptions<int> o = base_options(2, 4);
  o.handle_message = [&](Message<int>& msg) {
    if (msg.data() < kN / 2) open.wait(false);
    if (msg.data() % 3 == 0) msg.put_batcher("b");
  };
  // Each half has 10 multiples of 3: 5 full batches of 2, none left.
  o.batchers.push_back(batcher("b", 2));
  o.handle_batch = [](std::span<Message<int>>, const BatchInfo&) {};
  Pipeline<int> p(o);
  for (int i = 0; i < kN / 2; ++i) ASSERT_EQ(p.push(Message<int>(i, &r)), PushResult::Pushed);
  std::future<void> first = p.barrier();
  EXPECT_EQ(first.wait_for(0s), std::future_status::timeout);  // its messages are held
  open.store(true);
  open.notify_all();
  first.get();
  for (int i = 0; i < kN / 2; ++i) EXPECT_EQ(r.times(static_cast<std::size_t>(i)), 1) << i;
  // The second half likewise goes out in full batches: its barrier passes before close().
  for (int i = kN / 2; i < kN; ++i) ASSERT_EQ(p.push(Message<int>(i, &r)), PushResult::Pushed);
  p.barrier().get();
  EXPECT_TRUE(r.each_once());
  p.close();
  p.join();
  EXPECT_TRUE(r.each_once());
}

// A partial batch holds a barrier up until it goes out (here: at close).
TEST(Pipeline, BarrierWaitsForAPartialBatch) {
  Recorder r(5);
  PipelineOptions<int> o = base_options(1, 1);
  o.handle_message = [](Message<int>& msg) { msg.put_batcher("b"); };
  PipelineBatcher<int> b = batcher("b", 10);
  b.options.flush = BatchFlush::OnClose;
  o.batchers.push_back(b);
  std::atomic<int> batches{0};
  o.handle_batch = [&](std::span<Message<int>>, const BatchInfo&) { batches.fetch_add(1); };
  Pipeline<int> p(o);
  push_all(p, r, 5);
  std::future<void> barrier = p.barrier();
  EXPECT_EQ(barrier.wait_for(0s), std::future_status::timeout);
  p.close();
  barrier.get();
  EXPECT_EQ(batches.load(), 1);
  EXPECT_TRUE(r.each_once());
  p.join();
}

// Broadway's test_message / test_batch: the future delivers each message as acknowledged.
TEST(Pipeline, TestHelpersDeliverTheFinalStatus) {
  PipelineOptions<int> o = base_options(2, 4);
  o.handle_message = [](Message<int>& msg) {
    if (msg.data() < 0) msg.fail("negative");
    msg.data() *= 10;
  };
  Pipeline<int> p(o);
  TestAck<int> one = p.test_message(4).get();
  ASSERT_EQ(one.successful.size(), 1U);
  EXPECT_TRUE(one.failed.empty());
  EXPECT_EQ(one.successful[0].data(), 40);
  TestAck<int> many = p.test_batch({1, -2, 3, -4}).get();
  ASSERT_EQ(many.successful.size(), 2U);
  ASSERT_EQ(many.failed.size(), 2U);
  for (const Message<int>& m : many.failed) {
    EXPECT_LT(m.data(), 0);
    EXPECT_EQ(m.error()->reason, "negative");
  }
  TestAck<int> none = p.test_batch({}).get();
  EXPECT_TRUE(none.successful.empty());
  EXPECT_EQ(p.stats().successful, 3U);
  EXPECT_EQ(p.stats().failed, 2U);
}

// from_range feeds a pipeline in the range's order and closes it at the end; stream() reads a
// Source as a range.
TEST(Pipeline, FromRangeFeedsEveryElementThenCloses) {
  std::vector<int> input(1000);
  std::iota(input.begin(), input.end(), 1);
  std::mutex m;
  std::vector<int> seen;
  PipelineOptions<int> o = base_options(1, 16);
  o.input.capacity = 8;  // the feed waits for room: backpressure
  o.handle_message = [&](Message<int>& msg) {
    const std::lock_guard lock(m);
    seen.push_back(msg.data());
  };
  Pipeline<int> p(o, from_range(input));
  p.join();  // ends: the feed closed the pipeline
  EXPECT_EQ(seen, input);
  EXPECT_EQ(p.stats().successful, 1000U);
  EXPECT_EQ(p.feed_error(), nullptr);
}

// A container given as an rvalue is owned by the feed, and its elements moved out: move-only
// elements go through.
TEST(Pipeline, FromRangeMovesTheElementsOfAnOwnedContainer) {
  std::vector<std::unique_ptr<int>> input;
  for (int i = 0; i < 100; ++i) input.push_back(std::make_unique<int>(i));
  std::atomic<int> sum{0};
  PipelineOptions<std::unique_ptr<int>> o;
  o.processors.pin = false;
  o.handle_message = [&](Message<std::unique_ptr<int>>& msg) { sum.fetch_add(*msg.data()); };
  Pipeline<std::unique_ptr<int>> p(o, from_range(std::move(input)));
  p.join();
  EXPECT_EQ(sum.load(), 99 * 100 / 2);
  EXPECT_EQ(p.stats().successful, 100U);
}

TEST(Pipeline, StreamReadsASourceAsARange) {
  Dispatcher<int> d;
  for (int i = 0; i < 50; ++i) ASSERT_EQ(d.push(i), PushResult::Pushed);
  d.close();
  std::vector<int> out;
  for (int x : stream(d)) out.push_back(x);
  std::vector<int> expected(50);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(out, expected);
}

}  // namespace
}  // namespace pushstage
