// demand_source_test.cpp: DemandSource alone, under pools, as a Stage's source; mirrors GenStage's
// producer-side tests of handle_demand (gen_stage_test's Counter producer).
#include "pushstage/modes/demand_source.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "pushstage/pool/consumer_pool.hpp"
#include "pushstage/stages/stage.hpp"
#include "test_payloads.hpp"

namespace pushstage {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// GenStage's Counter: handle_demand(demand, counter) emits counter .. counter + demand - 1.
// Records each demand it was asked for.
struct Counter {
  std::mutex m;
  std::vector<std::size_t> demands;
  int next = 0;
  int stop_at = -1;  // end the stream once it reaches this (-1: never)
  bool operator()(std::size_t demand, std::vector<int>& out) {
    const std::lock_guard lock(m);
    demands.push_back(demand);
    for (std::size_t i = 0; i < demand && next != stop_at; ++i) out.push_back(next++);
    return next != stop_at;
  }
  std::vector<std::size_t> asked() {
    const std::lock_guard lock(m);
    return demands;
  }
  // Events made so far (counted before the source pushes them, unlike stats().generated).
  std::uint64_t made() {
    const std::lock_guard lock(m);
    return static_cast<std::uint64_t>(next);
  }
  DemandSource<int>::Generator generator() {
    return [this](std::size_t d, std::vector<int>& out) { return (*this)(d, out); };
  }
};

// Counts what a source drops (events made after close()).
DemandSource<int>::DropHandler count_into(std::atomic<std::uint64_t>& dropped) {
  return [&dropped](int&&, DropReason) { dropped.fetch_add(1); };
}

// Mirrors gen_stage_test "producer-to-consumer demand with 1 max and 0 min demand" and "with 80%
// min demand", one consumer asking by hand: the generator is asked for exactly what the waiting
// consumer asked for, and the events come in order.
TEST(DemandSource, AsksTheGeneratorForExactlyWhatAWaitingConsumerAsks) {
  Counter counter;
  DemandSource<int> source(counter.generator());
  auto h = source.consumer();
  std::vector<int> got;
  ASSERT_EQ(h.take(got, 10, Clock::time_point::max()), TakeResult::Got);
  while (got.size() < 10) {  // the rest of the batch may land a moment after the first event
    ASSERT_EQ(h.take(got, 10 - got.size(), Clock::time_point::max()), TakeResult::Got);
  }
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  std::optional<int> one;
  ASSERT_EQ(h.take(one, Clock::time_point::max()), TakeResult::Got);
  EXPECT_EQ(one, 10);
  EXPECT_EQ(h.pop(), 11);
  const std::vector<std::size_t> asked = counter.asked();
  std::size_t total = 0;
  for (const std::size_t d : asked) {
    EXPECT_LE(d, 10U);
    total += d;
  }
  EXPECT_EQ(total, 12U);  // never more than was asked for
  // stats().generated may lag the events (the thread counts them after pushing them); what was
  // asked is this thread's own count.
  EXPECT_EQ(source.stats().asked, 12U);
  EXPECT_EQ(source.stats().buffer.buffered, 0U);
}

// Nothing is made before anyone waits, and try_take() asks for nothing.
TEST(DemandSource, MakesNothingBeforeAConsumerWaits) {
  Counter counter;
  DemandSource<int> source(counter.generator());
  auto h = source.consumer();
  std::vector<int> got;
  std::this_thread::sleep_for(20ms);  // give a wrong source time to make events
  EXPECT_EQ(h.try_take(got, 5), 0U);
  std::this_thread::sleep_for(20ms);
  EXPECT_TRUE(counter.asked().empty());
  EXPECT_EQ(source.stats().calls, 0U);
}

// A generator may make more than it was asked for: the rest is buffered and serves the next waits
// without asking again.
TEST(DemandSource, WhatTheGeneratorMakesBeyondTheDemandServesLaterDemand) {
  std::atomic<int> calls{0};
  int next = 0;
  DemandSource<int> source([&](std::size_t, std::vector<int>& out) {
    calls.fetch_add(1);
    for (int i = 0; i < 8; ++i) out.push_back(next++);  // always a page of 8
    return true;
  });
  auto h = source.consumer();
  for (int want = 0; want < 8; ++want) EXPECT_EQ(h.pop(), want);
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(h.pop(), 8);
  EXPECT_EQ(calls.load(), 2);
}

// A wait that ends with nothing (here: interrupted, as a pool retires a consumer) withdraws its
// demand (DS2): what the generator made for it meanwhile stays buffered and serves later takes,
// and the generator is asked only for demand beyond it.
TEST(DemandSource, AWaitThatEndsEmptyWithdrawsItsDemand) {
  std::atomic<bool> in_call{false};
  std::atomic<bool> release{false};
  Counter counter;
  DemandSource<int> source([&](std::size_t d, std::vector<int>& out) {
    in_call = true;
    while (!release.load()) std::this_thread::yield();
    return counter(d, out);
  });
  auto h = source.consumer();
  const Interrupter interrupter = h.interrupter();
  std::thread waiter([&] {
    std::vector<int> got;
    EXPECT_EQ(h.take(got, 10, Clock::time_point::max()), TakeResult::Interrupted);
    EXPECT_TRUE(got.empty());
  });
  while (!in_call.load()) std::this_thread::yield();  // the generator was asked for 10
  interrupter.interrupt();
  waiter.join();
  EXPECT_EQ(source.stats().asked, 0U);  // withdrawn
  release = true;
  for (int want = 0; want < 10; ++want) EXPECT_EQ(h.pop(), want);  // made for the wait that ended
  EXPECT_EQ(h.pop(), 10);  // beyond them: asks the generator for exactly 1
  EXPECT_EQ(counter.asked(), (std::vector<std::size_t>{10, 1}));
}

// The end of the stream closes the source: a pool drains it and joins; every event once.
TEST(DemandSource, EndOfStreamClosesTheSourceAndAPoolDrainsIt) {
  Counter counter;
  counter.stop_at = 1000;
  DemandSource<int> source(counter.generator());
  PoolOptions o;
  o.consumers = 3;
  o.pin = false;
  o.max_demand = 8;
  std::vector<std::atomic<int>> times(1000);  // how often each event was handled
  ConsumerPool<int> pool(source, o,
                         [&](int& e) { times.at(static_cast<std::size_t>(e)).fetch_add(1); });
  pool.join();  // returns once the source is drained: the generator ended the stream
  for (std::size_t i = 0; i < times.size(); ++i) EXPECT_EQ(times[i].load(), 1) << "event " << i;
  EXPECT_TRUE(source.drained());
  EXPECT_TRUE(source.stats().ended);
  for (const std::size_t d : counter.asked()) EXPECT_LE(d, 3U * 8U);  // at most every consumer's
}

// The example: read a file's lines on demand. The reader runs only as far ahead of the
// consumers as they ask, and stops at the end of the file, which closes the source.
TEST(DemandSource, ReadsAFileOnlyAsFastAsConsumersAsk) {
  const std::filesystem::path path =
      std::filesystem::temp_directory_path() /
      ("pushstage_demand_source_" + std::to_string(::getpid()) + ".txt");
  constexpr int kLines = 2000;
  {
    std::ofstream file(path);
    for (int i = 0; i < kLines; ++i) file << "line " << i << "\n";
  }
  constexpr std::size_t kConsumers = 2;
  constexpr std::size_t kMaxDemand = 4;
  std::atomic<std::uint64_t> handled{0};
  std::atomic<std::uint64_t> read{0};
  std::atomic<std::uint64_t> most_ahead{0};  // lines read and not yet handled, at most
  std::ifstream file(path);
  DemandSource<std::string> lines([&](std::size_t demand, std::vector<std::string>& out) {
    EXPECT_LE(demand, kConsumers * kMaxDemand);
    std::string line;
    while (out.size() < demand && std::getline(file, line)) out.push_back(line);
    const std::uint64_t ahead = read.fetch_add(out.size()) + out.size() - handled.load();
    most_ahead.store(std::max(most_ahead.load(), ahead));
    return static_cast<bool>(file);  // false at the end of the file: the stream ends
  });
  PoolOptions o;
  o.consumers = kConsumers;
  o.pin = false;
  o.max_demand = kMaxDemand;
  std::mutex m;
  std::vector<std::string> got;
  ConsumerPool<std::string> pool(lines, o, [&](std::string& line) {
    {
      const std::lock_guard lock(m);
      got.push_back(line);
    }
    handled.fetch_add(1);
  });
  pool.join();
  std::filesystem::remove(path);
  ASSERT_EQ(got.size(), static_cast<std::size_t>(kLines));
  std::vector<int> numbers;
  for (const std::string& line : got) numbers.push_back(std::stoi(line.substr(5)));
  std::sort(numbers.begin(), numbers.end());
  for (int i = 0; i < kLines; ++i) EXPECT_EQ(numbers[static_cast<std::size_t>(i)], i);
  // Read ahead: what the waiting consumers asked for, plus what the consumers hold (handled or
  // not yet), never the whole file.
  EXPECT_LE(most_ahead.load(), 2 * kConsumers * kMaxDemand);
  EXPECT_EQ(read.load(), static_cast<std::uint64_t>(kLines));
}

// Mirrors gen_stage_test "stops asking when consumer stops asking": a consumer busy with what it
// took asks for nothing more, so the generator is not called for more.
TEST(DemandSource, StopsMakingWhenTheConsumerStopsAsking) {
  Counter counter;
  std::atomic<std::uint64_t> dropped{0};
  std::atomic<std::uint64_t> handled{0};
  {
    DemandSource<int> source(counter.generator(), {}, count_into(dropped));
    std::atomic<bool> release{false};
    PoolOptions o;
    o.pin = false;
    o.max_demand = 4;
    o.min_demand = 0;
    ConsumerPool<int> pool(source, o, [&](int&) {
      while (!release.load()) std::this_thread::yield();
      handled.fetch_add(1);
    });
    while (counter.made() < 1) std::this_thread::yield();
    std::this_thread::sleep_for(30ms);  // give a wrong source time to make more
    EXPECT_LE(counter.made(), 4U);
    release = true;
    while (handled.load() < 20) std::this_thread::yield();
    source.close();
    pool.join();
  }
  // Nothing left over: every event made was handled, or made after close() and dropped.
  EXPECT_EQ(counter.made(), handled.load() + dropped.load());
}

// Mirrors gen_stage_test "producer-producer_consumer-consumer demand": demand travels through a
// Stage. A slow end consumer fills the bounded middle, the stage stops taking, and the generator
// stops being asked: it runs at most a bounded number of events ahead.
TEST(DemandSource, DemandTravelsBackThroughAStage) {
  Counter counter;
  std::atomic<std::uint64_t> dropped{0};
  std::atomic<std::uint64_t> handled{0};
  {
    DemandSource<int> source(counter.generator(), {}, count_into(dropped));
    DispatcherOptions four;
    four.capacity = 4;
    Dispatcher<int> doubled(four);
    PoolOptions o;
    o.pin = false;
    o.max_demand = 2;
    o.min_demand = 0;
    Stage doubler(source, doubled, o, [](int& e, Dispatcher<int>::Producer& out) {
      (void)out.push(e);
      (void)out.push(e);
    });
    PoolOptions sink;
    sink.pin = false;
    sink.start_paused = true;
    ConsumerPool<int> end(doubled, sink, [&](int&) { handled.fetch_add(1); });
    while (doubled.stats().buffered < 4) std::this_thread::yield();
    std::this_thread::sleep_for(30ms);  // give a wrong source time to run ahead
    // The middle holds 4 (2 events); the stage holds at most 2 (its max_demand) and waits to emit.
    EXPECT_LE(counter.made(), 2U + 2U);
    end.resume();
    while (handled.load() < 200) std::this_thread::yield();
    source.close();
    doubler.join();
    end.join();
  }
  EXPECT_EQ(handled.load(), 2 * (counter.made() - dropped.load()));
}

// Manual demand: the pool takes exactly what was asked, and the generator makes about that.
TEST(DemandSource, AManualPoolTakesWhatItAsks) {
  Counter counter;
  DemandSource<int> source(counter.generator());
  PoolOptions o;
  o.pin = false;
  o.consumers = 2;
  o.demand = DemandMode::Manual;
  std::atomic<int> handled{0};
  ConsumerPool<int> pool(source, o, [&](int&) { handled.fetch_add(1); });
  pool.ask(5);
  while (handled.load() < 5) std::this_thread::yield();
  std::this_thread::sleep_for(30ms);  // give a wrong pool time to take more
  EXPECT_EQ(handled.load(), 5);
  EXPECT_LE(counter.made(), 5U + 2U);  // each waiting consumer may have asked for one more
  source.close();
  pool.lift_limits();
  pool.join();
}

// A throw ends the stream; what the throwing call appended before it is still delivered.
TEST(DemandSource, AThrowingGeneratorEndsTheStreamAndKeepsTheError) {
  int calls = 0;
  DemandSource<int> source([&](std::size_t, std::vector<int>& out) -> bool {
    out.push_back(++calls);
    if (calls == 2) throw std::runtime_error("disk on fire");
    return true;
  });
  auto h = source.consumer();
  EXPECT_EQ(h.pop(), 1);
  EXPECT_EQ(h.pop(), 2);             // appended by the call that threw
  EXPECT_EQ(h.pop(), std::nullopt);  // drained: the throw ended the stream
  ASSERT_NE(source.error(), nullptr);
  try {
    std::rethrow_exception(source.error());
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "disk on fire");
  }
}

// close() ends the stream while a generator call is in progress: no further call, and what that
// call makes goes to on_drop; a waiting consumer sees the source drained.
TEST(DemandSource, CloseWhileTheGeneratorRunsDropsWhatItMakes) {
  test::Counted::reset();
  std::atomic<int> calls{0};
  std::vector<std::uint64_t> dropped;  // read once the source (and its thread) is gone
  {
    std::atomic<bool> in_call{false};
    std::atomic<bool> finish{false};
    DemandSource<test::Counted> source(
        [&](std::size_t, std::vector<test::Counted>& out) {
          calls.fetch_add(1);
          in_call = true;
          while (!finish.load()) std::this_thread::yield();
          out.emplace_back(7);
          return true;
        },
        {},
        [&](test::Counted&& e, DropReason why) {
          EXPECT_EQ(why, DropReason::Closed);
          dropped.push_back(e.value);
        });
    std::thread consumer([&] {
      auto h = source.consumer();
      EXPECT_FALSE(h.pop().has_value());
    });
    while (!in_call.load()) std::this_thread::yield();
    source.close();
    finish = true;
    consumer.join();
  }
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(dropped, std::vector<std::uint64_t>{7});
  EXPECT_EQ(test::Counted::live.load(), 0);
}

TEST(DemandSource, AnEmptyGeneratorIsRefused) {
  try {
    DemandSource<int> source(nullptr);
    ADD_FAILURE() << "no throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "DemandSource: generate must not be empty");
  }
  DispatcherOptions dropping;
  dropping.capacity = 8;
  dropping.overflow = Overflow::DropOldest;
  try {
    DemandSource<int> source([](std::size_t, std::vector<int>&) { return false; }, dropping);
    ADD_FAILURE() << "no throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("DemandSource: options.overflow must be Block"),
              std::string::npos);
  }
}

}  // namespace
}  // namespace pushstage
