// nats_sink_test.cpp: Sink against a real nats-server: acknowledgements, the bound on publishes
// in flight (backpressure), failures that are reported instead of hanging, and inputs settled
// only once their output is stored.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "nats_test_support.hpp"
#include "pushstage/nats/nats.hpp"

namespace pushstage::nats {
namespace {

using namespace std::chrono_literals;
using test::Admin;
using test::eventually;
using test::server_url;
using test::unique_name;

SinkOptions sink_to(const std::string& url, const std::string& subject) {
  SinkOptions o;
  o.connection.url = url;
  o.subject = subject;
  return o;
}

TEST(NatsSink, PublishesAndCountsAcknowledgements) {
  const std::string url = server_url();
  Admin admin(url);
  const std::string stream = unique_name("OUT");
  admin.add_stream(stream, stream + ".>");
  Sink sink(sink_to(url, stream + ".results"));
  for (int i = 0; i < 200; ++i) sink.publish(std::to_string(i));
  sink.publish(stream + ".other", "named subject");
  ASSERT_TRUE(sink.flush(30s));
  const SinkStats s = sink.stats();
  EXPECT_EQ(s.published, 201U);
  EXPECT_EQ(s.acked, 201U);
  EXPECT_EQ(s.failed, 0U);
  EXPECT_EQ(s.in_flight, 0U);
  EXPECT_LE(s.max_in_flight, 256U);
  EXPECT_EQ(admin.stream_messages(stream), 201U);
  EXPECT_EQ(admin.message_at(stream, 1), "0");
  EXPECT_EQ(admin.message_at(stream, 200), "199");
  admin.delete_stream(stream);
}

TEST(NatsSink, NeverHasMoreThanMaxInFlight) {
  const std::string url = server_url();
  Admin admin(url);
  const std::string stream = unique_name("BOUND");
  admin.add_stream(stream, stream + ".>");
  SinkOptions o = sink_to(url, stream + ".x");
  o.max_in_flight = 4;
  Sink sink(o);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 250; ++i) sink.publish(std::to_string(t * 1000 + i));
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(sink.flush(30s));
  const SinkStats s = sink.stats();
  EXPECT_EQ(s.acked, 1000U);
  EXPECT_LE(s.max_in_flight, 4U);
  EXPECT_EQ(admin.stream_messages(stream), 1000U);
  admin.delete_stream(stream);
}

TEST(NatsSink, WaitsForRoomWhileTheBrokerDoesNotAnswer) {
  test::LocalServer server;
  Admin admin(server.url());
  const std::string stream = unique_name("STALL");
  admin.add_stream(stream, stream + ".>");
  SinkOptions o = sink_to(server.url(), stream + ".x");
  o.max_in_flight = 3;
  o.ack_timeout = 60s;
  o.room_timeout = 300ms;
  Sink quick(o);  // gives up waiting for room after 300 ms
  o.room_timeout = 60s;
  Sink patient(o);  // waits (the limit only guards against a hang)
  server.pause();   // SIGSTOP: publishes leave, acknowledgements do not come back
  for (int i = 0; i < 3; ++i) quick.publish("early");
  EXPECT_EQ(quick.stats().in_flight, 3U);
  // The 4th finds no room: it waits room_timeout, then says so (never hangs).
  try {
    quick.publish("late");
    ADD_FAILURE() << "publish went ahead with max_in_flight publishes unacknowledged";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("longer than room_timeout"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(quick.stats().waited, 1U);
  EXPECT_EQ(quick.stats().published, 3U);
  // A publisher that waits is released by the acknowledgements once the broker answers.
  for (int i = 0; i < 3; ++i) patient.publish("early");
  std::atomic<bool> done{false};
  std::string error;
  std::thread late([&] {
    try {
      patient.publish("late");
    } catch (const std::exception& e) {
      error = e.what();
    }
    done = true;
  });
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(done.load()) << "publish did not wait for room";
  server.resume();
  late.join();
  EXPECT_EQ(error, "");
  ASSERT_TRUE(quick.flush(30s));
  ASSERT_TRUE(patient.flush(30s));
  EXPECT_EQ(quick.stats().acked, 3U);
  EXPECT_EQ(patient.stats().acked, 4U);
  EXPECT_EQ(patient.stats().waited, 1U);
  EXPECT_LE(quick.stats().max_in_flight, 3U);
  EXPECT_LE(patient.stats().max_in_flight, 3U);
  EXPECT_EQ(admin.stream_messages(stream), 7U);
}

TEST(NatsSink, ReportsFailedPublishesWithoutHanging) {
  const std::string url = server_url();
  std::atomic<int> reported{0};
  std::string first;
  std::mutex m;
  SinkOptions o = sink_to(url, unique_name("nostream") + ".x");  // no stream stores this subject
  o.on_error = [&](const Error& e) {
    const std::lock_guard lock(m);
    if (reported.fetch_add(1) == 0) first = e.what();
  };
  Sink sink(o);
  for (int i = 0; i < 20; ++i) sink.publish("lost");
  ASSERT_TRUE(sink.flush(30s));
  const SinkStats s = sink.stats();
  EXPECT_EQ(s.failed, 20U);
  EXPECT_EQ(s.acked, 0U);
  EXPECT_EQ(reported.load(), 20);
  const std::lock_guard lock(m);
  EXPECT_NE(first.find("publish to '" + o.subject + "' failed"), std::string::npos) << first;
}

TEST(NatsSink, TimesOutPublishesThatAreNeverAcknowledged) {
  test::LocalServer server;
  Admin admin(server.url());
  const std::string stream = unique_name("SILENT");
  admin.add_stream(stream, stream + ".>");
  SinkOptions o = sink_to(server.url(), stream + ".x");
  o.ack_timeout = 200ms;
  Sink sink(o);
  server.pause();
  sink.publish("unanswered");
  ASSERT_TRUE(sink.flush(30s)) << "a publish without acknowledgement stayed in flight";
  EXPECT_EQ(sink.stats().failed, 1U);
  server.resume();
}

TEST(NatsSink, SettlesInputsOnlyOnceTheirOutputIsStored) {
  const std::string url = server_url();
  Admin admin(url);
  const std::string in = unique_name("IN");
  const std::string out = unique_name("OUT");
  admin.add_stream(in, in + ".>");
  admin.add_stream(out, out + ".>");
  constexpr int kEvents = 100;
  admin.publish_ids(in + ".x", 0, kEvents);
  SinkOptions so = sink_to(url, out + ".doubled");
  so.max_in_flight = 8;
  Sink sink(so);
  SourceOptions src;
  src.connection.url = url;
  src.stream = in;
  src.consumer = "c";
  src.poll = 100ms;
  PoolOptions po;
  po.consumers = 2;
  po.pin = false;
  Pipeline p(src, po, [&](Message& m) {
    const int id = std::stoi(std::string(m.data()));
    sink.publish(out + ".doubled", std::to_string(2 * id), std::move(m));
  });
  ASSERT_TRUE(eventually([&] { return p.source_stats().acked == kEvents; }));
  ASSERT_TRUE(sink.flush(30s));
  EXPECT_EQ(admin.stream_messages(out), static_cast<std::uint64_t>(kEvents));
  std::set<std::string> outputs;
  for (std::uint64_t seq = 1; seq <= kEvents; ++seq) outputs.insert(admin.message_at(out, seq));
  EXPECT_EQ(outputs.size(), static_cast<std::size_t>(kEvents));
  EXPECT_EQ(outputs.count("198"), 1U);
  EXPECT_EQ(p.source_stats().naked, 0U);
  EXPECT_EQ(admin.consumer(in, "c").ack_pending, 0);
  p.stop();
  admin.delete_stream(in);
  admin.delete_stream(out);
}

TEST(NatsSink, FailedOutputSendsTheInputBackForRetry) {
  const std::string url = server_url();
  Admin admin(url);
  const std::string in = unique_name("IN");
  admin.add_stream(in, in + ".>");
  admin.publish_ids(in + ".x", 0, 1);
  const std::string nowhere = unique_name("nowhere") + ".x";  // no stream stores it
  Sink sink(sink_to(url, nowhere));
  SourceOptions src;
  src.connection.url = url;
  src.stream = in;
  src.consumer = "c";
  src.poll = 100ms;
  src.max_deliver = 3;
  src.backoff = {};
  PoolOptions po;
  po.pin = false;
  std::atomic<int> calls{0};
  Pipeline p(src, po, [&](Message& m) {
    calls.fetch_add(1);
    sink.publish(nowhere, "result", std::move(m));
  });
  ASSERT_TRUE(eventually([&] { return p.source_stats().terminated == 1; }));
  EXPECT_EQ(calls.load(), 3);
  EXPECT_EQ(p.source_stats().naked, 2U);
  p.stop();
  admin.delete_stream(in);
}

// A Sink that never published has no publish-acknowledgement state in nats.c, whose
// js_PublishAsyncGetPendingList then dereferences a null pointer: closing must not ask it.
TEST(NatsSink, ClosesWithoutHavingPublished) {
  const SinkOptions o = sink_to(server_url(), unique_name("idle") + ".x");
  { Sink idle(o); }
  Sink again(o);
  EXPECT_EQ(again.stats().published, 0U);
}

TEST(NatsSink, RejectsOptionsOutOfRangeNamingThem) {
  SinkOptions o = sink_to("nats://127.0.0.1:1", "x");
  o.max_in_flight = 0;
  try {
    Sink s(o);
    ADD_FAILURE() << "accepted max_in_flight 0";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(
        std::string(e.what()).find("SinkOptions::max_in_flight must be in [1, 1000000]; got 0"),
        std::string::npos)
        << e.what();
  }
  o.max_in_flight = 1;
  o.ack_timeout = 0ms;
  EXPECT_THROW(Sink{o}, std::invalid_argument);
  o.ack_timeout = 1s;
  try {
    Sink s(o);
    ADD_FAILURE() << "connected to nats://127.0.0.1:1";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Sink: cannot connect to nats://127.0.0.1:1"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace pushstage::nats
