// nats_feed_test.cpp: from_jetstream() as the feed of a pushstage::Pipeline: each delivery is
// settled with the broker once, through the pipeline's acknowledgement (JetStreamAcknowledger):
// acked after its batch or its handler, failed (nak, then term after max_deliver) when the
// pipeline fails it, given back at once when stop() fails it. Runs against the nats_server
// fixture. Asserts counts and orders; waits only guard against hangs or give a wrong redelivery
// the time to show up.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "nats_test_support.hpp"
#include "pushstage/nats/nats.hpp"
#include "pushstage/stages/pipeline.hpp"

namespace pushstage::nats {
namespace {

using namespace std::chrono_literals;
using In = pushstage::Message<Message>;

PipelineOptions<Message> pipeline_options() {
  PipelineOptions<Message> o;
  o.processors.consumers = 2;
  o.processors.pin = false;
  o.processors.max_demand = 4;
  return o;
}

PipelineBatcher<Message> batcher(std::string name, BatchFlush flush) {
  PipelineBatcher<Message> b;
  b.name = std::move(name);
  b.options.batch_size = 4;
  b.options.batch_timeout = 20ms;
  b.options.flush = flush;
  b.options.processors.pin = false;
  return b;
}

// Each test reads a stream of its own (deleted at its end) through the durable consumer "c".
class NatsFeed : public ::testing::Test {
 protected:
  void SetUp() override { admin_.add_stream(stream_, stream_ + ".>"); }
  void TearDown() override { admin_.delete_stream(stream_); }
  // The stream through consumer "c", polled every 100 ms.
  SourceOptions source() const {
    SourceOptions o;
    o.poll = 100ms;
    o.ack_wait = 1000ms;  // short: a message left unsettled comes back within the test
    o.backoff = {};       // a nak'ed message comes back at once
    o.connection.url = url_;
    o.stream = stream_;
    o.consumer = "c";
    return o;
  }
  void publish(const std::string& data) { admin_.publish(stream_ + ".in", data); }
  // Waits until the broker has the first n messages acked and none waiting for an ack.
  bool acked(int n) {
    return test::eventually([&] {
      const test::ConsumerState c = admin_.consumer(stream_, "c");
      return c.ack_floor == static_cast<std::uint64_t>(n) && c.ack_pending == 0;
    });
  }
  // The broker holds nothing more for "c": nothing waits for an ack or to be delivered.
  void expect_settled() {
    const test::ConsumerState c = admin_.consumer(stream_, "c");
    EXPECT_EQ(c.ack_pending, 0);
    EXPECT_EQ(c.pending, 0U);
    EXPECT_EQ(c.redelivered, 0);
  }

  const std::string url_ = test::server_url();
  test::Admin admin_{url_};
  const std::string stream_ = test::unique_name("FEED");
};

// Each payload's deliveries, in the order the handler saw them.
class Seen {
 public:
  void add(const Message& m) {
    const std::lock_guard lock(m_);
    seen_[std::string(m.data())].push_back(m.deliveries());
  }
  std::map<std::string, std::vector<std::uint64_t>> get() {
    const std::lock_guard lock(m_);
    return seen_;
  }
  std::size_t size() {
    const std::lock_guard lock(m_);
    return seen_.size();
  }

 private:
  std::mutex m_;
  std::map<std::string, std::vector<std::uint64_t>> seen_;
};

// Every message is handled and acked once: half after a batch, half after handle_message; one
// throws on its first attempt and is retried locally, without a redelivery.
TEST_F(NatsFeed, EveryDeliveryIsAckedOnceThroughThePipeline) {
  constexpr int kEvents = 40;
  Seen handled;
  Seen batched;
  std::atomic<int> throws{0};
  PipelineOptions<Message> o = pipeline_options();
  o.processors.retry.max_attempts = 2;
  o.processors.retry.backoff = 10ms;
  o.handle_message = [&](In& m) {
    if (m.data().data() == "7" && throws.fetch_add(1) == 0) throw std::runtime_error("first try");
    handled.add(m.data());
    if (std::stoi(std::string(m.data().data())) % 2 == 0) m.put_batcher("even");
  };
  o.batchers.push_back(batcher("even", BatchFlush::OnTimeout));
  o.handle_batch = [&](std::span<In> batch, const BatchInfo& info) {
    EXPECT_EQ(info.batcher, "even");
    for (In& m : batch) batched.add(m.data());
  };
  std::atomic<int> failed{0};
  o.handle_failed = [&](std::span<In> f) { failed.fetch_add(static_cast<int>(f.size())); };
  {
    pushstage::Pipeline<Message> p(o, from_jetstream(source()));
    admin_.publish_ids(stream_ + ".in", 0, kEvents);
    ASSERT_TRUE(acked(kEvents));
    std::this_thread::sleep_for(1500ms);  // past ack_wait: anything unacked would be redelivered
    EXPECT_TRUE(p.stop(10s));
    const PipelineStats s = p.stats();
    EXPECT_EQ(s.successful, static_cast<std::uint64_t>(kEvents));
    EXPECT_EQ(s.failed, 0U);
  }
  EXPECT_EQ(throws.load(), 2) << "one failed attempt, one local retry";
  EXPECT_EQ(failed.load(), 0);
  const auto h = handled.get();
  ASSERT_EQ(h.size(), static_cast<std::size_t>(kEvents));
  for (const auto& [data, deliveries] : h) {
    EXPECT_EQ(deliveries, std::vector<std::uint64_t>{1}) << "message " << data;
  }
  EXPECT_EQ(batched.size(), static_cast<std::size_t>(kEvents / 2));
  expect_settled();
}

// A message the pipeline fails (Message::fail in handle_batch) is nak'ed under the source's retry
// policy and terminated after max_deliver: the handler sees deliveries 1, 2, 3 and no more.
TEST_F(NatsFeed, AFailedMessageIsNakedThenTerminatedAfterMaxDeliver) {
  SourceOptions so = source();
  so.max_deliver = 3;
  Seen handled;
  PipelineOptions<Message> o = pipeline_options();
  o.handle_message = [&](In& m) {
    handled.add(m.data());
    m.put_batcher("all");
  };
  o.batchers.push_back(batcher("all", BatchFlush::OnTimeout));
  o.handle_batch = [&](std::span<In> batch, const BatchInfo&) {
    for (In& m : batch) {
      if (m.data().data() == "bad") m.fail("refused by the sink");
    }
  };
  pushstage::Pipeline<Message> p(o, from_jetstream(so));
  publish("bad");
  for (int i = 0; i < 5; ++i) publish("good" + std::to_string(i));
  ASSERT_TRUE(test::eventually([&] {
    const auto h = handled.get();
    return h.size() == 6 && h.at("bad").size() == 3 && p.stats().failed == 3;
  }));
  ASSERT_TRUE(acked(6));
  std::this_thread::sleep_for(1500ms);  // past ack_wait: a 4th delivery would be here
  EXPECT_TRUE(p.stop(10s));
  const auto h = handled.get();
  EXPECT_EQ(h.at("bad"), (std::vector<std::uint64_t>{1, 2, 3}));
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(h.at("good" + std::to_string(i)), std::vector<std::uint64_t>{1});
  }
  const PipelineStats s = p.stats();
  EXPECT_EQ(s.successful, 5U);
  EXPECT_EQ(s.marked, 3U);
  expect_settled();
}

// stop() past its deadline: messages still held by a batcher (BatchFlush::OnClose) fail with
// Shutdown and are given back to the broker at once (nak), so the next pipeline gets each of
// them as a second delivery and acks it.
TEST_F(NatsFeed, MessagesUnfinishedAtStopAreGivenBackForTheNextConsumer) {
  constexpr int kEvents = 6;  // fewer than a batch: all of them wait for close
  Seen first;
  PipelineOptions<Message> o = pipeline_options();
  o.handle_message = [&](In& m) {
    first.add(m.data());
    m.put_batcher("held");
  };
  PipelineBatcher<Message> held = batcher("held", BatchFlush::OnClose);
  held.options.batch_size = 100;
  o.batchers.push_back(held);
  std::atomic<int> batch_calls{0};
  o.handle_batch = [&](std::span<In>, const BatchInfo&) { batch_calls.fetch_add(1); };
  {
    pushstage::Pipeline<Message> p(o, from_jetstream(source()));
    admin_.publish_ids(stream_ + ".in", 0, kEvents);
    ASSERT_TRUE(
        test::eventually([&] { return first.size() == static_cast<std::size_t>(kEvents); }));
    EXPECT_FALSE(p.stop(std::chrono::steady_clock::now()));  // the deadline has passed
    EXPECT_EQ(p.stats().shutdown, static_cast<std::uint64_t>(kEvents));
  }
  EXPECT_EQ(batch_calls.load(), 0);
  Seen second;
  PipelineOptions<Message> o2 = pipeline_options();
  o2.handle_message = [&](In& m) { second.add(m.data()); };
  pushstage::Pipeline<Message> p2(o2, from_jetstream(source()));
  ASSERT_TRUE(acked(kEvents));
  EXPECT_TRUE(p2.stop(10s));
  const auto s = second.get();
  ASSERT_EQ(s.size(), static_cast<std::size_t>(kEvents));
  for (const auto& [data, deliveries] : s) {
    EXPECT_EQ(deliveries, std::vector<std::uint64_t>{2}) << "message " << data;
  }
}

// A feed that cannot start (the stream is missing) makes the pipeline's constructor throw the
// source's Error, after stopping what it had started: the constructor returns, nothing hangs.
TEST(NatsFeedOptions, AFeedThatCannotStartFailsTheConstructor) {
  SourceOptions so;
  so.connection.url = test::server_url();
  so.stream = test::unique_name("MISSING");
  so.consumer = "c";
  PipelineOptions<Message> o = pipeline_options();
  o.handle_message = [](In&) {};
  try {
    pushstage::Pipeline<Message> p(o, from_jetstream(so));
    ADD_FAILURE() << "a pipeline fed from a missing stream started";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not found"), std::string::npos) << e.what();
  }
}

// The feed's own option names itself and its range; nothing connects.
TEST(NatsFeedOptions, InFlightOutOfRangeNamesTheField) {
  try {
    (void)from_jetstream(SourceOptions{}, 1'000'001);
    ADD_FAILURE() << "accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(),
                 "pushstage::nats::from_jetstream: in_flight must be in [0, 1000000] (0: the "
                 "pipeline's hint); got 1000001");
  }
}

}  // namespace
}  // namespace pushstage::nats
