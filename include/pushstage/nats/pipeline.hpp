// pushstage/nats/pipeline.hpp: the one line of configuration that puts a JetStream consumer in
// front of a ConsumerPool: Dispatcher<Message> + ConsumerPool<Message> + Source, with each
// message settled once, after the pool's last attempt (settle_once()).
//
// Threading: the handler runs on the pool's consumer threads, concurrently with itself.
//            stop(), wait() and the stats are safe from any thread.
// Demand:    pool.consumers x pool.max_demand messages in flight at most (see source.hpp).
// Settling:  local attempts first, then one settlement. A handler that throws is called again
//            under pool.retry (same consumer, after the backoff; every exception reaches
//            pool.on_error); meanwhile the broker only hears "in progress" (Ack wait, below).
//            The message is then settled exactly once per delivery: acked when an attempt returns
//            (also one that returns past pool.deadline: its work is done), or, when the pool gives
//            up (attempts used up, or pool.deadline passed; counted as failed in consumer_stats()),
//            Message::fail()ed: nak'ed with the source's backoff, or terminated after max_deliver
//            deliveries. A handler may settle (or move away) its message itself; it is then left
//            alone, and a retry gets it as the handler left it.
// Ack wait:  each failed attempt restarts the broker's ack_wait timer (Message::in_progress), so
//            local retries may add up to more than ack_wait; but each single wait (at most
//            pool.retry.max_backoff) plus the attempt after it must stay below ack_wait, or the
//            broker redelivers the message meanwhile (a duplicate, as after a crash).
// Scale-out: run the same pipeline (same stream and consumer) in several processes, or several
//            pipelines in one process: each has its own connection, and the broker shares the
//            messages among them.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "pushstage/nats/message.hpp"
#include "pushstage/nats/source.hpp"
#include "pushstage/pool/consumer_pool.hpp"

namespace pushstage::nats {

// The two callbacks of a ConsumerPool<Message> that settle each message once, after the pool's
// last attempt (Settling, above). Pipeline uses them; so may a pool built by hand:
//   SettleOnce s = settle_once(handle);
//   ConsumerPool<Message> pool(d, options, std::move(s.handler), std::move(s.dead_letter));
struct SettleOnce {
  // Calls the handler. When it returns: acks the message. When it throws: restarts the broker's
  // ack_wait timer (Message::in_progress) and rethrows, so that the pool retries or gives up. A
  // message the handler settled or moved away is left alone. An ack that cannot be sent is not
  // rethrown (the pool would call the handler again): SourceStats::settle_errors counts it, and the
  // broker redelivers it after ack_wait.
  ConsumerPool<Message>::Handler handler;
  // Message::fail() on a message still unsettled (a fail() that cannot be sent: likewise).
  ConsumerPool<Message>::DeadLetter dead_letter;
};
// Throws std::invalid_argument when `handler` is empty.
[[nodiscard]] SettleOnce settle_once(std::function<void(Message&)> handler);

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
