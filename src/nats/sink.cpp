// sink.cpp: Sink. Publishes with nats.c's asynchronous JetStream publish and counts what is in
// flight itself, so that publish() can wait for room instead of failing.
//
// In flight: in_flight_ (under mu_) grows in publish() before the message is handed to nats.c and
//   shrinks when its outcome is known: in on_ack (nats.c's thread: acknowledgement, broker
//   error, or no acknowledgement within ack_timeout via the publish's MaxWait), or in publish()
//   when nats.c refuses the message at once. Each shrink wakes publishers waiting for room.
//   Invariant: in_flight_ <= max_in_flight (a publisher takes a unit only while below it).
// Pending: every publish handed to nats.c, keyed by its natsMsg (nats.c hands the same pointer
//   back to on_ack), with its subject and the input to settle once its outcome is known; inserted
//   before the publish, since the acknowledgement can arrive before js_PublishMsgAsync returns.
//   Whoever removes an entry (under mu_) owns its outcome: on_ack, a refused publish, or a
//   refusal (below). A natsMsg that on_ack gets back without an entry was settled by a refusal
//   already: it is only freed.
// Refusals: the server refusing a publish to subject S (a permissions violation, reported on
//   nats.c's callback thread) means no acknowledgement will come for S: every pending publish to S
//   fails at once instead of at ack_timeout. Refusing the subscription to the acknowledgements'
//   inbox means none will come at all: every pending publish fails, and so does every later one.
// Shutdown: a Sink that never published has nothing to wait for (and nats.c no publish state to
//   ask). Otherwise, after waiting for the acknowledgements, the destructor takes back what nats.c
//   still holds (js_PublishAsyncGetPendingList: no callback fires for those afterwards) and then
//   waits with js_PublishAsyncComplete, which returns only after every callback in progress
//   returned; only then may the core go away.
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
#include <vector>

#include "client.hpp"
#include "server_error.hpp"

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
  struct Pending {
    std::string subject;
    std::optional<Message> input;  // settled when the outcome is known
  };

 public:
  explicit SinkCore(SinkOptions options)
      : options_(checked(std::move(options))),
        settings_(publish_settings(this, &SinkCore::on_ack)),
        client_("Sink", options_.connection, &settings_,
                [this](const std::string& text) { on_violation(text); }) {}

  ~SinkCore() {
    // Relaxed: every publish() has returned before the destructor runs, ordered by whatever the
    // owner used to know it (a join, a lock).
    if (published_.load(std::memory_order_relaxed) == 0) {
      // Nothing was handed to nats.c: it has no publish state, and its
      // js_PublishAsyncGetPendingList would dereference a null pointer (nats.c 3.4.1).
      return;
    }
    (void)flush(options_.ack_timeout);
    natsMsgList pending{};
    if (js_PublishAsyncGetPendingList(&pending, client_.js()) == NATS_OK) {
      for (int i = 0; i < pending.Count; ++i) {
        natsMsg* m = pending.Msgs[i];
        pending.Msgs[i] = nullptr;  // finish() frees it; natsMsgList_Destroy must not again
        finish(m, nullptr, NATS_TIMEOUT, 0, "not acknowledged before the Sink closed");
      }
      natsMsgList_Destroy(&pending);
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = options_.ack_timeout.count() + 1000;
    (void)js_PublishAsyncComplete(client_.js(), &po);  // callbacks in progress have returned
    std::unordered_map<natsMsg*, Pending> left;
    {
      const std::lock_guard lock(mu_);
      left.swap(pending_);
    }
    for (auto& [m, p] : left) {
      if (p.input) fail_input(*p.input);
    }
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
      if (std::optional<Error> refused = broken()) throw *refused;
      take_room();
    } catch (...) {
      if (input != nullptr && !input->empty()) fail_input(*input);  // its output was not sent
      throw;
    }
    natsMsg* m = nullptr;
    const std::string subj(subject);
    natsStatus s =
        natsMsg_Create(&m, subj.c_str(), nullptr, data.data(), static_cast<int>(data.size()));
    const bool registered = s == NATS_OK;
    if (registered) {
      Pending p{subj, std::nullopt};
      if (input != nullptr && !input->empty()) p.input.emplace(std::move(*input));
      const std::lock_guard lock(mu_);
      pending_.emplace(m, std::move(p));  // before the publish: the ack can come first
    }
    if (s == NATS_OK) {
      jsPubOptions po;
      jsPubOptions_Init(&po);
      po.MaxWait = options_.ack_timeout.count();  // no acknowledgement by then: on_ack, timeout
      s = js_PublishMsgAsync(client_.js(), &m, &po);
    }
    if (s != NATS_OK) {
      const Error e = client_.error("Sink: publish to '" + subj + "' failed", s);
      // nats.c did not take the message (m is still set; null if creating it failed).
      std::optional<Pending> back = take(m);
      natsMsg_Destroy(m);
      if (back && back->input) fail_input(*back->input);
      if (input != nullptr && !input->empty()) fail_input(*input);  // never moved
      // Registered but no longer pending: a refusal of its subject has settled it meanwhile.
      if (!registered || back) {
        report(e);
        give_back_room(false);
      }
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

  std::optional<Pending> take(natsMsg* m) {
    if (m == nullptr) return std::nullopt;
    const std::lock_guard lock(mu_);
    const auto it = pending_.find(m);
    if (it == pending_.end()) return std::nullopt;
    std::optional<Pending> out(std::move(it->second));
    pending_.erase(it);
    return out;
  }

  std::optional<Error> broken() const {
    const std::lock_guard lock(mu_);
    if (!refused_inbox_) return std::nullopt;
    return Error("pushstage::nats: Sink: the server at " + client_.url() +
                     " refuses the subscription to the acknowledgements' inbox, so no publish "
                     "can be confirmed: " +
                     *refused_inbox_,
                 static_cast<int>(NATS_NOT_PERMITTED));
  }

  // The client's hook, on nats.c's callback thread (Refusals, above).
  void on_violation(const std::string& text) {
    const std::optional<PermissionViolation> v = parse_permission_violation(text);
    if (!v) return;
    const bool all = v->kind == PermissionViolation::Kind::Subscribe;
    std::vector<Pending> refused;
    {
      const std::lock_guard lock(mu_);
      if (all && !refused_inbox_) refused_inbox_ = text;
      for (auto it = pending_.begin(); it != pending_.end();) {
        if (all || it->second.subject == v->subject) {
          refused.push_back(std::move(it->second));
          it = pending_.erase(it);  // on_ack only frees its natsMsg now
        } else {
          ++it;
        }
      }
    }
    for (Pending& p : refused) {
      if (p.input) fail_input(*p.input);
      try {
        report(Error("pushstage::nats: Sink: publish to '" + p.subject +
                         "' failed: not permitted by the server: " + text,
                     static_cast<int>(NATS_NOT_PERMITTED)));
      } catch (...) {  // on_error must not throw; nats.c's thread must go on regardless
      }
      give_back_room(false);
    }
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
    std::optional<Pending> p;
    try {
      p = take(m);
    } catch (...) {  // std::system_error from locking mu_: nothing sane is left to do here
    }
    natsMsg_Destroy(m);
    if (!p) return;  // settled when the server refused its subject (on_violation)
    if (pa != nullptr) {
      if (p->input) {
        try {
          p->input->ack();
        } catch (...) {  // counted by its source; redelivered after ack_wait: at least once
        }
      }
      give_back_room(true);
      return;
    }
    if (p->input) fail_input(*p->input);
    try {
      std::string what = "pushstage::nats: Sink: publish to '" + p->subject + "' failed: ";
      what += text != nullptr && *text != 0 ? text : natsStatus_GetText(status);
      if (js_code != 0) what += " (JetStream error " + std::to_string(js_code) + ")";
      report(Error(client_.scrub(what), static_cast<int>(status), js_code));
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

  mutable std::mutex mu_;
  std::condition_variable room_;
  std::condition_variable idle_;
  std::size_t in_flight_ = 0;                      // guarded by mu_
  std::size_t max_in_flight_ = 0;                  // guarded by mu_
  std::unordered_map<natsMsg*, Pending> pending_;  // guarded by mu_
  std::optional<std::string> refused_inbox_;       // guarded by mu_: the server's refusal

  std::atomic<std::uint64_t> published_{0};
  std::atomic<std::uint64_t> acked_{0};
  std::atomic<std::uint64_t> failed_{0};
  std::atomic<std::uint64_t> waited_{0};

  Client client_;  // last: destroyed first, so that no callback outlives the members above
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
