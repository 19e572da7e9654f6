// pushstage/nats/source.hpp: feeds a Dispatcher<Message> from a durable JetStream pull consumer,
// fetching exactly as many messages as its consumers have demanded.
//
// Demand:    the source keeps at most `demand` messages in flight (fetched and not yet settled):
//            consumers x max_demand of the ConsumerPool that drains the dispatcher, GenStage's
//            demand. Each fetch asks the broker for demand - in_flight messages (never more than
//            the consumer's max_ack_pending); each settlement (Message::ack/nak/term) frees one
//            unit and lets the I/O thread fetch again. With nothing demanded it sends nothing.
// Threading: the constructor starts one I/O thread that runs nats.c's blocking fetch and pushes
//            into `target` through one Producer handle. stats(), error() and stop() are safe
//            from any thread.
// Broker:    the stream must exist (else Error). The durable consumer `consumer` is bound when it
//            exists and created explicitly when not (with the settings below), never by the
//            client library, so stopping never deletes it: several processes (or several sources
//            in one process, each with its own connection) may share it, and the broker spreads
//            its messages over them.
// Delivery:  at least once. Messages not settled when a process dies are redelivered by the
//            broker after ack_wait, to any process on the consumer; Message::deliveries() counts.
// Errors:    construction throws Error (server down, credentials or TLS refused, stream missing,
//            consumer of the wrong kind) within connect_timeout + request_timeout. While running,
//            a lost connection is retried (ConnectOptions::max_reconnects); fetch errors are
//            counted, reported to on_error, and retried with backoff. When the connection is
//            closed for good the source stops by itself: error() says why, and `target` is closed
//            so its consumers drain and return.
// Refusals:  the server refusing any request of this source (a permissions violation: a lookup,
//            a fetch, an ack, its reply inbox) ends it at once: during construction the
//            constructor throws Error (status NATS_NOT_PERMITTED) quoting the server, without
//            waiting for request_timeout; later the source stops by itself as above, error()
//            quoting the server. Messages it had fetched stay with their handlers; the broker
//            redelivers the unacknowledged ones after ack_wait.
// Stop:      stop() (or the destructor) lets the current fetch end (at most `poll`), stops
//            fetching and closes `target`. Messages already pushed stay valid and are settled by
//            whoever handles them.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "pushstage/dispatcher.hpp"
#include "pushstage/nats/connect_options.hpp"
#include "pushstage/nats/error.hpp"
#include "pushstage/nats/message.hpp"
#include "pushstage/pool/pool_options.hpp"

namespace pushstage::nats {

struct SourceOptions {
  ConnectOptions connection;
  // The stream to read; it must exist. A JetStream name: 1..255 characters, none of . * > or
  // whitespace.
  std::string stream;
  // The durable pull consumer to read through, bound or created. Same rules as `stream`.
  std::string consumer;

  // ---- used only when the consumer is created (an existing consumer keeps its settings) ----
  // The subjects of the stream this consumer receives; empty: all of them.
  std::string filter_subject;
  // How long the broker waits for a settlement before it redelivers. [1 ms, 24 h].
  std::chrono::milliseconds ack_wait{30000};
  // Most messages the broker lets be unacknowledged at once, over every process on the consumer.
  // Bounds each fetch as well. [1, 1000000].
  std::size_t max_ack_pending = 1000;

  // ---- retry policy (Message::fail()); max_deliver is also the created consumer's MaxDeliver --
  // Deliveries of one message, the first included; after the last one fails the message is
  // terminated. [1, 1000].
  int max_deliver = 5;
  // Delay before the next delivery after the n-th failed one: backoff[n - 1], the last entry
  // repeating; empty: redeliver at once. Each in [0, 24 h]; at most 100 entries.
  std::vector<std::chrono::milliseconds> backoff{std::chrono::milliseconds(100),
                                                 std::chrono::seconds(1), std::chrono::seconds(5)};
  // The same policy a ConsumerPool uses, carried out by the broker: max_deliver = max_attempts,
  // backoff[i] = min(backoff * multiplier^i, max_backoff), rounded up to whole milliseconds (the
  // broker's unit). Throws std::invalid_argument naming the RetryPolicy field and its range
  // (the ranges of PoolOptions::retry).
  void set_retry(const RetryPolicy& policy);

  // How long one fetch waits for messages when none are ready: the latency of noticing stop()
  // and the rate of empty polls (one per poll while idle). [10 ms, 60 s].
  std::chrono::milliseconds poll{500};
  // Called on the I/O thread for each fetch error and when the source stops for good. Must not
  // throw and should not block (it delays fetching).
  std::function<void(const Error&)> on_error;
};

// A snapshot of a source's counters; exact once it has stopped and its messages are settled.
struct SourceStats {
  std::uint64_t demand = 0;         // the bound on in_flight
  std::uint64_t fetches = 0;        // fetch requests sent to the broker
  std::uint64_t fetched = 0;        // messages received
  std::uint64_t redelivered = 0;    // of those, delivered before (deliveries() > 1)
  std::uint64_t acked = 0;          // settled by ack()
  std::uint64_t naked = 0;          // settled by nak() or fail() (to be redelivered)
  std::uint64_t terminated = 0;     // settled by term() or fail() after the last attempt
  std::uint64_t settle_errors = 0;  // settlements the client could not send
  std::uint64_t fetch_errors = 0;   // fetches that failed for another reason than "no messages"
  std::uint64_t reconnects = 0;     // times the connection was re-established
  std::uint64_t in_flight = 0;      // fetched and not yet settled
  std::uint64_t max_in_flight = 0;  // the most in flight at once
  bool connected = false;           // the connection is up right now
  bool stopped = false;             // the I/O thread has finished (stop() or a fatal error)
};

class Source {
 public:
  // Connects, checks the stream, binds or creates the consumer, then starts fetching into
  // `target`, which must outlive the source. `demand`: consumers x max_demand of the pool that
  // drains `target`, in [1, 1000000]. Throws std::invalid_argument for options out of range and
  // Error when the broker cannot be used; nothing is started then.
  Source(Dispatcher<Message>& target, std::size_t demand, SourceOptions options);
  // stop().
  ~Source();
  Source(const Source&) = delete;
  Source& operator=(const Source&) = delete;

  // Stops fetching (waits for the fetch in progress, at most options.poll) and closes `target`.
  // Idempotent; safe from any thread but the I/O thread (on_error must not call it).
  void stop() noexcept;

  [[nodiscard]] SourceStats stats() const noexcept;
  // Why the source stopped by itself (the connection closed for good); nullopt while it runs or
  // after stop().
  [[nodiscard]] std::optional<Error> error() const;

 private:
  Dispatcher<Message>& target_;
  std::shared_ptr<detail::SourceCore> core_;
  std::mutex stop_mutex_;  // one joiner at a time
  std::thread io_;
};

}  // namespace pushstage::nats
