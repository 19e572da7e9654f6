// pipeline.cpp: Pipeline = Dispatcher<Message> + ConsumerPool<Message> + Source, in that order so
// that destruction runs the other way: the source stops and closes the dispatcher, the pool
// drains what was fetched, then the dispatcher goes.
#include "pushstage/nats/pipeline.hpp"

#include <stdexcept>
#include <utility>

namespace pushstage::nats {

std::function<void(Message&)> ack_on_return(std::function<void(Message&)> handler) {
  if (!handler) throw std::invalid_argument("pushstage::nats::ack_on_return: handler is empty");
  return [h = std::move(handler)](Message& m) {
    try {
      h(m);
    } catch (...) {
      if (!m.empty() && !m.settled()) {
        try {
          (void)m.fail();
        } catch (...) {  // counted by the source; the handler's exception is the one to report
        }
      }
      throw;
    }
    if (!m.empty() && !m.settled()) m.ack();
  };
}

struct Pipeline::Parts {
  Parts(SourceOptions source_options, PoolOptions pool_options,
        std::function<void(Message&)> handler)
      : demand(pool_options.consumers * pool_options.max_demand),
        pool(dispatcher, std::move(pool_options), ack_on_return(std::move(handler))),
        source(dispatcher, demand, std::move(source_options)) {}

  Dispatcher<Message> dispatcher;
  std::size_t demand;
  ConsumerPool<Message> pool;
  Source source;
};

Pipeline::Pipeline(SourceOptions source, PoolOptions pool, std::function<void(Message&)> handler)
    : parts_(std::make_unique<Parts>(std::move(source), std::move(pool), std::move(handler))) {}

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
