// nats_source_test.cpp: Source, Message and Pipeline against a real nats-server (the nats_server
// fixture, or a server the test owns when it must stop or restart it). Asserts counts, orders
// and bounds; waits only to guard against hangs.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ack_reply.hpp"
#include "nats_test_support.hpp"
#include "pipeline_wait.hpp"
#include "pushstage/dispatcher.hpp"
#include "pushstage/nats/nats.hpp"

#ifndef PUSHSTAGE_NATS_WORKER
#error "PUSHSTAGE_NATS_WORKER: the nats_test_worker executable (tests/nats/CMakeLists.txt)"
#endif

namespace pushstage::nats {
namespace {

using namespace std::chrono_literals;
using test::Admin;
using test::eventually;
using test::server_url;
using test::unique_name;

SourceOptions options_for(const std::string& url, const std::string& stream,
                          const std::string& consumer) {
  SourceOptions o;
  o.connection.url = url;
  o.stream = stream;
  o.consumer = consumer;
  o.poll = 100ms;
  o.backoff = {};
  return o;
}

PoolOptions pool_of(std::size_t consumers, std::size_t max_demand = 1) {
  PoolOptions p;
  p.consumers = consumers;
  p.max_demand = max_demand;
  p.pin = false;
  return p;
}

int id_of(const Message& m) { return std::stoi(std::string(m.data())); }

// Handlers wait here until the test hands out permits; counts who came in.
class Gate {
 public:
  void pass() {
    std::unique_lock lock(m_);
    ++entered_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return permits_ > 0; });
    --permits_;
  }
  void allow(int n) {
    const std::lock_guard lock(m_);
    permits_ += n;
    cv_.notify_all();
  }
  int entered() {
    const std::lock_guard lock(m_);
    return entered_;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int entered_ = 0;
  int permits_ = 0;
};

// Ids seen by handlers, with how often.
class Seen {
 public:
  void add(int id) {
    const std::lock_guard lock(m_);
    ++count_[id];
    ++total_;
  }
  std::size_t unique() {
    const std::lock_guard lock(m_);
    return count_.size();
  }
  std::size_t total() {
    const std::lock_guard lock(m_);
    return total_;
  }
  int count(int id) {
    const std::lock_guard lock(m_);
    const auto it = count_.find(id);
    return it == count_.end() ? 0 : it->second;
  }
  std::set<int> ids() {
    const std::lock_guard lock(m_);
    std::set<int> out;
    for (const auto& [id, n] : count_) out.insert(id);
    return out;
  }

 private:
  std::mutex m_;
  std::map<int, int> count_;
  std::size_t total_ = 0;
};

// ---- demand ----

TEST(NatsPipeline, KeepsExactlyAsManyInFlightAsDemanded) {
  struct Shape {
    std::size_t consumers, max_demand;
  };
  for (const Shape shape : {Shape{3, 1}, Shape{2, 4}}) {
    const std::size_t demand = shape.consumers * shape.max_demand;
    SCOPED_TRACE("consumers " + std::to_string(shape.consumers) + " x max_demand " +
                 std::to_string(shape.max_demand));
    const std::string url = server_url();
    Admin admin(url);
    const std::string stream = unique_name("DEMAND");
    const std::string consumer = "workers";
    admin.add_stream(stream, stream + ".>");
    constexpr int kEvents = 40;
    admin.publish_ids(stream + ".in", 0, kEvents);

    Gate gate;
    Seen seen;
    Pipeline p(options_for(url, stream, consumer), pool_of(shape.consumers, shape.max_demand),
               [&](Message& m) {
                 gate.pass();
                 seen.add(id_of(m));
               });
    ASSERT_TRUE(eventually([&] { return p.source_stats().in_flight == demand; }));
    ASSERT_TRUE(eventually([&] { return gate.entered() == static_cast<int>(shape.consumers); }));
    // Give a source that over-fetches time to do it (3 polls), then look from both sides.
    std::this_thread::sleep_for(300ms);
    SourceStats s = p.source_stats();
    EXPECT_EQ(s.demand, demand);
    EXPECT_EQ(s.in_flight, demand);
    EXPECT_EQ(s.fetched, demand);
    EXPECT_EQ(s.max_in_flight, demand);
    test::ConsumerState broker = admin.consumer(stream, consumer);
    EXPECT_EQ(broker.ack_pending, static_cast<std::int64_t>(demand));
    EXPECT_EQ(broker.pending, kEvents - demand);

    // One settlement frees one unit of demand: exactly one more message is fetched.
    gate.allow(1);
    ASSERT_TRUE(eventually([&] { return p.source_stats().fetched == demand + 1; }));
    std::this_thread::sleep_for(300ms);
    s = p.source_stats();
    EXPECT_EQ(s.fetched, demand + 1);
    EXPECT_EQ(s.acked, 1U);
    EXPECT_EQ(s.in_flight, demand);
    broker = admin.consumer(stream, consumer);
    EXPECT_EQ(broker.ack_pending, static_cast<std::int64_t>(demand));
    EXPECT_EQ(broker.pending, kEvents - demand - 1);

    gate.allow(1'000'000);
    ASSERT_TRUE(eventually([&] { return seen.total() == kEvents; }));
    ASSERT_TRUE(eventually([&] { return admin.consumer(stream, consumer).ack_pending == 0; }));
    p.stop();
    s = p.source_stats();
    EXPECT_EQ(seen.unique(), static_cast<std::size_t>(kEvents));
    EXPECT_EQ(s.fetched, static_cast<std::uint64_t>(kEvents));
    EXPECT_EQ(s.acked, static_cast<std::uint64_t>(kEvents));
    EXPECT_EQ(s.max_in_flight, demand) << "never more in flight than demanded";
    EXPECT_EQ(s.in_flight, 0U);
    EXPECT_TRUE(s.stopped);
    broker = admin.consumer(stream, consumer);
    EXPECT_EQ(broker.pending, 0U);
    EXPECT_EQ(broker.ack_floor, static_cast<std::uint64_t>(kEvents));
    admin.delete_stream(stream);
  }
}

TEST(NatsPipeline, AcksOnlyAfterTheHandlerReturns) {
  const std::string url = server_url();
  Admin admin(url);
  const std::string stream = unique_name("ACK");
  admin.add_stream(stream, stream + ".>");
  admin.publish_ids(stream + ".in", 7, 1);
  Gate gate;
  Pipeline p(options_for(url, stream, "c"), pool_of(1), [&](Message&) { gate.pass(); });
  ASSERT_TRUE(eventually([&] { return gate.entered() == 1; }));
  std::this_thread::sleep_for(200ms);
  test::ConsumerState broker = admin.consumer(stream, "c");
  EXPECT_EQ(broker.ack_pending, 1) << "acked while the handler still runs";
  EXPECT_EQ(broker.ack_floor, 0U);
  EXPECT_EQ(p.source_stats().acked, 0U);
  gate.allow(1);
  ASSERT_TRUE(eventually([&] { return admin.consumer(stream, "c").ack_floor == 1; }));
  EXPECT_EQ(admin.consumer(stream, "c").ack_pending, 0);
  EXPECT_EQ(p.source_stats().acked, 1U);
  admin.delete_stream(stream);
}

// ---- failures: nak with backoff, term after the last attempt ----

TEST(NatsPipeline, FailedHandlerIsRetriedWithBackoffThenTerminated) {
  const std::string url = server_url();
  Admin admin(url);
  const std::string stream = unique_name("RETRY");
  admin.add_stream(stream, stream + ".>");
  SourceOptions o = options_for(url, stream, "c");
  o.max_deliver = 3;
  o.backoff = {60ms, 120ms};
  std::mutex m;
  std::vector<std::pair<std::uint64_t, std::chrono::steady_clock::time_point>> bad;  // deliveries
  std::atomic<int> good{0};
  std::atomic<int> errors{0};
  PoolOptions po = pool_of(2);
  po.on_error = [&](std::exception_ptr) { errors.fetch_add(1); };
  Pipeline p(o, po, [&](Message& msg) {
    if (msg.data() == "bad") {
      const std::lock_guard lock(m);
      bad.emplace_back(msg.deliveries(), std::chrono::steady_clock::now());
      throw std::runtime_error("cannot handle");
    }
    good.fetch_add(1);
  });
  admin.publish(stream + ".in", "bad");
  for (int i = 0; i < 5; ++i) admin.publish(stream + ".in", "good");
  ASSERT_TRUE(eventually([&] { return p.source_stats().terminated == 1; }));
  ASSERT_TRUE(eventually([&] { return good.load() == 5; }));
  std::this_thread::sleep_for(400ms);  // a 4th delivery would come by now
  {
    const std::lock_guard lock(m);
    ASSERT_EQ(bad.size(), 3U);
    for (std::size_t i = 0; i < bad.size(); ++i) EXPECT_EQ(bad[i].first, i + 1);
    // nak with delay: a redelivery never comes before its backoff (lower bounds hold anywhere).
    EXPECT_GE(bad[1].second - bad[0].second, 55ms);
    EXPECT_GE(bad[2].second - bad[1].second, 110ms);
  }
  const SourceStats s = p.source_stats();
  EXPECT_EQ(s.naked, 2U);
  EXPECT_EQ(s.terminated, 1U);
  EXPECT_EQ(s.acked, 5U);
  EXPECT_EQ(s.redelivered, 2U);
  EXPECT_EQ(errors.load(), 3);
  std::uint64_t failed = 0;
  for (const ConsumerStats& c : p.consumer_stats()) failed += c.failed;
  EXPECT_EQ(failed, 3U);
  ASSERT_TRUE(eventually([&] { return admin.consumer(stream, "c").ack_pending == 0; }));
  admin.delete_stream(stream);
}

TEST(NatsPipeline, MessageFailedOnceIsRedeliveredAndAcked) {
  const std::string url = server_url();
  Admin admin(url);
  const std::string stream = unique_name("ONCE");
  admin.add_stream(stream, stream + ".>");
  std::atomic<int> calls{0};
  std::atomic<std::uint64_t> last_deliveries{0};
  Pipeline p(options_for(url, stream, "c"), pool_of(1), [&](Message& msg) {
    calls.fetch_add(1);
    last_deliveries = msg.deliveries();
    if (msg.deliveries() == 1) throw std::runtime_error("transient");
  });
  admin.publish(stream + ".in", "x");
  ASSERT_TRUE(eventually([&] { return p.source_stats().acked == 1; }));
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(last_deliveries.load(), 2U);
  EXPECT_EQ(p.source_stats().naked, 1U);
  EXPECT_EQ(p.source_stats().redelivered, 1U);
  admin.delete_stream(stream);
}

TEST(NatsPipeline, HandlerMaySettleOrDropItsMessage) {
  const std::string url = server_url();
  Admin admin(url);
  const std::string stream = unique_name("SELF");
  admin.add_stream(stream, stream + ".>");
  admin.publish_ids(stream + ".in", 0, 4);
  std::atomic<int> terms{0};
  Seen seen;
  Pipeline p(options_for(url, stream, "c"), pool_of(1), [&](Message& msg) {
    seen.add(id_of(msg));
    if (id_of(msg) % 2 == 0) {
      msg.term();  // settled here: the pipeline must not ack it as well
      terms.fetch_add(1);
    } else if (id_of(msg) == 1 && msg.deliveries() == 1) {
      const Message dropped = std::move(msg);  // destroyed unsettled: nak'ed, back at once
    }
  });
  ASSERT_TRUE(eventually([&] {
    return p.source_stats().in_flight == 0 && terms.load() == 2 && p.source_stats().acked == 2;
  }));
  EXPECT_EQ(p.source_stats().terminated, 2U);
  EXPECT_EQ(p.source_stats().naked, 1U);
  EXPECT_EQ(seen.count(1), 2);
  EXPECT_EQ(seen.count(3), 1);
  p.stop();
  admin.delete_stream(stream);
}

// ---- scale-out in one process ----

TEST(NatsPipeline, TwoPipelinesShareOneDurableConsumer) {
  const std::string url = server_url();
  Admin admin(url);
  const std::string stream = unique_name("SHARE");
  admin.add_stream(stream, stream + ".>");
  constexpr int kEvents = 300;
  Seen seen;
  std::atomic<int> a{0};
  std::atomic<int> b{0};
  auto handler = [&](std::atomic<int>& mine) {
    return [&](Message& m) {
      seen.add(id_of(m));
      mine.fetch_add(1);
      std::this_thread::sleep_for(2ms);
    };
  };
  Pipeline pa(options_for(url, stream, "shared"), pool_of(2), handler(a));
  Pipeline pb(options_for(url, stream, "shared"), pool_of(2), handler(b));
  admin.publish_ids(stream + ".in", 0, kEvents);
  ASSERT_TRUE(eventually([&] { return seen.unique() == kEvents; }));
  pa.stop();
  pb.stop();
  EXPECT_EQ(seen.total(), static_cast<std::size_t>(kEvents)) << "no failures: no duplicates";
  EXPECT_GT(a.load(), 0);
  EXPECT_GT(b.load(), 0);
  std::cout << "[ shared   ] pipeline A handled " << a.load() << ", B " << b.load() << "\n";
  EXPECT_EQ(pa.source_stats().acked + pb.source_stats().acked, static_cast<std::uint64_t>(kEvents));
  admin.delete_stream(stream);
}

// ---- at least once: a process killed mid-batch ----

TEST(NatsPipeline, RedeliversWhatAKilledProcessHeld) {
  const std::string url = server_url();
  Admin admin(url);
  const std::string stream = unique_name("KILL");
  admin.add_stream(stream, stream + ".>");
  constexpr int kEvents = 60;
  constexpr int kAckedByChild = 10;
  admin.publish_ids(stream + ".in", 0, kEvents);

  // The child: 2 consumers x max_demand 4, ack_wait 1 s; its first 10 handlers return, the rest
  // block, so when it dies it holds up to 8 fetched, unacked messages.
  test::Child child({PUSHSTAGE_NATS_WORKER, url, stream, "work", "2", "4", "1000",
                     std::to_string(kAckedByChild)});
  std::set<int> child_ids;
  // Wait until it is mid-batch: 10 handled, and 2 more started (blocked, so surely unacked).
  // ("ready" may come after the first ids: the worker fetches as soon as its pipeline exists.)
  while (child_ids.size() < kAckedByChild + 2) {
    const auto line = child.read_line();
    ASSERT_TRUE(line.has_value()) << "the worker stopped printing";
    if (*line != "ready") child_ids.insert(std::stoi(*line));
  }
  child.kill(SIGKILL);
  EXPECT_TRUE(WIFSIGNALED(child.wait()));

  Seen seen;
  SourceOptions o = options_for(url, stream, "work");
  o.ack_wait = 1000ms;
  Pipeline p(o, pool_of(2), [&](Message& m) { seen.add(id_of(m)); });
  ASSERT_TRUE(eventually([&] {
    std::set<int> all = seen.ids();
    all.insert(child_ids.begin(), child_ids.end());
    return all.size() == kEvents;
  })) << "a message was lost";
  ASSERT_TRUE(eventually([&] {
    const test::ConsumerState c = admin.consumer(stream, "work");
    return c.ack_pending == 0 && c.pending == 0;
  }));
  p.stop();
  std::size_t duplicates = 0;
  for (const int id : child_ids) duplicates += static_cast<std::size_t>(seen.count(id));
  duplicates += seen.total() - seen.unique();
  // The two blocked handlers' messages were never acked: they are redelivered, so handled twice.
  EXPECT_GE(duplicates, 2U);
  EXPECT_GE(p.source_stats().redelivered, 2U);
  std::cout << "[ at least once ] killed worker handled " << child_ids.size()
            << "; survivor handled " << seen.total() << " (" << p.source_stats().redelivered
            << " redelivered); duplicates " << duplicates << "; lost 0 of " << kEvents << "\n";
  ::testing::Test::RecordProperty("duplicates", static_cast<int>(duplicates));
  admin.delete_stream(stream);
}

// ---- the broker going away ----

TEST(NatsPipeline, ResumesAfterTheServerRestarts) {
  test::LocalServer server;
  Admin setup(server.url());
  const std::string stream = unique_name("RESTART");
  setup.add_stream(stream, stream + ".>", /*file_storage=*/true);
  constexpr int kBefore = 150;
  constexpr int kAfter = 100;
  setup.publish_ids(stream + ".in", 0, kBefore);

  Seen seen;
  SourceOptions o = options_for(server.url(), stream, "c");
  o.connection.reconnect_wait = 50ms;
  o.ack_wait = 2000ms;
  std::atomic<int> errors{0};
  o.on_error = [&](const Error&) { errors.fetch_add(1); };
  Pipeline p(o, pool_of(2), [&](Message& m) {
    seen.add(id_of(m));
    std::this_thread::sleep_for(1ms);
  });
  ASSERT_TRUE(eventually([&] { return seen.unique() >= 40; }));
  server.stop();
  server.start();
  Admin after(server.url());
  after.publish_ids(stream + ".in", kBefore, kAfter);
  ASSERT_TRUE(eventually([&] { return seen.unique() == kBefore + kAfter; }))
      << "handled " << seen.unique() << " of " << kBefore + kAfter;
  ASSERT_TRUE(eventually([&] {
    const test::ConsumerState c = after.consumer(stream, "c");
    return c.ack_pending == 0 && c.pending == 0;
  }));
  const SourceStats s = p.source_stats();
  EXPECT_GE(s.reconnects, 1U);
  EXPECT_TRUE(s.connected);
  EXPECT_FALSE(s.stopped);
  std::cout << "[ restart  ] handled " << seen.total() << " for " << kBefore + kAfter
            << " messages (" << seen.total() - seen.unique() << " duplicates), " << s.reconnects
            << " reconnect(s), " << s.fetch_errors << " fetch errors reported\n";
  p.stop();
}

TEST(NatsPipeline, StopsWithAClearErrorWhenTheServerIsGoneForGood) {
  test::LocalServer server;
  Admin setup(server.url());
  const std::string stream = unique_name("GONE");
  setup.add_stream(stream, stream + ".>");
  SourceOptions o = options_for(server.url(), stream, "c");
  o.connection.max_reconnects = 2;
  o.connection.reconnect_wait = 50ms;
  std::mutex m;
  std::vector<std::string> reported;
  o.on_error = [&](const Error& e) {
    const std::lock_guard lock(m);
    reported.emplace_back(e.what());
  };
  Pipeline p(o, pool_of(1), [](Message&) {});
  server.stop();
  const test::WaitOutcome w = test::wait_elsewhere(p);
  const std::string& error = w.error;
  ASSERT_TRUE(w.returned) << "wait() hung after the server went away";
  EXPECT_NE(error.find("closed for good"), std::string::npos) << error;
  EXPECT_NE(error.find(server.url()), std::string::npos) << error;
  EXPECT_TRUE(p.source_stats().stopped);
  const std::lock_guard lock(m);
  ASSERT_FALSE(reported.empty());
  EXPECT_EQ(reported.back(), error);
}

// ---- errors at start: clear, and no hang ----

std::string construction_error(const SourceOptions& o) {
  Dispatcher<Message> d;
  try {
    Source s(d, 1, o);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(NatsSource, UnreachableServerIsAClearError) {
  SourceOptions o = options_for("nats://127.0.0.1:1", "S", "c");
  const std::string e = construction_error(o);
  EXPECT_NE(e.find("cannot connect to nats://127.0.0.1:1"), std::string::npos) << e;
  // A URL that is not one is refused before any I/O, and named.
  o.connection.url = "this is not a url";
  Dispatcher<Message> d;
  try {
    Source s(d, 1, o);
    ADD_FAILURE() << "a source accepted the url '" << o.connection.url << "'";
  } catch (const std::invalid_argument& bad) {
    EXPECT_NE(std::string(bad.what()).find("connection.url must be a NATS URL"), std::string::npos)
        << bad.what();
    EXPECT_NE(std::string(bad.what()).find("got 'this is not a url'"), std::string::npos)
        << bad.what();
  }
}

// The reply-subject parser (src/nats/ack_reply.hpp), which gives Message its sequence and delivery
// count, reads live messages (first deliveries and redeliveries) exactly as nats.c does.
TEST(NatsSource, ReadsDeliveryMetadataAsNatsCDoes) {
  const std::string url = server_url();
  const std::string stream = unique_name("META");
  Admin admin(url);
  admin.add_stream(stream, stream + ".>");
  admin.publish_ids(stream + ".x", 1, 3);
  natsConnection* nc = nullptr;
  ASSERT_EQ(natsConnection_ConnectTo(&nc, url.c_str()), NATS_OK);
  jsCtx* js = nullptr;
  ASSERT_EQ(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
  natsSubscription* sub = nullptr;
  ASSERT_EQ(js_PullSubscribe(&sub, js, (stream + ".>").c_str(), "meta", nullptr, nullptr, nullptr),
            NATS_OK);
  int compared = 0;
  for (std::uint64_t delivery = 1; delivery <= 2; ++delivery) {  // 2: redelivered after a nak
    for (int got = 0; got < 3;) {
      natsMsgList list{};
      ASSERT_EQ(natsSubscription_Fetch(&list, sub, 3 - got, 30000, nullptr), NATS_OK);
      for (int i = 0; i < list.Count; ++i, ++got) {
        natsMsg* m = list.Msgs[i];
        jsMsgMetaData* meta = nullptr;
        ASSERT_EQ(natsMsg_GetMetaData(&meta, m), NATS_OK);
        const auto ours = detail::parse_ack_reply(natsMsg_GetReply(m));
        ASSERT_TRUE(ours.has_value()) << natsMsg_GetReply(m);
        EXPECT_EQ(ours->stream, meta->Stream);
        EXPECT_EQ(ours->consumer, meta->Consumer);
        EXPECT_EQ(ours->delivered, meta->NumDelivered);
        EXPECT_EQ(ours->delivered, delivery);
        EXPECT_EQ(ours->stream_sequence, meta->Sequence.Stream);
        EXPECT_EQ(ours->consumer_sequence, meta->Sequence.Consumer);
        EXPECT_EQ(ours->timestamp, meta->Timestamp);
        EXPECT_EQ(ours->pending, meta->NumPending);
        jsMsgMetaData_Destroy(meta);
        EXPECT_EQ(delivery == 1 ? natsMsg_Nak(m, nullptr) : natsMsg_Ack(m, nullptr), NATS_OK);
        ++compared;
      }
      natsMsgList_Destroy(&list);
    }
  }
  EXPECT_EQ(compared, 6);
  natsSubscription_Destroy(sub);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  admin.delete_stream(stream);
}

TEST(NatsSource, MissingStreamIsAClearError) {
  const std::string url = server_url();
  const std::string stream = unique_name("MISSING");
  Dispatcher<Message> d;
  try {
    Source s(d, 1, options_for(url, stream, "c"));
    FAIL() << "a source on a missing stream started";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("stream '" + stream + "'"), std::string::npos) << what;
    EXPECT_NE(what.find("not found"), std::string::npos) << what;
    EXPECT_EQ(e.js_code(), 10059);
  }
  EXPECT_FALSE(d.closed()) << "a source that never started leaves the dispatcher alone";
}

TEST(NatsSource, ServerWithoutJetStreamIsAClearError) {
  test::LocalServer plain(/*jetstream=*/false);
  const std::string e = construction_error(options_for(plain.url(), "S", "c"));
  EXPECT_NE(e.find("is JetStream enabled"), std::string::npos) << e;
}

TEST(NatsSource, RejectsOptionsOutOfRangeNamingThem) {
  const SourceOptions good = options_for("nats://127.0.0.1:1", "S", "c");
  struct Case {
    const char* expect;
    std::function<void(SourceOptions&)> change;
  };
  const std::vector<Case> cases = {
      {"SourceOptions::stream must be 1 to 255 characters",
       [](SourceOptions& o) { o.stream = ""; }},
      {"SourceOptions::consumer must be 1 to 255 characters without . * >",
       [](SourceOptions& o) { o.consumer = "a.b"; }},
      {"SourceOptions::max_deliver must be in [1, 1000]; got 0",
       [](SourceOptions& o) { o.max_deliver = 0; }},
      {"SourceOptions::max_ack_pending must be in [1, 1000000]; got 0",
       [](SourceOptions& o) { o.max_ack_pending = 0; }},
      {"SourceOptions::poll must be in [10 ms, 60000 ms]; got 5 ms",
       [](SourceOptions& o) { o.poll = 5ms; }},
      {"SourceOptions::ack_wait must be in [1 ms, 86400000 ms]; got 0 ms",
       [](SourceOptions& o) { o.ack_wait = 0ms; }},
      {"SourceOptions::backoff (each delay) must be in [0 ms, 86400000 ms]; got -1 ms",
       [](SourceOptions& o) {
         o.backoff = {1ms, -1ms};
       }},
      {"SourceOptions::connection.url must be a NATS URL",
       [](SourceOptions& o) { o.connection.url = ""; }},
      {"SourceOptions::connection.max_reconnects must be in [-1, 1000000]; got -2",
       [](SourceOptions& o) { o.connection.max_reconnects = -2; }},
      {"SourceOptions::connection.connect_timeout must be in [1 ms, 600000 ms]; got 0 ms",
       [](SourceOptions& o) { o.connection.connect_timeout = 0ms; }},
  };
  for (const Case& c : cases) {
    SourceOptions o = good;
    c.change(o);
    Dispatcher<Message> d;
    try {
      Source s(d, 1, o);
      ADD_FAILURE() << "accepted; expected: " << c.expect;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos) << e.what();
    }
  }
  Dispatcher<Message> d;
  EXPECT_THROW(Source(d, 0, good), std::invalid_argument);
  try {
    Source s(d, 0, good);
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("demand must be in [1, 1000000]; got 0"),
              std::string::npos)
        << e.what();
  }
}

TEST(NatsMessage, EmptyMessageCannotBeSettled) {
  Message m;
  EXPECT_TRUE(m.empty());
  EXPECT_TRUE(m.data().empty());
  EXPECT_THROW(m.ack(), std::logic_error);
  EXPECT_THROW((void)m.fail(), std::logic_error);
}

// ---- one retry policy for pools and the broker ----

TEST(NatsSourceOptions, SetRetryTranslatesAPoolsPolicyForTheBroker) {
  SourceOptions o;
  RetryPolicy r;
  r.max_attempts = 5;
  r.backoff = 250us;  // rounded up to the broker's whole milliseconds
  r.multiplier = 4;
  r.max_backoff = 20ms;
  o.set_retry(r);
  EXPECT_EQ(o.max_deliver, 5);
  const std::vector<std::chrono::milliseconds> expected{1ms, 1ms, 4ms, 16ms};
  EXPECT_EQ(o.backoff, expected);
  r.max_attempts = 1;  // no retry: one delivery, no delays
  o.set_retry(r);
  EXPECT_EQ(o.max_deliver, 1);
  EXPECT_TRUE(o.backoff.empty());
}

TEST(NatsSourceOptions, SetRetryNamesTheFieldAndItsRange) {
  SourceOptions o;
  const auto message_of = [&](const RetryPolicy& r) {
    try {
      o.set_retry(r);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  RetryPolicy r;
  r.max_attempts = 0;
  EXPECT_EQ(message_of(r), "RetryPolicy::max_attempts must be in [1, 100]; got 0");
  r = RetryPolicy{};
  r.backoff = -1ns;
  EXPECT_EQ(message_of(r), "RetryPolicy::backoff must be >= 0 ns; got -1 ns");
  r = RetryPolicy{};
  r.multiplier = 0.5;
  EXPECT_EQ(message_of(r), "RetryPolicy::multiplier must be in [1, 100]; got 0.500000");
  r = RetryPolicy{};
  r.max_backoff = 1ms;
  EXPECT_EQ(message_of(r),
            "RetryPolicy::max_backoff must be >= RetryPolicy::backoff (10000000 ns); got 1000000 "
            "ns");
  r.max_backoff = 25h;
  EXPECT_EQ(message_of(r),
            "RetryPolicy::max_backoff must be at most 24 h (86400000000000 ns) for the broker; got "
            "90000000000000 ns");
  EXPECT_EQ(o.max_deliver, 5);  // a refused policy changes nothing
}

}  // namespace
}  // namespace pushstage::nats
