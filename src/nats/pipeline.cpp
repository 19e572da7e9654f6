// pipeline.cpp: Pipeline = Dispatcher<Message> + ConsumerPool<Message> + Source, in that order so
// that destruction runs the other way: the source stops and closes the dispatcher, the pool
// drains what was fetched, then the dispatcher goes.
#include "pushstage/nats/pipeline.hpp"

#include <stdexcept>
#include <utility>

#include "pushstage/dispatcher.hpp"
#include "settling.hpp"

namespace pushstage::nats {

// Local attempts first, then one settlement: the handler never settles on a throw, or the pool's
// retry would find the message nak'ed (and redelivered to another consumer) and could no longer
// ack it. The settlement after a throw is the dead letter's, which the pool calls once, after its
// last attempt. Local retries are invisible to the broker, so each failed attempt restarts its
// ack_wait timer (in_progress): waits that add up to more than ack_wait bring no redelivery.
SettleOnce settle_once(std::function<void(Message&)> handler) {
  if (!handler) throw std::invalid_argument("pushstage::nats::settle_once: handler is empty");
  SettleOnce s;
  s.handler = [h = std::move(handler)](Message& m) {
    try {
      h(m);
    } catch (...) {
      // The pool retries after a backoff, or gives up and calls the dead letter: restart the
      // broker's ack_wait so that it does not redeliver the message meanwhile.
      detail::still_working(m);
      throw;
    }
    detail::ack_quietly(m);  // a throw here would make the pool call h again
  };
  // An attempt that returned late was acked already; so was one whose handler settled it.
  s.dead_letter = [](Message& m, const Failure&) { detail::fail_quietly(m); };
  return s;
}

struct Pipeline::Parts {
  Parts(SourceOptions source_options, PoolOptions pool_options, SettleOnce settle)
      : demand(pool_options.consumers * pool_options.max_demand),
        pool(dispatcher, std::move(pool_options), std::move(settle.handler),
             std::move(settle.dead_letter)),
        source(dispatcher, demand, std::move(source_options)) {}

  Dispatcher<Message> dispatcher;
  std::size_t demand;
  ConsumerPool<Message> pool;
  Source source;
};

Pipeline::Pipeline(SourceOptions source, PoolOptions pool, std::function<void(Message&)> handler)
    : parts_(std::make_unique<Parts>(std::move(source), std::move(pool),
                                     settle_once(std::move(handler)))) {}

Pipeline::~Pipeline() { stop(); }

void Pipeline::stop() {
  parts_->source.stop();  // closes the dispatcher
  parts_->pool.join();
}

void Pipeline::wait() {
  parts_->pool.join();  // returns once the dispatcher is closed (by the source) and drained
  if (auto e = parts_->source.error()) throw *e;
}

SourceStats Pipeline::source_stats() const noexcept { return parts_->source.stats(); }

std::vector<ConsumerStats> Pipeline::consumer_stats() const { return parts_->pool.stats(); }

}  // namespace pushstage::nats
