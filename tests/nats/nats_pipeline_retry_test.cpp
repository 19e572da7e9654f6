// nats_pipeline_retry_test.cpp: a Pipeline whose pool retries locally (PoolOptions::retry,
// PoolOptions::deadline) settles each delivery exactly once, after the pool's last attempt: ack
// when an attempt returns, fail() (nak, or term after max_deliver) when the pool gives up. Runs
// against the nats_server fixture. Asserts counts, orders and lower bounds; waits only to guard
// against hangs or to give a wrong redelivery the time to show up.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "nats_test_support.hpp"
#include "pushstage/nats/nats.hpp"

namespace pushstage::nats {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using test::Admin;
using test::eventually;
using test::server_url;
using test::unique_name;

SourceOptions options_for(const std::string& url, const std::string& stream) {
  SourceOptions o;
  o.connection.url = url;
  o.stream = stream;
  o.consumer = "c";
  o.poll = 100ms;
  o.backoff = {};  // a nak'ed message comes back at once: a wrong nak shows up quickly
  return o;
}

PoolOptions retrying_pool(unsigned max_attempts, std::chrono::nanoseconds backoff) {
  PoolOptions p;
  p.consumers = 2;  // a second consumer that would take a wrongly redelivered copy at once
  p.pin = false;
  p.retry.max_attempts = max_attempts;
  p.retry.backoff = backoff;
  p.retry.multiplier = 1;
  p.retry.max_backoff = backoff;
  return p;
}

// Every handler call: which payload, which delivery, when it started, whether it returned.
struct Call {
  std::string data;
  std::uint64_t deliveries = 0;
  Clock::time_point start;
  bool returned = false;
};

class Calls {
 public:
  // Records the start of a call; the index to pass to returned().
  std::size_t start(const Message& m) {
    const std::lock_guard lock(m_);
    calls_.push_back({std::string(m.data()), m.deliveries(), Clock::now(), false});
    return calls_.size() - 1;
  }
  void returned(std::size_t i) {
    const std::lock_guard lock(m_);
    calls_[i].returned = true;
  }
  // The calls for `data`, in start order.
  std::vector<Call> of(const std::string& data) {
    const std::lock_guard lock(m_);
    std::vector<Call> out;
    for (const Call& c : calls_) {
      if (c.data == data) out.push_back(c);
    }
    return out;
  }
  // How many calls for each payload returned.
  std::map<std::string, int> successes() {
    const std::lock_guard lock(m_);
    std::map<std::string, int> out;
    for (const Call& c : calls_) {
      if (c.returned) ++out[c.data];
    }
    return out;
  }
  std::size_t total() {
    const std::lock_guard lock(m_);
    return calls_.size();
  }
  // How many earlier calls there were for `data` (attempts of this message so far).
  int earlier(const std::string& data, std::size_t before) {
    const std::lock_guard lock(m_);
    int n = 0;
    for (std::size_t i = 0; i < before; ++i) n += calls_[i].data == data ? 1 : 0;
    return n;
  }

 private:
  std::mutex m_;
  std::vector<Call> calls_;
};

struct PoolTotals {
  std::uint64_t handled = 0, failed = 0, retried = 0, expired = 0;
};
PoolTotals totals(const Pipeline& p) {
  PoolTotals t;
  for (const ConsumerStats& c : p.consumer_stats()) {
    t.handled += c.handled;
    t.failed += c.failed;
    t.retried += c.retried;
    t.expired += c.expired;
  }
  return t;
}

// The bug of issue 11 (1): the first throw nak'ed the message, the local retry then succeeded but
// found it settled, so no ack went out, and the broker's redelivery was handled a second time
// ("message 7 handled successfully 2 times (deliveries: 1 2)").
TEST(NatsPipelineRetry, MessageRetriedLocallyIsHandledAndAckedOnce) {
  const std::string url = server_url();
  Admin admin(url);
  const std::string stream = unique_name("LOCALRETRY");
  admin.add_stream(stream, stream + ".>");
  constexpr int kEvents = 10;
  SourceOptions o = options_for(url, stream);
  o.ack_wait = 1000ms;  // short, so that a message left unacked comes back within the test
  Calls calls;
  {
    Pipeline p(o, retrying_pool(2, 10ms), [&](Message& m) {
      const std::size_t i = calls.start(m);
      if (m.data() == "7" && calls.earlier("7", i) == 0) throw std::runtime_error("first try");
      calls.returned(i);
    });
    admin.publish_ids(stream + ".in", 0, kEvents);
    ASSERT_TRUE(eventually(
        [&] { return calls.successes().size() == kEvents && p.source_stats().in_flight == 0; }));
    // Past ack_wait (and several polls): anything not acked would be redelivered by now.
    std::this_thread::sleep_for(o.ack_wait + 500ms);
    p.stop();
    for (const auto& [data, n] : calls.successes()) {
      std::string deliveries;
      for (const Call& c : calls.of(data)) deliveries += " " + std::to_string(c.deliveries);
      EXPECT_EQ(n, 1) << "message " << data << " handled successfully " << n
                      << " times (deliveries:" << deliveries << ")";
    }
    const std::vector<Call> seven = calls.of("7");
    ASSERT_EQ(seven.size(), 2U) << "one failed attempt, one local retry";
    EXPECT_EQ(seven[0].deliveries, 1U);
    EXPECT_EQ(seven[1].deliveries, 1U) << "the retry was local, not a redelivery";
    EXPECT_EQ(calls.total(), static_cast<std::size_t>(kEvents + 1));
    const SourceStats s = p.source_stats();
    EXPECT_EQ(s.fetched, static_cast<std::uint64_t>(kEvents));
    EXPECT_EQ(s.acked, static_cast<std::uint64_t>(kEvents));
    EXPECT_EQ(s.naked, 0U);
    EXPECT_EQ(s.terminated, 0U);
    EXPECT_EQ(s.redelivered, 0U);
    EXPECT_EQ(s.in_flight, 0U);
    const PoolTotals t = totals(p);
    EXPECT_EQ(t.handled, static_cast<std::uint64_t>(kEvents));
    EXPECT_EQ(t.retried, 1U);
    EXPECT_EQ(t.failed, 0U);
  }
  const test::ConsumerState broker = admin.consumer(stream, "c");
  EXPECT_EQ(broker.ack_pending, 0);
  EXPECT_EQ(broker.pending, 0U);
  EXPECT_EQ(broker.ack_floor, static_cast<std::uint64_t>(kEvents));
  admin.delete_stream(stream);
}

// A message that fails every local attempt is fail()ed once per delivery, after the last attempt:
// nak'ed (redelivered) until max_deliver, then terminated. The broker never has it redelivered
// while local attempts remain, so each delivery's attempts come in one run, in order.
TEST(NatsPipelineRetry, MessageFailingEveryLocalAttemptIsFailedOncePerDelivery) {
  const std::string url = server_url();
  Admin admin(url);
  const std::string stream = unique_name("EXHAUST");
  admin.add_stream(stream, stream + ".>");
  SourceOptions o = options_for(url, stream);
  o.max_deliver = 3;
  o.ack_wait = 2000ms;
  PoolOptions po = retrying_pool(2, 200ms);  // a nak after attempt 1 would be redelivered by then
  std::atomic<int> errors{0};
  po.on_error = [&](std::exception_ptr) { errors.fetch_add(1); };
  Calls calls;
  Pipeline p(o, po, [&](Message& m) {
    const std::size_t i = calls.start(m);
    if (m.data() == "bad") throw std::runtime_error("always");
    calls.returned(i);
  });
  admin.publish(stream + ".in", "bad");
  for (int i = 0; i < 4; ++i) admin.publish(stream + ".in", "good" + std::to_string(i));
  ASSERT_TRUE(eventually([&] {
    const SourceStats s = p.source_stats();
    return s.terminated >= 1 && s.acked >= 4 && s.in_flight == 0;
  }));
  std::this_thread::sleep_for(o.ack_wait + 500ms);  // a 4th delivery, or a late one, would be here
  p.stop();
  std::vector<std::uint64_t> deliveries;
  for (const Call& c : calls.of("bad")) deliveries.push_back(c.deliveries);
  const std::vector<std::uint64_t> expected{1, 1, 2, 2, 3, 3};
  EXPECT_EQ(deliveries, expected) << "2 local attempts per delivery, 3 deliveries, in order";
  const SourceStats s = p.source_stats();
  EXPECT_EQ(s.fetched, 7U);
  EXPECT_EQ(s.redelivered, 2U);
  EXPECT_EQ(s.naked, 2U) << "one nak per delivery but the last";
  EXPECT_EQ(s.terminated, 1U) << "one term, after the last delivery's last attempt";
  EXPECT_EQ(s.acked, 4U);
  EXPECT_EQ(s.settle_errors, 0U);
  const PoolTotals t = totals(p);
  EXPECT_EQ(t.failed, 3U) << "one dead letter per delivery";
  EXPECT_EQ(t.retried, 3U);
  EXPECT_EQ(t.handled, 4U);
  EXPECT_EQ(errors.load(), 6);
  const test::ConsumerState broker = admin.consumer(stream, "c");
  EXPECT_EQ(broker.ack_pending, 0);
  EXPECT_EQ(broker.pending, 0U);
  admin.delete_stream(stream);
}

// PoolOptions::deadline: a message the pool gives up on because its deadline passed is failed
// once, like one whose attempts ran out; one whose handler returned after the deadline has done
// its work and is acked (the pool still counts it expired).
TEST(NatsPipelineRetry, MessagePastTheDeadlineIsFailedOnceAfterThePoolGivesUp) {
  const std::string url = server_url();
  Admin admin(url);
  const std::string stream = unique_name("DEADLINE");
  admin.add_stream(stream, stream + ".>");
  SourceOptions o = options_for(url, stream);
  o.max_deliver = 3;
  constexpr auto kDeadline = 500ms;
  constexpr auto kSlow = 700ms;              // one attempt longer than the deadline
  PoolOptions po = retrying_pool(3, 600ms);  // the first local wait outlasts the deadline
  po.consumers = 4;  // 3 busy with the slow messages, 1 free to take a wrongly early redelivery
  po.deadline = kDeadline;
  Calls calls;
  Pipeline p(o, po, [&](Message& m) {
    const std::size_t i = calls.start(m);
    if (m.deliveries() == 1) {
      if (m.data() == "late-throw" || m.data() == "late-return") std::this_thread::sleep_for(kSlow);
      if (m.data() == "late-throw" || m.data() == "expires-in-backoff") {
        throw std::runtime_error("fails on its first delivery");
      }
    }
    calls.returned(i);
  });
  for (const char* d : {"late-throw", "expires-in-backoff", "late-return", "a", "b"}) {
    admin.publish(stream + ".in", d);
  }
  ASSERT_TRUE(eventually([&] {
    const SourceStats s = p.source_stats();
    return s.acked >= 5 && s.in_flight == 0;
  }));
  std::this_thread::sleep_for(500ms);  // a third delivery of either failed message would be here
  p.stop();
  for (const char* d : {"late-throw", "expires-in-backoff"}) {
    SCOPED_TRACE(d);
    const std::vector<Call> c = calls.of(d);
    ASSERT_EQ(c.size(), 2U) << "one attempt (then the deadline), one redelivery";
    EXPECT_EQ(c[0].deliveries, 1U);
    EXPECT_EQ(c[1].deliveries, 2U);
    EXPECT_TRUE(c[1].returned);
    // Nak'ed only once the pool gave up, which is past the deadline: never sooner (a lower bound).
    EXPECT_GE(c[1].start - c[0].start, kDeadline);
  }
  const std::vector<Call> late = calls.of("late-return");
  ASSERT_EQ(late.size(), 1U);
  EXPECT_EQ(late[0].deliveries, 1U);
  const SourceStats s = p.source_stats();
  EXPECT_EQ(s.fetched, 7U);
  EXPECT_EQ(s.redelivered, 2U);
  EXPECT_EQ(s.naked, 2U) << "one nak for each message that missed its deadline";
  EXPECT_EQ(s.terminated, 0U);
  EXPECT_EQ(s.acked, 5U) << "a, b, late-return, and the two redeliveries";
  const PoolTotals t = totals(p);
  EXPECT_EQ(t.expired, 3U);
  EXPECT_EQ(t.failed, 3U);
  EXPECT_EQ(t.handled, 4U);
  admin.delete_stream(stream);
}

// Local retries whose waits add up to more than ack_wait: each failed attempt restarts the
// broker's ack_wait timer (Message::in_progress), so the broker never redelivers the message
// while the pool still retries it. Each single wait (1 s) is below ack_wait (2.5 s); together
// (3 s) they are not.
TEST(NatsPipelineRetry, LocalRetriesLongerThanAckWaitAreNotRedelivered) {
  const std::string url = server_url();
  Admin admin(url);
  const std::string stream = unique_name("INPROGRESS");
  admin.add_stream(stream, stream + ".>");
  SourceOptions o = options_for(url, stream);
  o.ack_wait = 2500ms;
  Calls calls;
  Pipeline p(o, retrying_pool(4, 1s), [&](Message& m) {
    const std::size_t i = calls.start(m);
    if (m.data() == "slow" && calls.earlier("slow", i) < 3) throw std::runtime_error("not yet");
    calls.returned(i);
  });
  admin.publish(stream + ".in", "slow");
  admin.publish(stream + ".in", "other");
  ASSERT_TRUE(eventually([&] {
    const SourceStats s = p.source_stats();
    return s.acked >= 2 && s.in_flight == 0;
  }));
  std::this_thread::sleep_for(o.ack_wait + 500ms);
  p.stop();
  const std::vector<Call> slow = calls.of("slow");
  std::string deliveries;
  for (const Call& c : slow) deliveries += " " + std::to_string(c.deliveries);
  EXPECT_EQ(slow.size(), 4U) << "deliveries of each call:" << deliveries;
  for (const Call& c : slow) {
    EXPECT_EQ(c.deliveries, 1U) << "redelivered during local retries; deliveries:" << deliveries;
  }
  EXPECT_EQ(calls.successes()["slow"], 1);
  const SourceStats s = p.source_stats();
  EXPECT_EQ(s.fetched, 2U);
  EXPECT_EQ(s.redelivered, 0U);
  EXPECT_EQ(s.acked, 2U);
  EXPECT_EQ(s.naked, 0U);
  EXPECT_EQ(totals(p).retried, 3U);
  admin.delete_stream(stream);
}

TEST(NatsSettleOnce, RejectsAnEmptyHandler) {
  try {
    (void)settle_once({});
    ADD_FAILURE() << "an empty handler was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "pushstage::nats::settle_once: handler is empty");
  }
}

}  // namespace
}  // namespace pushstage::nats
