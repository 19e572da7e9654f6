// sink.cpp: Sink. Publishes with nats.c's asynchronous JetStream publish and counts what is in
// flight itself, so that publish() can wait for room instead of failing.
//
// In flight: in_flight_ (under mu_) grows in publish() before the message is handed to nats.c and
//   shrinks when its outcome is known: in on_ack (nats.c's thread: acknowledgement, broker
//   error, or no acknowledgement within ack_timeout via the publish's MaxWait), or in publish()
//   when nats.c refuses the message at once. Each shrink wakes publishers waiting for room.
//   Invariant: in_flight_ <= max_in_flight (a publisher takes a unit only while below it).
// Inputs: messages to settle once their output's outcome is known, keyed by the published
//   natsMsg (nats.c hands the same pointer back to on_ack); inserted before the publish, since
//   the acknowledgement can arrive before js_PublishMsgAsync returns.
// Shutdown: after waiting for the acknowledgements, the destructor takes back what nats.c still
//   holds (js_PublishAsyncGetPendingList: no callback fires for those afterwards) and then waits
//   with js_PublishAsyncComplete, which returns only after every callback in progress returned;
//   only then may the core go away.
#include "pushstage/nats/sink.hpp"

#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>

#include "client.hpp"

namespace pushstage::nats::detail {
namespace {

using std::chrono::milliseconds;

SinkOptions checked(SinkOptions o) {
  check_connect_options("SinkOptions", o.connection);
  check_count("SinkOptions::max_in_flight",
              static_cast<long long>(std::min<std::size_t>(o.max_in_flight, 1'000'001)), 1,
              1'000'000);
  check_duration("SinkOptions::ack_timeout", o.ack_timeout, milliseconds(1), milliseconds(600'000));
  check_duration("SinkOptions::room_timeout", o.room_timeout, milliseconds(0),
                 milliseconds(600'000));
  return o;
}

jsOptions publish_settings(void* closure, jsPubAckHandler handler) {
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.AckHandler = handler;
  jo.PublishAsync.AckHandlerClosure = closure;
  // MaxPending stays 0 (nats.c does not bound): the bound is ours, with a wait instead of
  // nats.c's stall error.
  return jo;
}

}  // namespace

class SinkCore {
 public:
  explicit SinkCore(SinkOptions options)
      : options_(checked(std::move(options))),
        settings_(publish_settings(this, &SinkCore::on_ack)),
        client_("Sink", options_.connection, &settings_) {}

  ~SinkCore() {
    (void)flush(options_.ack_timeout);
    natsMsgList pending{};
    if (js_PublishAsyncGetPendingList(&pending, client_.js()) == NATS_OK) {
      for (int i = 0; i < pending.Count; ++i) {
        finish(pending.Msgs[i], nullptr, NATS_TIMEOUT, 0,
               "not acknowledged before the Sink closed");
      }
      natsMsgList_Destroy(&pending);
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = options_.ack_timeout.count() + 1000;
    (void)js_PublishAsyncComplete(client_.js(), &po);  // callbacks in progress have returned
    std::unordered_map<natsMsg*, Message> left;
    {
      const std::lock_guard lock(mu_);
      left.swap(inputs_);
    }
    for (auto& [m, input] : left) fail_input(input);
  }

  SinkCore(const SinkCore&) = delete;
  SinkCore& operator=(const SinkCore&) = delete;

  const std::string& subject() const noexcept { return options_.subject; }

  void publish(std::string_view subject, std::string_view data, Message* input) {
    try {
      if (subject.empty()) {
        throw std::logic_error(
            "pushstage::nats::Sink::publish: no subject (SinkOptions::subject is empty)");
      }
      take_room();
    } catch (...) {
      if (input != nullptr && !input->empty()) fail_input(*input);  // its output was not sent
      throw;
    }
    natsMsg* m = nullptr;
    const std::string subj(subject);
    natsStatus s =
        natsMsg_Create(&m, subj.c_str(), nullptr, data.data(), static_cast<int>(data.size()));
    if (s == NATS_OK && input != nullptr && !input->empty()) {
      const std::lock_guard lock(mu_);
      inputs_.emplace(m, std::move(*input));  // before the publish: the ack can come first
    }
    if (s == NATS_OK) {
      jsPubOptions po;
      jsPubOptions_Init(&po);
      po.MaxWait = options_.ack_timeout.count();  // no acknowledgement by then: on_ack, timeout
      s = js_PublishMsgAsync(client_.js(), &m, &po);
    }
    if (s != NATS_OK) {
      const Error e = make_error("Sink: publish to '" + subj + "' failed", s);
      // nats.c did not take the message (m is still set; null if creating it failed).
      std::optional<Message> back = take_input(m);
      natsMsg_Destroy(m);
      if (back) fail_input(*back);
      if (input != nullptr && !input->empty()) fail_input(*input);
      report(e);
      give_back_room(false);
      throw e;
    }
    published_.fetch_add(1, std::memory_order_relaxed);  // statistics only
  }

  bool flush(milliseconds timeout) {
    std::unique_lock lock(mu_);
    return idle_.wait_for(lock, timeout, [&] { return in_flight_ == 0; });
  }

  SinkStats stats() const noexcept {
    SinkStats s;
    s.published = published_.load(std::memory_order_relaxed);  // statistics: relaxed
    s.acked = acked_.load(std::memory_order_relaxed);
    s.failed = failed_.load(std::memory_order_relaxed);
    s.waited = waited_.load(std::memory_order_relaxed);
    const std::lock_guard lock(mu_);
    s.in_flight = in_flight_;
    s.max_in_flight = max_in_flight_;
    return s;
  }

 private:
  void take_room() {
    std::unique_lock lock(mu_);
    if (in_flight_ >= options_.max_in_flight) {
      waited_.fetch_add(1, std::memory_order_relaxed);  // statistics only
      if (!room_.wait_for(lock, options_.room_timeout,
                          [&] { return in_flight_ < options_.max_in_flight; })) {
        throw Error("pushstage::nats: Sink: " + std::to_string(in_flight_) +
                    " publishes have waited for their acknowledgement longer than room_timeout (" +
                    std::to_string(options_.room_timeout.count()) + " ms); is the broker at " +
                    client_.url() + " reachable?");
      }
    }
    ++in_flight_;
    max_in_flight_ = std::max(max_in_flight_, in_flight_);
  }

  void give_back_room(bool acked) {
    (acked ? acked_ : failed_).fetch_add(1, std::memory_order_relaxed);  // statistics only
    const std::lock_guard lock(mu_);
    --in_flight_;
    room_.notify_one();
    if (in_flight_ == 0) idle_.notify_all();
  }

  std::optional<Message> take_input(natsMsg* m) {
    if (m == nullptr) return std::nullopt;
    const std::lock_guard lock(mu_);
    const auto it = inputs_.find(m);
    if (it == inputs_.end()) return std::nullopt;
    std::optional<Message> out(std::move(it->second));
    inputs_.erase(it);
    return out;
  }

  static void fail_input(Message& input) noexcept {
    try {
      (void)input.fail();
    } catch (...) {  // counted by its source; the broker redelivers after ack_wait
    }
  }

  void report(const Error& e) noexcept {
    if (options_.on_error) options_.on_error(e);
  }

  // One publish's outcome. pa != nullptr: stored. Otherwise `status` (and the broker's code and
  // text) say why not.
  void finish(natsMsg* m, const jsPubAck* pa, natsStatus status, int js_code,
              const char* text) noexcept {
    std::optional<Message> input = take_input(m);
    std::string subject =
        m != nullptr && natsMsg_GetSubject(m) != nullptr ? natsMsg_GetSubject(m) : "";
    natsMsg_Destroy(m);
    if (pa != nullptr) {
      if (input) {
        try {
          input->ack();
        } catch (...) {  // counted by its source; redelivered after ack_wait: at least once
        }
      }
      give_back_room(true);
      return;
    }
    if (input) fail_input(*input);
    std::string what = "pushstage::nats: Sink: publish to '" + subject + "' failed: ";
    what += text != nullptr && *text != 0 ? text : natsStatus_GetText(status);
    if (js_code != 0) what += " (JetStream error " + std::to_string(js_code) + ")";
    try {
      report(Error(what, static_cast<int>(status), js_code));
    } catch (...) {  // on_error must not throw; nats.c's thread must go on regardless
    }
    give_back_room(false);  // last: flush() returning means every outcome has been reported
  }

  static void on_ack(jsCtx* /*js*/, natsMsg* m, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
    auto* self = static_cast<SinkCore*>(closure);
    if (pa != nullptr) {
      self->finish(m, pa, NATS_OK, 0, nullptr);
    } else if (pae != nullptr) {
      self->finish(m, nullptr, pae->Err, static_cast<int>(pae->ErrCode), pae->ErrText);
    } else {
      self->finish(m, nullptr, NATS_ERR, 0, "neither acknowledgement nor error");
    }
  }

  const SinkOptions options_;
  const jsOptions settings_;
  Client client_;

  mutable std::mutex mu_;
  std::condition_variable room_;
  std::condition_variable idle_;
  std::size_t in_flight_ = 0;                     // guarded by mu_
  std::size_t max_in_flight_ = 0;                 // guarded by mu_
  std::unordered_map<natsMsg*, Message> inputs_;  // guarded by mu_

  std::atomic<std::uint64_t> published_{0};
  std::atomic<std::uint64_t> acked_{0};
  std::atomic<std::uint64_t> failed_{0};
  std::atomic<std::uint64_t> waited_{0};
};

}  // namespace pushstage::nats::detail

namespace pushstage::nats {

Sink::Sink(SinkOptions options) : core_(std::make_unique<detail::SinkCore>(std::move(options))) {}

Sink::~Sink() = default;

void Sink::publish(std::string_view data) { core_->publish(core_->subject(), data, nullptr); }

void Sink::publish(std::string_view subject, std::string_view data) {
  core_->publish(subject, data, nullptr);
}

void Sink::publish(std::string_view subject, std::string_view data, Message input) {
  core_->publish(subject, data, &input);
}

bool Sink::flush(std::chrono::milliseconds timeout) { return core_->flush(timeout); }

SinkStats Sink::stats() const noexcept { return core_->stats(); }

}  // namespace pushstage::nats
