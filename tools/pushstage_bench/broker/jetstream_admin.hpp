// jetstream_admin.hpp: the broker as the --broker parent sees it, through nats.c directly: a
// connection that creates a case's stream (in memory) and its durable pull consumer (explicit
// acks), watches the consumer's progress, and deletes the stream afterwards. The workers consume
// through pushstage::nats; this is setup and observation only.
// Threading: one thread uses an instance.
// Failure:   the constructor and create() throw std::runtime_error with a line for the user.
#pragma once

#include <nats/nats.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace pushstage::bench {

class JetStreamAdmin {
 public:
  // Connects to `url` (5 s timeout).
  explicit JetStreamAdmin(const std::string& url);

  // Stream `stream` on subjects "stream.>", and the durable consumer `consumer` on it with at
  // most `ack_pending` messages unacknowledged.
  void create(const std::string& stream, const std::string& consumer, std::size_t ack_pending);
  // Deletes the stream (and its consumer); errors are ignored.
  void remove(const std::string& stream);
  // Acknowledged-so-far (the ack floor), and whether everything published is acknowledged.
  bool done(const std::string& stream, const std::string& consumer, std::uint64_t& ack_floor);

 private:
  struct CloseConnection {
    void operator()(natsConnection* nc) const noexcept { natsConnection_Destroy(nc); }
  };
  struct DestroyContext {
    void operator()(jsCtx* js) const noexcept { jsCtx_Destroy(js); }
  };
  std::unique_ptr<natsConnection, CloseConnection> nc_;
  std::unique_ptr<jsCtx, DestroyContext> js_;  // after nc_: destroyed before it
};

}  // namespace pushstage::bench
