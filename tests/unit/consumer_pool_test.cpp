// consumer_pool_test.cpp: the public API of ConsumerPool<T>.
#include "pushstage/consumer_pool.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "pushstage/cpus.hpp"
#include "test_payloads.hpp"

namespace pushstage {
namespace {

using test::Counted;
using test::MoveOnly;

TEST(ConsumerPool, HandlesEveryEventOnceThenJoins) {
  Dispatcher<int> d;
  PoolOptions o;
  o.consumers = 3;
  std::mutex m;
  std::multiset<int> seen;
  ConsumerPool<int> pool(d, o, [&](int& e) {
    const std::lock_guard lock(m);
    seen.insert(e);
  });
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(d.push(i), PushResult::Pushed);
  d.close();
  pool.join();
  pool.join();  // idempotent
  ASSERT_EQ(seen.size(), 1000U);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(seen.count(i), 1U);
  std::uint64_t handled = 0;
  for (const ConsumerStats& s : pool.stats()) handled += s.handled;
  EXPECT_EQ(handled, 1000U);
}

TEST(ConsumerPool, PinsRoundRobinOverAllowedCpus) {
  const std::vector<int> cpus = allowed_cpus();
  Dispatcher<int> d;
  PoolOptions o;
  o.consumers = cpus.size() + 1;
  ConsumerPool<int> pool(d, o, [](int&) {});
  d.close();
  pool.join();
  const auto stats = pool.stats();
  ASSERT_EQ(stats.size(), o.consumers);
  for (std::size_t i = 0; i < stats.size(); ++i) EXPECT_EQ(stats[i].cpu, cpus[i % cpus.size()]);
}

TEST(ConsumerPool, UnpinnedConsumersReportNoCpu) {
  Dispatcher<int> d;
  PoolOptions o;
  o.consumers = 2;
  o.pin = false;
  ConsumerPool<int> pool(d, o, [](int&) {});
  d.close();
  pool.join();
  for (const ConsumerStats& s : pool.stats()) EXPECT_EQ(s.cpu, -1);
}

TEST(ConsumerPool, MaxDemandOneHoldsOneEventAtATime) {
  // Each consumer records how many events it holds (taken, not yet handled): with max_demand 1 the
  // count of events popped but not handled by a consumer never exceeds 1. We observe it through
  // the dispatcher: while a handler runs, popped - handled by that consumer is exactly 1.
  Dispatcher<int> d;
  PoolOptions o;
  o.consumers = 2;
  std::atomic<int> in_handlers{0};
  std::atomic<int> worst{0};
  std::atomic<std::uint64_t> handled{0};
  ConsumerPool<int> pool(d, o, [&](int&) {
    const int now = in_handlers.fetch_add(1) + 1;
    int w = worst.load();
    while (now > w && !worst.compare_exchange_weak(w, now)) {
    }
    // While we run, the dispatcher may have handed out at most one event per consumer.
    const DispatcherStats s = d.stats();
    EXPECT_LE(s.popped, handled.load() + 2);
    handled.fetch_add(1);
    in_handlers.fetch_sub(1);
  });
  for (int i = 0; i < 2000; ++i) ASSERT_EQ(d.push(i), PushResult::Pushed);
  d.close();
  pool.join();
  EXPECT_LE(worst.load(), 2);
  EXPECT_EQ(handled.load(), 2000U);
}

TEST(ConsumerPool, MaxDemandTakesBatches) {
  Dispatcher<MoveOnly> d;
  for (std::uint64_t i = 0; i < 100; ++i) ASSERT_EQ(d.push(MoveOnly(i)), PushResult::Pushed);
  d.close();
  PoolOptions o;
  o.consumers = 1;
  o.max_demand = 16;
  std::vector<std::uint64_t> seen;
  ConsumerPool<MoveOnly> pool(d, o, [&](MoveOnly& e) { seen.push_back(*e.value); });
  pool.join();
  ASSERT_EQ(seen.size(), 100U);
  for (std::uint64_t i = 0; i < 100; ++i) EXPECT_EQ(seen[i], i);  // one producer, one consumer
}

TEST(ConsumerPool, HandlerErrorsAreCountedAndReported) {
  Dispatcher<int> d;
  PoolOptions o;
  o.consumers = 2;
  std::atomic<int> reported{0};
  o.on_error = [&](std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (const std::runtime_error&) {
      reported.fetch_add(1);
    }
  };
  ConsumerPool<int> pool(d, o, [](int& e) {
    if (e % 3 == 0) throw std::runtime_error("bad event");
  });
  for (int i = 0; i < 300; ++i) ASSERT_EQ(d.push(i), PushResult::Pushed);
  d.close();
  pool.join();
  std::uint64_t handled = 0;
  std::uint64_t failed = 0;
  for (const ConsumerStats& s : pool.stats()) {
    handled += s.handled;
    failed += s.failed;
  }
  EXPECT_EQ(failed, 100U);
  EXPECT_EQ(handled, 200U);
  EXPECT_EQ(reported.load(), 100);
}

TEST(ConsumerPool, DestructorClosesAndDrains) {
  Counted::reset();
  std::atomic<std::uint64_t> handled{0};
  {
    Dispatcher<Counted> d;
    {
      PoolOptions o;
      o.consumers = 2;
      ConsumerPool<Counted> pool(d, o, [&](Counted&) { handled.fetch_add(1); });
      for (std::uint64_t i = 0; i < 500; ++i) ASSERT_EQ(d.push(Counted(i)), PushResult::Pushed);
    }  // no join(): the destructor closes the source and joins
    EXPECT_TRUE(d.closed());
    EXPECT_EQ(d.stats().buffered, 0U);
  }
  EXPECT_EQ(handled.load(), 500U);
  EXPECT_EQ(Counted::live.load(), 0);
  EXPECT_EQ(Counted::copies.load(), 0);
}

TEST(ConsumerPool, BusyTimeCoversTheHandler) {
  Dispatcher<int> d;
  PoolOptions o;
  o.consumers = 1;
  ConsumerPool<int> pool(d, o, [](int&) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(2);
    while (std::chrono::steady_clock::now() < until) {
    }
  });
  for (int i = 0; i < 5; ++i) ASSERT_EQ(d.push(i), PushResult::Pushed);
  d.close();
  pool.join();
  EXPECT_GE(pool.stats()[0].busy, std::chrono::milliseconds(10));  // lower bound: 5 x 2 ms
}

TEST(ConsumerPool, InvalidOptionsNameTheField) {
  Dispatcher<int> d;
  auto message_of = [&](const PoolOptions& o) -> std::string {
    try {
      ConsumerPool<int> pool(d, o, [](int&) {});
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  PoolOptions o;
  o.consumers = 0;
  EXPECT_NE(message_of(o).find("PoolOptions::consumers must be in [1, 65536]; got 0"),
            std::string::npos);
  o = {};
  o.max_demand = 0;
  EXPECT_NE(message_of(o).find("PoolOptions::max_demand must be in [1, 65536]; got 0"),
            std::string::npos);
  o = {};
  o.cpus = {4095};
  EXPECT_NE(message_of(o).find("PoolOptions::cpus: CPU 4095 is not one this process may use"),
            std::string::npos);
  o = {};
  o.cpus = {-1};
  EXPECT_NE(message_of(o).find("PoolOptions::cpus: CPU -1"), std::string::npos);
  o = {};
  o.pin = false;
  o.cpus = {0};
  EXPECT_NE(message_of(o).find("PoolOptions::cpus must be empty when pin is false"),
            std::string::npos);
  EXPECT_FALSE(d.closed());  // a rejected pool never started, so it did not close the source
  try {
    ConsumerPool<int> pool(d, PoolOptions{}, nullptr);
    ADD_FAILURE() << "an empty handler was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("handler"), std::string::npos);
  }
}

// Each field's refusal, message in full, and the edges that are accepted. A refused pool starts
// no thread, so its source stays open.
TEST(ConsumerPool, EveryRejectedOptionSaysWhyInFull) {
  Dispatcher<int> d;
  auto message_of = [&](const PoolOptions& o) -> std::string {
    try {
      ConsumerPool<int> pool(d, o, [](int&) {});
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "accepted";
  };
  std::string allowed = "{";
  for (const int cpu : allowed_cpus()) {
    allowed += (allowed.size() > 1 ? "," : "") + std::to_string(cpu);
  }
  allowed += "}";
  PoolOptions o;
  o.consumers = 0;
  EXPECT_EQ(message_of(o), "PoolOptions::consumers must be in [1, 65536]; got 0");
  o.consumers = 65537;
  EXPECT_EQ(message_of(o), "PoolOptions::consumers must be in [1, 65536]; got 65537");
  o = {};
  o.max_demand = 0;
  EXPECT_EQ(message_of(o), "PoolOptions::max_demand must be in [1, 65536]; got 0");
  o.max_demand = 65537;
  EXPECT_EQ(message_of(o), "PoolOptions::max_demand must be in [1, 65536]; got 65537");
  o = {};
  o.cpus = {allowed_cpus().front(), 4095};  // one good CPU does not excuse a bad one
  EXPECT_EQ(message_of(o),
            "PoolOptions::cpus: CPU 4095 is not one this process may use; allowed: " + allowed);
  o = {};
  o.pin = false;
  o.cpus = {0, 1};
  EXPECT_EQ(message_of(o), "PoolOptions::cpus must be empty when pin is false; got {0,1}");
  try {
    ConsumerPool<int> pool(d, PoolOptions{}, ConsumerPool<int>::Handler{});
    ADD_FAILURE() << "an empty handler was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "ConsumerPool: handler must not be empty");
  }
  EXPECT_FALSE(d.closed());
  // The edges that are accepted (this pool starts, then closes the source when destroyed).
  o = {};
  o.consumers = 1;
  o.max_demand = 65536;
  o.cpus = {allowed_cpus().back()};
  EXPECT_EQ(message_of(o), "accepted");
}

}  // namespace
}  // namespace pushstage
