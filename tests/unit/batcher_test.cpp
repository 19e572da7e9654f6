// batcher_test.cpp: Batcher: batches by size, by timeout, by key, at close; its processors pool;
// failures; as the sink of a Stage.
#include "pushstage/stages/batcher.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "messages.hpp"
#include "pushstage/cpus.hpp"
#include "pushstage/dispatcher.hpp"
#include "pushstage/stages/stage.hpp"
#include "test_payloads.hpp"

namespace pushstage {
namespace {

using namespace std::chrono_literals;
using test::MoveOnly;

BatcherOptions options(std::size_t size, std::chrono::nanoseconds timeout) {
  BatcherOptions o;
  o.batch_size = size;
  o.batch_timeout = timeout;
  o.processors.consumers = 1;
  return o;
}

TEST(Batcher, FullBatchesFlushBySizeInOrder) {
  std::vector<std::vector<std::uint64_t>> batches;
  Batcher<MoveOnly> b(options(10, 1h), [&](Batcher<MoveOnly>::Batch& batch) {
    EXPECT_EQ(batch.trigger, BatchTrigger::Full);
    std::vector<std::uint64_t> values;
    for (MoveOnly& e : batch.events) values.push_back(*e.value);
    batches.push_back(values);
  });
  for (std::uint64_t i = 0; i < 100; ++i) ASSERT_EQ(b.push(MoveOnly(i)), PushResult::Pushed);
  b.close();
  b.join();
  ASSERT_EQ(batches.size(), 10U);
  for (std::size_t k = 0; k < 10; ++k) {
    ASSERT_EQ(batches[k].size(), 10U);
    for (std::size_t i = 0; i < 10; ++i) EXPECT_EQ(batches[k][i], 10 * k + i);
  }
  const BatcherStats s = b.stats();
  EXPECT_EQ(s.full, 10U);
  EXPECT_EQ(s.batches, 10U);
  EXPECT_EQ(s.events, 100U);
}

// A slow machine may spread the five pushes over more than one timeout, hence more than one
// batch: every batch must still be a partial one flushed by its timeout.
TEST(Batcher, APartialBatchFlushesAfterTheTimeout) {
  std::mutex m;
  std::vector<BatchTrigger> triggers;
  std::atomic<int> handled{0};
  Batcher<int> b(options(100, 20ms), [&](Batcher<int>::Batch& batch) {
    {
      const std::lock_guard lock(m);
      triggers.push_back(batch.trigger);
    }
    handled.fetch_add(static_cast<int>(batch.events.size()));
  });
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i) ASSERT_EQ(b.push(i), PushResult::Pushed);
  while (handled.load() < 5) std::this_thread::yield();  // not closed: only the timeout flushes
  EXPECT_GE(std::chrono::steady_clock::now() - start, 20ms);
  const std::lock_guard lock(m);
  ASSERT_FALSE(triggers.empty());
  for (const BatchTrigger t : triggers) EXPECT_EQ(t, BatchTrigger::Timeout);
  const BatcherStats s = b.stats();  // every batch was counted before it was handled
  EXPECT_EQ(s.timed_out, triggers.size());
  EXPECT_EQ(s.batches, triggers.size());
  EXPECT_EQ(s.events, 5U);
}

TEST(Batcher, GroupsByKeyAndFlushesPartialBatchesAtClose) {
  std::mutex m;
  std::map<std::string, std::vector<int>> got;
  std::vector<BatchTrigger> triggers;
  Batcher<int, std::string> b(
      options(4, 1h), [](const int& e) { return e % 3 == 0 ? std::string("fizz") : "other"; },
      [&](Batcher<int, std::string>::Batch& batch) {
        const std::lock_guard lock(m);
        for (int e : batch.events) got[batch.key].push_back(e);
        triggers.push_back(batch.trigger);
      });
  for (int i = 0; i < 10; ++i) ASSERT_EQ(b.push(i), PushResult::Pushed);
  b.close();
  b.join();
  EXPECT_EQ(got["fizz"], (std::vector<int>{0, 3, 6, 9}));
  EXPECT_EQ(got["other"], (std::vector<int>{1, 2, 4, 5, 7, 8}));
  const BatcherStats s = b.stats();
  EXPECT_EQ(s.full, 2U);      // fizz x4, other x4
  EXPECT_EQ(s.at_close, 1U);  // other: 7, 8
  EXPECT_EQ(s.events, 10U);
  EXPECT_EQ(b.push(1), PushResult::Closed);
}

// A thousand full batches of one key leave their timers stale (dropped as they pile up) while two
// other keys' batches stay open: both keep their live timers and flush at close, oldest first.
TEST(Batcher, FullBatchesLeaveNoTimersBehindAndOpenBatchesKeepTheirs) {
  std::vector<std::pair<int, BatchTrigger>> batches;  // (key, trigger); one processor
  std::size_t events = 0;
  Batcher<int> b(
      options(2, 1h), [](const int& e) { return e < 0 ? -e : 0; },
      [&](Batcher<int>::Batch& batch) {
        batches.emplace_back(batch.key, batch.trigger);
        events += batch.events.size();
      });
  ASSERT_EQ(b.push(-1), PushResult::Pushed);                                // key 1: opened first
  for (int i = 0; i < 2000; ++i) ASSERT_EQ(b.push(i), PushResult::Pushed);  // key 0: full x1000
  ASSERT_EQ(b.push(-2), PushResult::Pushed);                                // key 2
  b.close();
  b.join();
  ASSERT_EQ(batches.size(), 1002U);
  for (std::size_t i = 0; i < 1000; ++i) {
    EXPECT_EQ(batches[i], std::make_pair(0, BatchTrigger::Full)) << i;
  }
  EXPECT_EQ(batches[1000], std::make_pair(1, BatchTrigger::Close));
  EXPECT_EQ(batches[1001], std::make_pair(2, BatchTrigger::Close));
  EXPECT_EQ(events, 2002U);
}

TEST(Batcher, FailedBatchesAreRetriedThenDeadLettered) {
  BatcherOptions o = options(5, 1h);
  o.processors.retry.max_attempts = 2;
  o.processors.retry.backoff = 0ns;
  std::atomic<int> calls{0};
  std::vector<int> dead;
  {
    Batcher<int> b(
        o,
        [&](Batcher<int>::Batch& batch) {
          calls.fetch_add(1);
          if (batch.events.front() >= 5) throw std::runtime_error("second batch always fails");
        },
        [&](Batcher<int>::Batch& batch, const Failure& f) {
          EXPECT_EQ(f.attempts, 2U);
          dead.insert(dead.end(), batch.events.begin(), batch.events.end());
        });
    for (int i = 0; i < 10; ++i) ASSERT_EQ(b.push(i), PushResult::Pushed);
  }  // the destructor closes and joins
  EXPECT_EQ(calls.load(), 3);
  EXPECT_EQ(dead, (std::vector<int>{5, 6, 7, 8, 9}));
}

// Paused processors: the batcher's buffers fill and its producers wait; nothing is lost.
TEST(Batcher, SlowProcessorsPushBack) {
  BatcherOptions o = options(2, 1h);
  o.input.capacity = 4;
  std::atomic<int> handled{0};
  Batcher<int> b(o, [&](Batcher<int>::Batch& batch) {
    handled.fetch_add(static_cast<int>(batch.events.size()));
  });
  b.processors().pause();
  std::atomic<int> pushed{0};
  std::thread producer([&] {
    for (int i = 0; i < 100; ++i) {
      ASSERT_EQ(b.push(i), PushResult::Pushed);
      pushed.fetch_add(1);
    }
  });
  while (b.stats().input.buffered < 4) std::this_thread::yield();
  std::this_thread::sleep_for(20ms);
  // input 4 + 2 batches buffered for the processor + one held by it + one open + one flushing
  EXPECT_LE(pushed.load(), 4 + 2 * 2 + 2 + 2 + 2);
  EXPECT_EQ(handled.load(), 0);
  b.processors().resume();
  producer.join();
  b.close();
  b.join();
  EXPECT_EQ(handled.load(), 100);
}

// More batches than the processors' buffer (2 per processor) wait behind paused processors: the
// destructor resumes them, and every batch is handled.
TEST(Batcher, DestroyingItWithPausedProcessorsHandlesEveryBatch) {
  std::atomic<int> handled{0};
  {
    Batcher<int> b(options(1, 1h), [&](Batcher<int>::Batch& batch) {
      handled.fetch_add(static_cast<int>(batch.events.size()));
    });
    b.processors().pause();
    for (int i = 0; i < 20; ++i) ASSERT_EQ(b.push(i), PushResult::Pushed);
  }  // closes, resumes, joins
  EXPECT_EQ(handled.load(), 20);
}

// The same under DemandMode::Manual with no demand asked: the destructor lifts the limit.
TEST(Batcher, DestroyingItWithManualProcessorsHandlesEveryBatch) {
  BatcherOptions o = options(1, 1h);
  o.processors.demand = DemandMode::Manual;
  std::atomic<int> handled{0};
  {
    Batcher<int> b(o, [&](Batcher<int>::Batch& batch) {
      handled.fetch_add(static_cast<int>(batch.events.size()));
    });
    b.processors().ask(1);
    for (int i = 0; i < 20; ++i) ASSERT_EQ(b.push(i), PushResult::Pushed);
  }  // closes, lifts the demand limit, joins
  EXPECT_EQ(handled.load(), 20);
}

TEST(Batcher, IsTheSinkOfAStage) {
  Dispatcher<int> head;
  std::atomic<int> sum{0};
  Batcher<int> batcher(options(8, 1h), [&](Batcher<int>::Batch& batch) {
    for (int e : batch.events) sum.fetch_add(e);
  });
  PoolOptions o;
  o.consumers = 2;
  Stage square(head, batcher, o,
               [](int& e, Batcher<int>::Producer& out) { (void)out.push(e * e); });
  for (int i = 1; i <= 20; ++i) ASSERT_EQ(head.push(i), PushResult::Pushed);
  head.close();
  square.join();  // the stage closed the batcher when it drained
  batcher.join();
  EXPECT_EQ(sum.load(), 2870);  // 1^2 + ... + 20^2
}

TEST(Batcher, InvalidOptionsNameTheField) {
  auto message_of = [](const BatcherOptions& o) -> std::string {
    try {
      Batcher<int> b(o, [](Batcher<int>::Batch&) {});
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  BatcherOptions o;
  o.batch_size = 0;
  EXPECT_NE(message_of(o).find("BatcherOptions::batch_size must be in [1, 65536]; got 0"),
            std::string::npos);
  o = {};
  o.batch_timeout = 0ns;
  EXPECT_NE(message_of(o).find("BatcherOptions::batch_timeout must be in [1 us, 24 h]"),
            std::string::npos);
}

// The processors' options are the user's BatcherOptions::processors: each refusal names that
// field, in full (not the PoolOptions of the pool the batcher builds from it).
TEST(Batcher, EveryRejectedProcessorsOptionNamesItsBatcherField) {
  auto message_of = [](const BatcherOptions& o) {
    return test::message_of([&] { Batcher<int> b(o, [](Batcher<int>::Batch&) {}); });
  };
  const std::string allowed = test::allowed_cpu_list();
  BatcherOptions o;
  o.processors.consumers = 0;
  EXPECT_EQ(message_of(o), "BatcherOptions::processors.consumers must be in [1, 65536]; got 0");
  o.processors.consumers = std::size_t{1} << 40;  // twice that: no valid buffer capacity either
  EXPECT_EQ(message_of(o),
            "BatcherOptions::processors.consumers must be in [1, 65536]; got 1099511627776");
  o = {};
  o.processors.max_demand = 0;
  EXPECT_EQ(message_of(o), "BatcherOptions::processors.max_demand must be in [1, 65536]; got 0");
  o = {};
  o.processors.max_demand = 10;
  o.processors.min_demand = 10;
  EXPECT_EQ(
      message_of(o),
      "BatcherOptions::processors.min_demand must be in [0, max_demand - 1] = [0, 9]; got 10");
  o = {};
  o.processors.demand = static_cast<DemandMode>(9);
  EXPECT_EQ(message_of(o), "BatcherOptions::processors.demand must be Automatic or Manual");
  o = {};
  o.processors.retry.max_attempts = 0;
  EXPECT_EQ(message_of(o),
            "BatcherOptions::processors.retry.max_attempts must be in [1, 100]; got 0");
  o = {};
  o.processors.retry.backoff = -1ns;
  EXPECT_EQ(message_of(o), "BatcherOptions::processors.retry.backoff must be >= 0 ns; got -1 ns");
  o = {};
  o.processors.retry.multiplier = 0.5;
  EXPECT_EQ(message_of(o),
            "BatcherOptions::processors.retry.multiplier must be in [1, 100]; got 0.500000");
  o = {};
  o.processors.retry.max_backoff = 1ms;
  EXPECT_EQ(message_of(o),
            "BatcherOptions::processors.retry.max_backoff must be >= "
            "BatcherOptions::processors.retry.backoff (10000000 ns); got 1000000 ns");
  o = {};
  o.processors.deadline = -1ns;
  EXPECT_EQ(message_of(o),
            "BatcherOptions::processors.deadline must be >= 0 ns (0: none); got -1 ns");
  o = {};
  o.processors.cpus = {4095};
  EXPECT_EQ(message_of(o),
            "BatcherOptions::processors.cpus: CPU 4095 is not one this process may use; "
            "allowed: " +
                allowed);
  o = {};
  o.processors.pin = false;
  o.processors.cpus = {0, 1};
  EXPECT_EQ(message_of(o),
            "BatcherOptions::processors.cpus must be empty when pin is false; got {0,1}");
  o = {};
  o.processors.consumers = 1;
  o.processors.cpus = {allowed_cpus().back()};
  EXPECT_EQ(message_of(o), "accepted");
}

// A weight function bounds each batch's total weight: a batch goes out full before the event that
// would take it beyond batch_weight; an event heavier than a batch goes out alone. batch_size
// bounds the count as well. Order is kept.
TEST(Batcher, BatchesByWeightNeverExceedTheWeight) {
  BatcherOptions o = options(4, 1h);
  o.batch_weight = 10;
  std::vector<std::vector<int>> batches;
  Batcher<int> b(
      o, Batcher<int>::Grouping{{}, [](const int& e) { return static_cast<std::uint64_t>(e); }},
      [&](Batcher<int>::Batch& batch) {
        EXPECT_EQ(batch.trigger, BatchTrigger::Full);
        batches.push_back(batch.events);
      });
  for (const int e : {3, 4, 5, 1, 1, 1, 1, 1, 25, 2, 9, 1})
    ASSERT_EQ(b.push(e), PushResult::Pushed);
  b.close();
  b.join();
  const std::vector<std::vector<int>> expected = {{3, 4}, {5, 1, 1, 1}, {1, 1}, {25}, {2}, {9, 1}};
  // {5,1,1,1}: batch_size 4; {1,1} then 25 would exceed: full; 25 alone; 2 + 9 > 10: full;
  // {9,1} reaches 10: full.
  EXPECT_EQ(batches, expected);
}

// BatchFlush::OnClose: no timer; a partial batch waits for close(), however long the timeout.
TEST(Batcher, FlushOnCloseKeepsPartialBatchesUntilClose) {
  BatcherOptions o = options(10, 1ms);
  o.flush = BatchFlush::OnClose;
  std::mutex m;
  std::vector<Batcher<int, int>::Batch> batches;
  Batcher<int, int> b(
      o, [](const int& e) { return e % 2; },
      [&](Batcher<int, int>::Batch& batch) {
        const std::lock_guard lock(m);
        batches.push_back(batch);
      });
  for (int i = 0; i < 25; ++i) ASSERT_EQ(b.push(i), PushResult::Pushed);
  std::this_thread::sleep_for(50ms);  // 50 timeouts' worth: none may flush
  {
    const std::lock_guard lock(m);
    ASSERT_EQ(batches.size(), 2U);  // the full ones: 10 even, 10 odd
    for (const auto& batch : batches) EXPECT_EQ(batch.trigger, BatchTrigger::Full);
  }
  b.close();
  b.join();
  ASSERT_EQ(batches.size(), 4U);
  EXPECT_EQ(batches[2].trigger, BatchTrigger::Close);
  EXPECT_EQ(batches[3].trigger, BatchTrigger::Close);
  EXPECT_EQ(batches[2].key, 0);  // the even batch was opened first
  EXPECT_EQ(batches[2].events, (std::vector<int>{20, 22, 24}));
  EXPECT_EQ(batches[3].events, (std::vector<int>{21, 23}));
  EXPECT_EQ(b.stats().timed_out, 0U);
}

TEST(Batcher, WeightOptionsNameTheField) {
  BatcherOptions o;
  o.batch_weight = 5;
  EXPECT_EQ(test::message_of([&] { Batcher<int> b(o, [](Batcher<int>::Batch&) {}); }),
            "BatcherOptions::batch_weight must be 0 without a weight function; got 5");
  o.batch_weight = 0;
  const Batcher<int>::Grouping by_weight{{}, [](const int&) { return std::uint64_t{1}; }};
  EXPECT_EQ(test::message_of([&] { Batcher<int> b(o, by_weight, [](Batcher<int>::Batch&) {}); }),
            "BatcherOptions::batch_weight must be in [1, 2^62] with a weight function; got 0");
  o.batch_weight = 1;
  o.flush = static_cast<BatchFlush>(7);
  EXPECT_EQ(test::message_of([&] { Batcher<int> b(o, by_weight, [](Batcher<int>::Batch&) {}); }),
            "BatcherOptions::flush must be BatchFlush::OnTimeout or OnClose; got 7");
}

// A batcher refuses an empty batch handler under its own name, with or without a key function.
TEST(Batcher, AnEmptyHandlerIsReportedAsTheBatchers) {
  try {
    Batcher<int> b(BatcherOptions{}, Batcher<int>::Handler{});
    ADD_FAILURE() << "an empty handler was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "Batcher: handler must not be empty");
  }
  try {
    Batcher<int> b(
        BatcherOptions{}, [](const int& e) { return e % 2; }, Batcher<int>::Handler{});
    ADD_FAILURE() << "an empty handler was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "Batcher: handler must not be empty");
  }
}

}  // namespace
}  // namespace pushstage
