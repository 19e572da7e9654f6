// source.cpp: Source and its shared core (source_core.hpp): connecting, binding the consumer, and
// the I/O thread that fetches on demand.
#include "pushstage/nats/source.hpp"

#include <algorithm>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ack_reply.hpp"
#include "pushstage/dispatcher.hpp"
#include "pushstage/pool/pool_core.hpp"
#include "source_core.hpp"

namespace pushstage::nats::detail {
namespace {

using std::chrono::milliseconds;

constexpr std::size_t kMaxDemand = 1'000'000;
// Between fetch attempts after an error: from kFirstRetry, doubling, at most kLastRetry.
constexpr milliseconds kFirstRetry{10};
constexpr milliseconds kLastRetry{1000};

std::int64_t nanos(milliseconds d) { return d.count() * 1'000'000; }

SourceOptions checked(std::size_t demand, SourceOptions o) {
  check_count("Source: demand",
              static_cast<long long>(std::min<std::size_t>(demand, kMaxDemand + 1)), 1, kMaxDemand);
  check_connect_options("SourceOptions", o.connection);
  check_name("SourceOptions::stream", o.stream);
  check_name("SourceOptions::consumer", o.consumer);
  check_duration("SourceOptions::ack_wait", o.ack_wait, milliseconds(1), milliseconds(86'400'000));
  check_count("SourceOptions::max_ack_pending",
              static_cast<long long>(std::min<std::size_t>(o.max_ack_pending, kMaxDemand + 1)), 1,
              kMaxDemand);
  check_count("SourceOptions::max_deliver", o.max_deliver, 1, 1000);
  check_count("SourceOptions::backoff (entries)", static_cast<long long>(o.backoff.size()), 0, 100);
  for (const milliseconds d : o.backoff) {
    check_duration("SourceOptions::backoff (each delay)", d, milliseconds(0),
                   milliseconds(86'400'000));
  }
  check_duration("SourceOptions::poll", o.poll, milliseconds(10), milliseconds(60'000));
  return o;
}

}  // namespace

const char* SourceCore::verb(Message::Verdict v) noexcept {
  switch (v) {
    case Message::Verdict::Ack:
      return "ack";
    case Message::Verdict::Nak:
      return "nak";
    case Message::Verdict::Term:
      return "term";
  }
  return "settle";
}

SourceCore::SourceCore(std::size_t demand, SourceOptions options)
    : options_(checked(demand, std::move(options))),
      demand_(demand),
      client_("Source", options_.connection, nullptr,
              [this](const std::string& text) { on_violation(text); }) {
  const std::string where = "stream '" + options_.stream + "' on " + client_.url();
  jsStreamInfo* si = nullptr;
  auto je = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, client_.js(), options_.stream.c_str(), nullptr, &je);
  jsStreamInfo_Destroy(si);
  if (s == NATS_NOT_FOUND || je == JSStreamNotFoundErr) {
    throw Error("pushstage::nats: Source: " + where +
                    " not found; create the stream first (SourceOptions::stream)",
                static_cast<int>(s), static_cast<int>(je));
  }
  if (s != NATS_OK) {
    throw failure("cannot look up " + where, s, static_cast<int>(je),
                  " (is JetStream enabled on the server?)");
  }
  bind_consumer();
}

void SourceCore::on_violation(const std::string& text) {
  bool constructing = false;
  {
    const std::lock_guard lock(mu_);
    if (!violation_) violation_ = text;
    stop_ = true;
    cv_.notify_all();
    constructing = !started_;
  }
  if (constructing) client_.close();  // the request in progress fails now, not at its timeout
}

Error SourceCore::failure(const std::string& what, natsStatus s, int js_code, const char* hint) {
  std::optional<std::string> refused;
  {
    const std::lock_guard lock(mu_);
    refused = violation_;
  }
  if (refused) {
    return Error("pushstage::nats: Source: " + what + ": not permitted by the server: " + *refused,
                 static_cast<int>(NATS_NOT_PERMITTED));
  }
  return client_.error("Source: " + what + hint, s, js_code);
}

void SourceCore::stop_for(const Error& e) {
  {
    const std::lock_guard lock(mu_);
    if (fatal_) return;
    fatal_ = e;
  }
  report(e);
}

void SourceCore::bind_consumer() {
  const std::string where =
      "consumer '" + options_.consumer + "' of stream '" + options_.stream + "'";
  jsConsumerInfo* ci = nullptr;
  auto je = static_cast<jsErrCode>(0);
  natsStatus s = js_GetConsumerInfo(&ci, client_.js(), options_.stream.c_str(),
                                    options_.consumer.c_str(), nullptr, &je);
  if (s == NATS_NOT_FOUND) {
    // Created here, explicitly: a consumer that the client library creates while subscribing is
    // deleted when that subscription is unsubscribed, which would end it for every process.
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = options_.consumer.c_str();
    cc.AckPolicy = js_AckExplicit;
    cc.DeliverPolicy = js_DeliverAll;
    cc.AckWait = nanos(options_.ack_wait);
    cc.MaxDeliver = options_.max_deliver;
    cc.MaxAckPending = static_cast<std::int64_t>(options_.max_ack_pending);
    if (!options_.filter_subject.empty()) cc.FilterSubject = options_.filter_subject.c_str();
    s = js_AddConsumer(&ci, client_.js(), options_.stream.c_str(), &cc, nullptr, &je);
    if (s != NATS_OK) {
      const Error e = failure("cannot create " + where, s, static_cast<int>(je));
      // Another process may have created it at the same moment, with other settings: use it.
      if (js_GetConsumerInfo(&ci, client_.js(), options_.stream.c_str(), options_.consumer.c_str(),
                             nullptr, nullptr) != NATS_OK) {
        throw e;
      }
    }
  } else if (s != NATS_OK) {
    throw failure("cannot look up " + where, s, static_cast<int>(je));
  }
  const jsConsumerConfig* cfg = ci->Config;
  const bool push = cfg != nullptr && cfg->DeliverSubject != nullptr && *cfg->DeliverSubject != 0;
  const bool explicit_acks = cfg != nullptr && cfg->AckPolicy == js_AckExplicit;
  std::int64_t limit = cfg != nullptr ? cfg->MaxAckPending : 0;
  if (cfg != nullptr && cfg->MaxRequestBatch > 0) {
    limit = limit > 0 ? std::min(limit, cfg->MaxRequestBatch) : cfg->MaxRequestBatch;
  }
  jsConsumerInfo_Destroy(ci);
  if (push) {
    throw Error("pushstage::nats: Source: " + where +
                " is a push consumer (it has a deliver subject); a Source needs a pull consumer");
  }
  if (!explicit_acks) {
    throw Error("pushstage::nats: Source: " + where +
                " does not use explicit acks; a Source acks each message and needs AckExplicit");
  }
  fetch_limit_ = limit > 0 ? static_cast<std::size_t>(limit) : demand_;

  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = options_.stream.c_str();
  so.Consumer = options_.consumer.c_str();  // bind: the library neither creates nor deletes it
  s = js_PullSubscribe(&sub_, client_.js(), nullptr, nullptr, nullptr, &so, &je);
  if (s != NATS_OK) {
    throw failure("cannot subscribe to " + where, s, static_cast<int>(je));
  }
}

SourceCore::~SourceCore() {
  // Frees the client-side subscription only (bound consumer: nothing is deleted on the broker).
  // Every Message has been freed by now: each holds a reference to this core.
  natsSubscription_Destroy(sub_);
}

std::size_t SourceCore::wait_for_demand() {
  std::unique_lock lock(mu_);
  waiting_ = true;
  cv_.wait(lock, [&] { return stop_ || in_flight_ < demand_; });  // D1
  waiting_ = false;
  if (stop_) return 0;
  return std::min(demand_ - in_flight_, fetch_limit_);
}

bool SourceCore::pause(milliseconds d) {
  std::unique_lock lock(mu_);
  return !cv_.wait_for(lock, d, [&] { return stop_; });
}

void SourceCore::request_stop() noexcept {
  const std::lock_guard lock(mu_);
  stop_ = true;
  cv_.notify_all();
}

void SourceCore::report(const Error& e) noexcept {
  if (options_.on_error) options_.on_error(e);
}

void SourceCore::run(Dispatcher<Message>& target) noexcept {
  {
    const std::lock_guard lock(mu_);
    started_ = true;
  }
  // The server's refusal, when there was one: the first cause of whatever followed.
  const auto stop_if_refused = [&] {
    std::optional<std::string> refused;
    {
      const std::lock_guard lock(mu_);
      refused = violation_;
    }
    if (refused) {
      stop_for(Error("pushstage::nats: Source: the server at " + client_.url() +
                         " refused a request of consumer '" + options_.consumer + "' of stream '" +
                         options_.stream + "'; stopped: " + *refused,
                     static_cast<int>(NATS_NOT_PERMITTED)));
    }
  };
  try {
    auto producer = target.producer();
    milliseconds retry{0};
    for (;;) {
      const std::size_t want = wait_for_demand();
      if (want == 0) break;
      jsFetchRequest req;
      jsFetchRequest_Init(&req);
      req.Batch = static_cast<int>(want);
      // No-wait with an expiry: the server (2.9) answers at once with what it has, up to Batch,
      // and when it has nothing holds the request until a message arrives or `poll` ends. So one
      // request serves both a backlog and an idle stream, and never returns more than Batch.
      req.NoWait = true;
      req.Expires = nanos(options_.poll);
      natsMsgList list{};
      fetches_.fetch_add(1, std::memory_order_relaxed);  // statistics only
      const auto started = std::chrono::steady_clock::now();
      const natsStatus s = natsSubscription_FetchRequest(&list, sub_, &req);
      if (s == NATS_OK) {
        retry = milliseconds(0);
        deliver(list, producer);
        continue;
      }
      if (s == NATS_TIMEOUT || s == NATS_NOT_FOUND) {
        // No messages now (408 or 404). A server that answers an empty no-wait fetch at once
        // (older than 2.9) would turn this into a busy loop: pace such quick answers.
        retry = milliseconds(0);
        if (std::chrono::steady_clock::now() - started < options_.poll / 2 &&
            !pause(std::min(options_.poll, milliseconds(50)))) {
          break;
        }
        continue;
      }
      fetch_errors_.fetch_add(1, std::memory_order_relaxed);  // statistics only
      const Error e = client_.error("Source: fetch from consumer '" + options_.consumer +
                                        "' of stream '" + options_.stream + "' failed",
                                    s);
      if (s == NATS_CONNECTION_CLOSED || client_.closed()) {
        stop_if_refused();
        std::string cause = client_.closed_cause();
        if (cause.empty()) cause = client_.scrub(status_text(s));
        stop_for(Error("pushstage::nats: Source: the connection to " + client_.url() +
                           " is closed for good (reconnect attempts used up, or the server "
                           "refused the credentials twice); stopped: " +
                           cause,
                       static_cast<int>(s)));
        break;
      }
      report(e);
      retry = std::clamp(retry * 2, kFirstRetry, kLastRetry);
      if (!pause(retry)) break;
    }
  } catch (const std::exception& ex) {
    stop_for(Error(std::string("pushstage::nats: Source: the I/O thread failed: ") + ex.what()));
  }
  stop_if_refused();
  target.close();
  stopped_.store(true, std::memory_order_release);  // pairs with stats()'s acquire load
}

void SourceCore::deliver(natsMsgList& list, Dispatcher<Message>::Producer& producer) {
  const auto n = static_cast<std::size_t>(list.Count);
  std::vector<Message> batch;
  try {
    batch.reserve(n);  // first: nothing below throws, so every message becomes a Message
  } catch (...) {
    natsMsgList_Destroy(&list);  // unacked: the broker redelivers them after ack_wait
    throw;
  }
  {
    const std::lock_guard lock(mu_);
    in_flight_ += n;  // D2: before any of them can be settled
    max_in_flight_ = std::max(max_in_flight_, in_flight_);
  }
  fetched_.fetch_add(n, std::memory_order_relaxed);  // statistics only
  const std::shared_ptr<SourceCore> self = shared_from_this();
  for (std::size_t i = 0; i < n; ++i) {
    natsMsg* m = list.Msgs[i];
    list.Msgs[i] = nullptr;  // ours now; natsMsgList_Destroy skips it
    std::uint64_t sequence = 0;
    std::uint64_t deliveries = 1;
    const char* reply = natsMsg_GetReply(m);
    if (const std::optional<AckReply> meta =
            parse_ack_reply(reply != nullptr ? std::string_view(reply) : std::string_view())) {
      sequence = meta->stream_sequence;
      deliveries = std::max<std::uint64_t>(meta->delivered, 1);
    }
    if (deliveries > 1) redelivered_.fetch_add(1, std::memory_order_relaxed);  // statistics
    batch.push_back(Message(opaque(m), self, sequence, deliveries));           // reserved: no throw
  }
  natsMsgList_Destroy(&list);
  // Accepts a prefix; events it refuses (dispatcher closed, or full under Reject) are destroyed
  // with `batch` and so nak'ed: they go back to the broker at once.
  producer.push_bulk(batch.begin(), batch.end());
}

void SourceCore::settle(RawMsg* msg, Message::Verdict verdict, milliseconds delay,
                        std::uint64_t sequence) {
  natsMsg* m = native(msg);
  natsStatus s = NATS_OK;
  switch (verdict) {
    case Message::Verdict::Ack:
      s = natsMsg_Ack(m, nullptr);
      acked_.fetch_add(1, std::memory_order_relaxed);  // statistics only (all counters below)
      break;
    case Message::Verdict::Nak:
      s = delay.count() > 0 ? natsMsg_NakWithDelay(m, delay.count(), nullptr)
                            : natsMsg_Nak(m, nullptr);
      naked_.fetch_add(1, std::memory_order_relaxed);
      break;
    case Message::Verdict::Term:
      s = natsMsg_Term(m, nullptr);
      terminated_.fetch_add(1, std::memory_order_relaxed);
      break;
  }
  std::optional<Error> unsent;
  if (s != NATS_OK) {
    settle_errors_.fetch_add(1, std::memory_order_relaxed);
    unsent = client_.error("Source: " + std::string(verb(verdict)) + " of message " +
                               std::to_string(sequence) + " of stream '" + options_.stream +
                               "' could not be sent; the broker redelivers it after ack_wait",
                           s);
  }
  {
    const std::lock_guard lock(mu_);
    --in_flight_;                    // D3
    if (waiting_) cv_.notify_one();  // the I/O thread waits at D1 for exactly this
  }
  if (unsent) throw *unsent;
}

void SourceCore::in_progress(RawMsg* msg, std::uint64_t sequence) {
  const natsStatus s = natsMsg_InProgress(native(msg), nullptr);
  if (s != NATS_OK) {
    throw client_.error("Source: in-progress of message " + std::to_string(sequence) +
                            " of stream '" + options_.stream + "' could not be sent",
                        s);
  }
}

milliseconds SourceCore::backoff_after(std::uint64_t deliveries) const noexcept {
  if (options_.backoff.empty()) return milliseconds(0);
  const std::size_t i =
      std::min<std::size_t>(deliveries == 0 ? 0 : deliveries - 1, options_.backoff.size() - 1);
  return options_.backoff[i];
}

SourceStats SourceCore::stats() const noexcept {
  SourceStats s;
  s.demand = demand_;
  s.fetches = fetches_.load(std::memory_order_relaxed);  // statistics: relaxed throughout
  s.fetched = fetched_.load(std::memory_order_relaxed);
  s.redelivered = redelivered_.load(std::memory_order_relaxed);
  s.acked = acked_.load(std::memory_order_relaxed);
  s.naked = naked_.load(std::memory_order_relaxed);
  s.terminated = terminated_.load(std::memory_order_relaxed);
  s.settle_errors = settle_errors_.load(std::memory_order_relaxed);
  s.fetch_errors = fetch_errors_.load(std::memory_order_relaxed);
  {
    const std::lock_guard lock(mu_);
    s.in_flight = in_flight_;
    s.max_in_flight = max_in_flight_;
  }
  s.reconnects = client_.reconnects();
  s.connected = client_.connected();
  s.stopped = stopped_.load(std::memory_order_acquire);  // pairs with run()'s release store
  return s;
}

std::optional<Error> SourceCore::error() const {
  const std::lock_guard lock(mu_);
  return fatal_;
}

}  // namespace pushstage::nats::detail

namespace pushstage::nats {

void SourceOptions::set_retry(const RetryPolicy& policy) {
  pushstage::detail::check_retry(policy, "RetryPolicy::");
  if (policy.max_backoff > std::chrono::milliseconds(86'400'000)) {  // the broker's limit
    throw std::invalid_argument(
        "RetryPolicy::max_backoff must be at most 24 h (86400000000000 ns) for the broker; got " +
        std::to_string(policy.max_backoff.count()) + " ns");
  }
  std::vector<std::chrono::milliseconds> delays;
  auto next = static_cast<double>(policy.backoff.count());
  const auto cap = static_cast<double>(policy.max_backoff.count());
  for (unsigned i = 1; i < policy.max_attempts; ++i) {
    const auto ns = static_cast<std::int64_t>(std::min(next, cap));
    delays.emplace_back((ns + 999'999) / 1'000'000);  // milliseconds, rounded up
    next *= policy.multiplier;
  }
  max_deliver = static_cast<int>(policy.max_attempts);
  backoff = std::move(delays);
}

Source::Source(Dispatcher<Message>& target, std::size_t demand, SourceOptions options)
    : target_(target),
      core_(std::make_shared<detail::SourceCore>(demand, std::move(options))),
      io_([core = core_, &target] { core->run(target); }) {}

Source::~Source() { stop(); }

void Source::stop() noexcept {
  core_->request_stop();
  {
    const std::lock_guard lock(stop_mutex_);
    if (io_.joinable()) io_.join();
  }
  target_.close();
}

SourceStats Source::stats() const noexcept { return core_->stats(); }

std::optional<Error> Source::error() const { return core_->error(); }

}  // namespace pushstage::nats
