// pushstage/nats/pipeline.hpp: the one line of configuration that puts a JetStream consumer in
// front of a ConsumerPool: Dispatcher<Message> + ConsumerPool<Message> + Source, with each
// message acked when the handler returns and failed (retry policy) when it throws.
//
// Threading: the handler runs on the pool's consumer threads, concurrently with itself.
//            stop(), wait() and the stats are safe from any thread.
// Demand:    pool.consumers x pool.max_demand messages in flight at most (see source.hpp).
// Settling:  a handler may settle (or move away) its message itself; otherwise the pipeline acks
//            it when the handler returns and calls Message::fail() when it throws (the exception
//            then reaches pool.on_error, and counts as failed in consumer_stats()).
// Scale-out: run the same pipeline (same stream and consumer) in several processes, or several
//            pipelines in one process: each has its own connection, and the broker shares the
//            messages among them.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "pushstage/consumer_pool.hpp"
#include "pushstage/nats/message.hpp"
#include "pushstage/nats/source.hpp"

namespace pushstage::nats {

// Wraps `handler`: acks its message when it returns, fail()s it when it throws (and rethrows).
// Messages the handler settled or moved away are left alone.
[[nodiscard]] std::function<void(Message&)> ack_on_return(std::function<void(Message&)> handler);

class Pipeline {
 public:
  // Starts pool.consumers threads, then connects and starts fetching. Throws what ConsumerPool
  // and Source throw (std::invalid_argument, Error); nothing keeps running then.
  Pipeline(SourceOptions source, PoolOptions pool, std::function<void(Message&)> handler);
  // stop().
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Stops fetching, lets the consumers handle and settle every message already fetched, joins
  // them. Idempotent.
  void stop();
  // Waits until the pipeline has stopped: stop() from another thread, or the source stopping for
  // good. Throws the source's Error in the second case.
  void wait();

  [[nodiscard]] SourceStats source_stats() const noexcept;
  [[nodiscard]] std::vector<ConsumerStats> consumer_stats() const;

 private:
  struct Parts;
  std::unique_ptr<Parts> parts_;
};

}  // namespace pushstage::nats
