// topology_test.cpp: names (given, default, too long, taken), what Topology::capture() lists
// (components, options, stats, edges), that components leave when destroyed, the JSON and DOT
// output (escaped names), and joining and leaving while other threads capture.
#include "pushstage/observe/topology.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <latch>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "messages.hpp"
#include "pushstage/pushstage.hpp"

namespace pushstage {
namespace {

using namespace std::chrono_literals;

DispatcherOptions named(std::string name) {
  DispatcherOptions o;
  o.name = std::move(name);
  return o;
}
PoolOptions pool_named(std::string name, std::size_t consumers = 1) {
  PoolOptions o;
  o.name = std::move(name);
  o.consumers = consumers;
  o.pin = false;
  return o;
}
bool has_edge(const Topology& t, const std::string& from, const std::string& to) {
  const ComponentSnapshot* a = t.find(from);
  const ComponentSnapshot* b = t.find(to);
  if (a == nullptr || b == nullptr) return false;
  return std::any_of(t.edges.begin(), t.edges.end(),
                     [&](const TopologyEdge& e) { return e.from == a->id && e.to == b->id; });
}
std::uint64_t number_after_dash(const std::string& name) {
  return std::stoull(name.substr(name.rfind('-') + 1));
}

TEST(Topology, UnnamedComponentsGetKindAndNumberInConstructionOrder) {
  Dispatcher<int> a;
  Dispatcher<int> b;
  ConsumerPool<int> p(a, pool_named(""), [](int&) {});
  ASSERT_EQ(a.name().rfind("dispatcher-", 0), 0U) << a.name();
  ASSERT_EQ(b.name().rfind("dispatcher-", 0), 0U) << b.name();
  EXPECT_EQ(number_after_dash(b.name()), number_after_dash(a.name()) + 1);
  EXPECT_EQ(p.name().rfind("consumer_pool-", 0), 0U) << p.name();
  a.close();
  p.join();
}

TEST(Topology, NamesLongerThan128BytesAreRefusedNamingTheField) {
  const std::string too_long(129, 'x');
  EXPECT_EQ(test::message_of([&] { Dispatcher<int> d(named(too_long)); }),
            "DispatcherOptions::name must be at most 128 bytes; got 129");
  Dispatcher<int> source;
  EXPECT_EQ(
      test::message_of([&] { ConsumerPool<int> p(source, pool_named(too_long), [](int&) {}); }),
      "PoolOptions::name must be at most 128 bytes; got 129");
  BatcherOptions b;
  b.name = too_long;
  EXPECT_EQ(test::message_of([&] { Batcher<int> x(b, [](Batcher<int>::Batch&) {}); }),
            "BatcherOptions::name must be at most 128 bytes; got 129");
  EXPECT_EQ(test::message_of([&] {
              PartitionDispatcher<int> x(
                  2, [](const int& v) { return std::size_t(v); }, named(too_long));
            }),
            "DispatcherOptions::name must be at most 128 bytes; got 129");
  Dispatcher<int> fine(named(std::string(128, 'y')));
  EXPECT_EQ(fine.name(), std::string(128, 'y'));
}

TEST(Topology, ATakenNameGetsASuffixUntilItsOwnerLeaves) {
  std::optional<Dispatcher<int>> first(std::in_place, named("orders"));
  Dispatcher<int> second(named("orders"));
  Dispatcher<int> third(named("orders"));
  EXPECT_EQ(first->name(), "orders");
  EXPECT_EQ(second.name(), "orders#2");
  EXPECT_EQ(third.name(), "orders#3");
  first.reset();
  Dispatcher<int> again(named("orders"));
  EXPECT_EQ(again.name(), "orders");
}

TEST(Topology, APipelineIsListedWithItsEdgesOptionsAndStats) {
  constexpr int kEvents = 500;
  DispatcherOptions bounded = named("t1.lines");
  bounded.capacity = 64;
  Dispatcher<int> lines(bounded);
  Dispatcher<int> rows(named("t1.rows"));
  Stage parse(lines, rows, pool_named("t1.parse", 2),
              [](int& v, Dispatcher<int>::Producer& out) { out.push(v * 2); });
  std::atomic<int> stored{0};
  ConsumerPool<int> store(rows, pool_named("t1.store"), [&](int&) { stored.fetch_add(1); });
  for (int i = 0; i < kEvents; ++i) ASSERT_EQ(lines.push(i), PushResult::Pushed);
  lines.close();
  store.join();

  const Topology t = Topology::capture();
  const ComponentSnapshot* l = t.find("t1.lines");
  const ComponentSnapshot* p = t.find("t1.parse");
  const ComponentSnapshot* r = t.find("t1.rows");
  const ComponentSnapshot* s = t.find("t1.store");
  ASSERT_TRUE(l && p && r && s);
  EXPECT_EQ(l->kind, ComponentKind::Dispatcher);
  EXPECT_EQ(p->kind, ComponentKind::Stage);
  EXPECT_EQ(s->kind, ComponentKind::ConsumerPool);
  EXPECT_TRUE(has_edge(t, "t1.lines", "t1.parse"));
  EXPECT_TRUE(has_edge(t, "t1.parse", "t1.rows"));
  EXPECT_TRUE(has_edge(t, "t1.rows", "t1.store"));
  EXPECT_FALSE(has_edge(t, "t1.lines", "t1.store"));
  EXPECT_EQ(p->sources, std::vector<std::uint64_t>{l->id});
  EXPECT_EQ(p->sinks, std::vector<std::uint64_t>{r->id});

  ASSERT_TRUE(l->buffer.has_value());
  EXPECT_EQ(l->buffer->pushed, std::uint64_t{kEvents});
  EXPECT_EQ(l->buffer->popped, std::uint64_t{kEvents});
  EXPECT_EQ(l->capacity, 64U);
  ASSERT_TRUE(p->pool.has_value());
  EXPECT_EQ(p->pool->consumers, 2U);
  EXPECT_EQ(p->pool->handled, std::uint64_t{kEvents});
  ASSERT_TRUE(s->pool.has_value());
  EXPECT_EQ(s->pool->handled, std::uint64_t{kEvents});
  EXPECT_EQ(r->buffer->pushed, std::uint64_t{kEvents});
  EXPECT_FALSE(s->buffer.has_value());

  const auto option = [](const ComponentSnapshot& c, const std::string& key) {
    for (const auto& [k, v] : c.options) {
      if (k == key) return v;
    }
    return std::string("missing");
  };
  EXPECT_EQ(option(*l, "capacity"), "64");
  EXPECT_EQ(option(*l, "overflow"), "Block");
  EXPECT_EQ(option(*p, "consumers"), "2");
  EXPECT_EQ(option(*p, "max_demand"), "1");
}

TEST(Topology, ComponentsLeaveWhenDestroyed) {
  {
    Dispatcher<int> d(named("t2.gone"));
    ConsumerPool<int> p(d, pool_named("t2.pool"), [](int&) {});
    EXPECT_NE(Topology::capture().find("t2.gone"), nullptr);
    EXPECT_NE(Topology::capture().find("t2.pool"), nullptr);
    d.close();
  }
  EXPECT_EQ(Topology::capture().find("t2.gone"), nullptr);
  EXPECT_EQ(Topology::capture().find("t2.pool"), nullptr);
}

TEST(Topology, ABatcherFeedsItsProcessorsAndAStageFeedsTheBatcher) {
  Dispatcher<int> head(named("t3.head"));
  BatcherOptions bo;
  bo.name = "t3.batch";
  bo.batch_size = 5;
  bo.processors.pin = false;
  std::atomic<int> events{0};
  Batcher<int> batch(
      bo, [&](Batcher<int>::Batch& b) { events.fetch_add(static_cast<int>(b.events.size())); });
  Stage feed(head, batch, pool_named("t3.feed"),
             [](int& v, Batcher<int>::Producer& out) { out.push(v); });
  for (int i = 0; i < 20; ++i) head.push(i);
  head.close();
  feed.join();
  batch.join();
  EXPECT_EQ(batch.processors().name(), "t3.batch.processors");
  const Topology t = Topology::capture();
  EXPECT_TRUE(has_edge(t, "t3.head", "t3.feed"));
  EXPECT_TRUE(has_edge(t, "t3.feed", "t3.batch"));
  EXPECT_TRUE(has_edge(t, "t3.batch", "t3.batch.processors"));
  const ComponentSnapshot* b = t.find("t3.batch");
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(b->batches.has_value());
  EXPECT_EQ(b->batches->events, 20U);
  EXPECT_EQ(b->batches->full, 4U);
  EXPECT_EQ(b->buffer->pushed, 20U);
  EXPECT_EQ(t.find("t3.batch.processors")->pool->handled, 4U);
  EXPECT_EQ(events.load(), 20);
}

TEST(Topology, ModesAreListedOnceAndPoolsOverTheirPartsPointAtThem) {
  PartitionDispatcher<int> parts(
      2, [](const int& v) { return std::size_t(v); }, named("t4.parts"));
  BroadcastDispatcher<int> fan(2, [] {
    DispatcherOptions o = BroadcastDispatcher<int>::default_options();
    o.name = "t4.fan";
    return o;
  }());
  KeyedDispatcher<int> keyed(
      8, [](const int& v) { return std::size_t(v); }, named("t4.keyed"));
  PoolOptions two = pool_named("t4.all", 2);
  ConsumerPool<int> all(parts, two, [](int&) {});
  ConsumerPool<int> one(fan.subscriber(1), pool_named("t4.sub1"), [](int&) {});
  ConsumerPool<int> k(keyed, pool_named("t4.k"), [](int&) {});
  for (int i = 0; i < 10; ++i) {
    parts.push(i);
    keyed.push(i);
  }
  const Topology t = Topology::capture();
  EXPECT_EQ(t.find("t4.parts")->kind, ComponentKind::PartitionDispatcher);
  EXPECT_EQ(t.find("t4.fan")->kind, ComponentKind::BroadcastDispatcher);
  EXPECT_EQ(t.find("t4.keyed")->kind, ComponentKind::KeyedDispatcher);
  EXPECT_TRUE(has_edge(t, "t4.parts", "t4.all"));
  EXPECT_TRUE(has_edge(t, "t4.fan", "t4.sub1"));
  EXPECT_TRUE(has_edge(t, "t4.keyed", "t4.k"));
  EXPECT_EQ(t.find("t4.parts")->buffer->pushed, 10U);
  EXPECT_EQ(t.find("t4.keyed")->buffer->pushed, 10U);
  // The parts are not listed on their own.
  std::size_t dispatchers_named_like_parts = 0;
  for (const ComponentSnapshot& c : t.components) {
    if (c.name.rfind("t4.parts", 0) == 0) ++dispatchers_named_like_parts;
  }
  EXPECT_EQ(dispatchers_named_like_parts, 1U);
  parts.close();
  fan.close();
  keyed.close();
}

TEST(Topology, JsonAndDotEscapeEveryNameAUserGave) {
  const std::string hostile =
      std::string("<script>alert(\"x\")</script>&\\\n\x01\xff") + "\xe2\x80\xa8";
  Dispatcher<int> d(named(hostile));
  Dispatcher<int> sink(named("t5.sink"));
  Stage s(d, sink, pool_named("t5.stage"),
          [](int& v, Dispatcher<int>::Producer& out) { out.push(v); });
  const Topology t = Topology::capture();
  const std::string json = t.to_json();
  // No byte of the name reaches the JSON raw: no markup, no string end, no control.
  EXPECT_EQ(json.find("<script>"), std::string::npos);
  EXPECT_EQ(json.find('<'), std::string::npos);
  EXPECT_EQ(json.find('&'), std::string::npos);
  EXPECT_EQ(json.find('\n'), std::string::npos);
  EXPECT_EQ(json.find('\x01'), std::string::npos);
  EXPECT_NE(json.find("\\u003cscript\\u003e"), std::string::npos);
  // It is JSON, and the name reads back (the byte that is not UTF-8 as U+FFFD).
  const nlohmann::json parsed = nlohmann::json::parse(json);
  std::string expected = hostile;
  expected.replace(expected.find('\xff'), 1, "\xef\xbf\xbd");
  bool found = false;
  for (const auto& c : parsed["components"]) {
    if (c["name"] == expected) {
      found = true;
      EXPECT_EQ(c["kind"], "dispatcher");
      EXPECT_EQ(c["buffer"]["capacity"], 0);
    }
  }
  EXPECT_TRUE(found);
  ASSERT_FALSE(parsed["edges"].empty());
  // The capture's time, which rates between two captures divide by, is exact in nanoseconds.
  EXPECT_EQ(parsed["captured_at_ns"].get<std::uint64_t>(),
            static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                           t.captured_at.time_since_epoch())
                                           .count()));
  EXPECT_LE(t.captured_at, Topology::capture().captured_at);

  const std::string dot = t.to_dot();
  EXPECT_EQ(dot.rfind("digraph pushstage {", 0), 0U);
  EXPECT_NE(dot.find("alert(\\\"x\\\")"), std::string::npos);  // quotes escaped in the label
  EXPECT_EQ(dot.find("alert(\"x\")"), std::string::npos);
  EXPECT_EQ(dot.find('\x01'), std::string::npos);
  const ComponentSnapshot* from = t.find(hostile);
  const ComponentSnapshot* to = t.find("t5.stage");
  ASSERT_TRUE(from && to);
  EXPECT_NE(dot.find("c" + std::to_string(from->id) + " -> c" + std::to_string(to->id) + ";"),
            std::string::npos);
  d.close();
}

// Components join and leave on several threads while another captures without pause: under the
// sanitizers, no race and no read of a component that has left.
TEST(Topology, JoiningAndLeavingWhileCapturingIsSafe) {
  constexpr int kRounds = 200;
  std::atomic<bool> done{false};
  std::latch start(3);
  std::uint64_t captures = 0;
  std::thread capturer([&] {
    start.arrive_and_wait();
    while (!done.load()) {
      const Topology t = Topology::capture();
      (void)t.to_json();
      ++captures;
    }
  });
  auto churn = [&](const char* prefix) {
    start.arrive_and_wait();
    for (int i = 0; i < kRounds; ++i) {
      Dispatcher<int> d(named(std::string(prefix) + std::to_string(i)));
      ConsumerPool<int> p(d, pool_named(std::string(prefix) + "pool"), [](int&) {});
      d.push(i);
      d.close();
      p.join();
    }
  };
  std::thread a([&] { churn("t6.a"); });
  std::thread b([&] { churn("t6.b"); });
  a.join();
  b.join();
  done.store(true);
  capturer.join();
  EXPECT_GT(captures, 0U);
  const Topology t = Topology::capture();
  for (const ComponentSnapshot& c : t.components) EXPECT_NE(c.name.rfind("t6.", 0), 0U) << c.name;
}

// Modes and Batchers take their name when their construction starts but fill their parts after:
// a capture racing a construction must list a component whole (built, with its parts) or not at
// all. Before join() it read a PartitionDispatcher's partitions, a BroadcastDispatcher's
// subscribers, a KeyedDispatcher's gate and a Batcher's input while they were being built.
TEST(Topology, AComponentBeingBuiltIsNotReadUntilItIsWhole) {
  constexpr int kRounds = 300;
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> torn{0};
  std::latch start(2);
  std::thread capturer([&] {
    start.arrive_and_wait();
    while (!done.load()) {
      for (const ComponentSnapshot& c : Topology::capture().components) {
        if (c.name.rfind("t7.", 0) != 0 || c.kind == ComponentKind::ConsumerPool) continue;
        // Nothing is ever pushed into them: anything else was read from a half-built one.
        if (!c.buffer || c.buffer->pushed != 0 || c.buffer->buffered != 0 ||
            c.buffer->popped != 0) {
          torn.fetch_add(1);
        }
      }
    }
  });
  start.arrive_and_wait();
  const auto hash = [](const int& v) { return static_cast<std::size_t>(v); };
  for (int i = 0; i < kRounds; ++i) {
    PartitionDispatcher<int> parts(16, hash, named("t7.parts"));
    DispatcherOptions fan_options = BroadcastDispatcher<int>::default_options();
    fan_options.name = "t7.fan";
    BroadcastDispatcher<int> fan(8, fan_options);
    KeyedDispatcher<int> keyed(64, hash, named("t7.keyed"));
    BatcherOptions bo;
    bo.name = "t7.batcher";
    bo.processors.pin = false;
    Batcher<int> batcher(bo, [](Batcher<int>::Batch&) {});
  }
  done.store(true);
  capturer.join();
  EXPECT_EQ(torn.load(), 0U);
}

}  // namespace
}  // namespace pushstage
