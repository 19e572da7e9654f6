// pushstage/nats/connect_options.hpp: how a Source or Sink connects to a NATS server.
// Threading: a plain value type. Every field is validated when a Source or Sink is built
// (std::invalid_argument naming the field and its range).
#pragma once

#include <chrono>
#include <string>

namespace pushstage::nats {

struct ConnectOptions {
  // One server URL, or several separated by commas (nats://host:port). Must not be empty.
  std::string url = "nats://127.0.0.1:4222";
  // The connection's name as the server shows it (monitoring, logs); may be empty.
  std::string name;
  // How long the first connection may take before the constructor throws. [1 ms, 10 min].
  std::chrono::milliseconds connect_timeout{2000};
  // After a connection is lost: attempts to reconnect (-1: forever) and the wait between them.
  // max_reconnects in [-1, 1000000]; reconnect_wait in [1 ms, 10 min]. Once the attempts are used
  // up the connection is closed for good and the Source or Sink reports it (never hangs).
  int max_reconnects = -1;
  std::chrono::milliseconds reconnect_wait{250};
  // How long a JetStream API request (stream and consumer lookups) may take. [1 ms, 10 min].
  std::chrono::milliseconds request_timeout{5000};
  // true: every publish, ack and fetch request goes to the socket at once (a system call each).
  // false: nats.c's flusher thread batches writes, about a millisecond later. A Source waits for
  // a fetch round trip after each settlement, so batching slows it down: measured here with two
  // consumers and no work, 1.0 k messages/s batched against 5-6 k/s sent at once.
  bool send_asap = true;
};

}  // namespace pushstage::nats
