// pushstage/nats/sink.hpp: publishes handled results to JetStream, with publish acknowledgements
// and backpressure: at most max_in_flight publishes wait for their acknowledgement at once.
//
// Threading: publish() and stats() are safe from any number of threads (consumer handlers call
//            them); acknowledgements arrive on nats.c's threads.
// Backpressure: publish() returns once the message is handed to the client; when max_in_flight
//            publishes are unacknowledged it first waits for one to be acknowledged (or to fail),
//            at most room_timeout, then throws Error. So a slow or absent broker slows the
//            handlers down (and, through them, the demand of an upstream Source) instead of
//            growing a buffer.
// Acknowledgement: each publish is confirmed by the stream that stores it, or fails: a broker
//            error (no stream for the subject, limits), or no acknowledgement within ack_timeout.
//            Failures are counted and reported to on_error; none is retried here.
// At least once: publish(subject, data, input) takes the handled input Message and settles it
//            only when the output is stored: ack on the acknowledgement, input.fail() (the
//            source's retry policy) on failure. If the process dies in between, the input is
//            redelivered and the output may be published twice (the stream can deduplicate with
//            a message id; not done here).
// Refusals:  a publish to a subject the server refuses this user (a permissions violation) fails
//            at once, not at ack_timeout: on_error gets an Error with status NATS_NOT_PERMITTED
//            quoting the server, and its input is failed. A server that refuses the subscription
//            to the acknowledgements' inbox fails every pending publish, and every later publish()
//            throws that Error (the messages may still have been stored: at least once).
// Close:     the destructor waits up to ack_timeout for outstanding acknowledgements; inputs still
//            waiting then are failed (redelivered), and the connection is closed.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "pushstage/nats/connect_options.hpp"
#include "pushstage/nats/error.hpp"
#include "pushstage/nats/message.hpp"

namespace pushstage::nats {

struct SinkOptions {
  ConnectOptions connection;
  // Where publish(data) goes; may be empty when every publish names its subject.
  std::string subject;
  // Publishes awaiting their acknowledgement at most. [1, 1000000].
  std::size_t max_in_flight = 256;
  // A publish not acknowledged within this counts as failed. [1 ms, 10 min].
  std::chrono::milliseconds ack_timeout{5000};
  // How long publish() waits for room before it throws Error. [0, 10 min].
  std::chrono::milliseconds room_timeout{30000};
  // Called for each failed publish, on a nats.c thread. Must not throw and should not block.
  std::function<void(const Error&)> on_error;
};

// A snapshot; exact once the sink is idle.
struct SinkStats {
  std::uint64_t published = 0;      // handed to the client
  std::uint64_t acked = 0;          // confirmed by a stream
  std::uint64_t failed = 0;         // refused, timed out, or could not be sent
  std::uint64_t in_flight = 0;      // published, neither acked nor failed yet
  std::uint64_t max_in_flight = 0;  // the most in flight at once
  std::uint64_t waited = 0;         // publish() calls that had to wait for room
};

namespace detail {
class SinkCore;  // src/nats/sink.cpp
}  // namespace detail

class Sink {
 public:
  // Connects. Throws std::invalid_argument for options out of range, Error when the server
  // cannot be reached or refuses the connection (credentials, TLS): see connect_options.hpp.
  explicit Sink(SinkOptions options);
  ~Sink();
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;

  // Publishes `data` to options.subject (std::logic_error when that is empty).
  void publish(std::string_view data);
  void publish(std::string_view subject, std::string_view data);
  // Publishes, then settles `input` when the outcome is known: ack when stored, fail() when not.
  void publish(std::string_view subject, std::string_view data, Message input);

  // Waits until every publish so far is acknowledged or failed; false on timeout.
  bool flush(std::chrono::milliseconds timeout);

  [[nodiscard]] SinkStats stats() const noexcept;

 private:
  std::unique_ptr<detail::SinkCore> core_;
};

}  // namespace pushstage::nats
