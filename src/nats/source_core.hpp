// source_core.hpp: the state a Source shares with its I/O thread and with every Message it
// fetched: the connection and subscription, the retry policy, and the demand count.
//
// Demand: in_flight_ counts messages fetched and not yet settled; it only grows on the I/O
//   thread (fetch) and only shrinks on the threads that settle messages. Both happen under mu_:
//   (D1) the I/O thread waits on cv_ until in_flight_ < demand_ (or stop_), then asks the broker
//        for at most demand_ - in_flight_ messages;
//   (D2) it adds what arrived to in_flight_ before the messages become visible to anyone;
//   (D3) a settlement subtracts one and wakes the I/O thread if it waits at (D1).
//   Invariant: in_flight_ <= demand_ (a fetch returns at most its batch), so the broker has at
//   most demand_ messages of this source unacknowledged. One exception, rare: messages the server
//   sends for a fetch that has just expired on the client (nats.c asks the server to expire 10 ms
//   earlier) wait in the subscription, unacknowledged, until the next fetch returns them first,
//   within its batch; a source that stops before that leaves them to be redelivered after ack_wait.
// Lifetime: owned by shared_ptr: the Source, its I/O thread and each Message hold one, so the
//   subscription (which an ack needs) lives until the last message is settled and freed.
// Refusals: the server refusing any publish or subscription of this connection (a permissions
//   violation: a fetch, an ack, a lookup, the reply inbox) stops the source: the I/O thread
//   stops fetching and error() names the refusal. During construction the connection is also
//   closed, so that the request waiting for an answer that will not come fails at once.
// Statistics: relaxed atomics (counters read by stats(); nothing is ordered by them).
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "client.hpp"
#include "pushstage/dispatcher.hpp"
#include "pushstage/nats/message.hpp"
#include "pushstage/nats/source.hpp"

namespace pushstage::nats::detail {

class SourceCore : public std::enable_shared_from_this<SourceCore> {
 public:
  // Validates, connects, checks the stream, binds or creates the consumer, subscribes. Throws.
  SourceCore(std::size_t demand, SourceOptions options);
  ~SourceCore();
  SourceCore(const SourceCore&) = delete;
  SourceCore& operator=(const SourceCore&) = delete;

  // The I/O thread: fetch on demand, push into target, until stop or a fatal error; then closes
  // target.
  void run(Dispatcher<Message>& target) noexcept;
  void request_stop() noexcept;

  // Message's side. Sends the verdict to the broker, counts it and frees one unit of demand
  // (D3). Throws Error when the client cannot send it (it is still counted as settled).
  void settle(RawMsg* msg, Message::Verdict verdict, std::chrono::milliseconds delay,
              std::uint64_t sequence);
  void in_progress(RawMsg* msg, std::uint64_t sequence);
  [[nodiscard]] int max_deliver() const noexcept { return options_.max_deliver; }
  [[nodiscard]] std::chrono::milliseconds backoff_after(std::uint64_t deliveries) const noexcept;

  [[nodiscard]] SourceStats stats() const noexcept;
  [[nodiscard]] std::optional<Error> error() const;

 private:
  void bind_consumer();
  // The client's hook (nats.c's callback thread): a permissions violation (Refusals, above).
  void on_violation(const std::string& text);
  // The Error for a request about `what` that failed with `s`: the server's refusal, when there
  // was one, else the client's text after `what` + `hint`.
  Error failure(const std::string& what, natsStatus s, int js_code, const char* hint = "");
  // Records why the source stopped by itself and reports it.
  void stop_for(const Error& e);
  // Waits until there is demand or stop; returns how many messages to ask for (0: stop).
  std::size_t wait_for_demand();
  // Sleeps up to `d` unless stop is requested first; false when stopped.
  bool pause(std::chrono::milliseconds d);
  void deliver(natsMsgList& list, Dispatcher<Message>::Producer& producer);
  void report(const Error& e) noexcept;
  static const char* verb(Message::Verdict v) noexcept;

  const SourceOptions options_;
  const std::size_t demand_;
  natsSubscription* sub_ = nullptr;
  std::size_t fetch_limit_ = 0;  // max_ack_pending of the consumer as the broker has it

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::size_t in_flight_ = 0;             // guarded by mu_
  std::size_t max_in_flight_ = 0;         // guarded by mu_
  bool waiting_ = false;                  // guarded by mu_: the I/O thread waits at (D1)
  bool stop_ = false;                     // guarded by mu_
  bool started_ = false;                  // guarded by mu_: run() has begun
  std::optional<Error> fatal_;            // guarded by mu_
  std::optional<std::string> violation_;  // guarded by mu_: the server's first refusal

  std::atomic<std::uint64_t> fetches_{0};
  std::atomic<std::uint64_t> fetched_{0};
  std::atomic<std::uint64_t> redelivered_{0};
  std::atomic<std::uint64_t> acked_{0};
  std::atomic<std::uint64_t> naked_{0};
  std::atomic<std::uint64_t> terminated_{0};
  std::atomic<std::uint64_t> settle_errors_{0};
  std::atomic<std::uint64_t> fetch_errors_{0};
  std::atomic<bool> stopped_{false};

  Client client_;  // last: destroyed first, so that no callback outlives the members above
};

}  // namespace pushstage::nats::detail
