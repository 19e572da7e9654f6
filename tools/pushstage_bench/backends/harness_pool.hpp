// harness_pool.hpp: the ConsumerPool every pushstage backend ends in: config.consumers consumers,
// pinned (to a CPU, or with --pin-to cache-domain to its cache domain) unless --no-pin, taking up
// to config.max_demand events at a time, each calling the harness handler. What the pool counted
// itself cross-checks the harness. Its options and handler also serve the Pipeline front's
// processors. Threading: start(), join() and handled() from the thread that drives the run.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "backends/backends.hpp"
#include "harness/harness.hpp"
#include "pushstage/pool/consumer_pool.hpp"
#include "pushstage/pool/pool_options.hpp"

namespace pushstage::bench {

// The options of the consumers of every pushstage backend (also the Pipeline front's processors).
inline PoolOptions harness_pool_options(const RunConfig& config) {
  PoolOptions po;
  po.consumers = config.consumers;
  po.pin = config.pin;
  po.pin_to = config.pin_to;
  po.observer = served_observer();
  po.max_demand = config.max_demand;
  return po;
}

// What each of those consumers does with an event: the harness handler, with the log the calling
// thread claimed at its first event.
inline void handle_on_this_consumer(Harness& h, std::uint32_t id) noexcept {
  thread_local ConsumerLog* log = nullptr;  // each run starts new consumer threads
  if (log == nullptr) log = &h.claim();
  h.handle(*log, id);
}

class HarnessPool {
 public:
  explicit HarnessPool(Harness& h) : h_(h) {}

  // Starts the consumers on `source` (a Dispatcher or a dispatch mode), which must outlive them.
  template <class Source>
  void start(Source& source) {
    pool_.emplace(source, harness_pool_options(h_.config),
                  [&h = h_](std::uint32_t& id) { handle_on_this_consumer(h, id); });
  }
  void join() { pool_->join(); }
  // Handler calls the pool counted itself.
  [[nodiscard]] std::optional<std::uint64_t> handled() const {
    std::uint64_t n = 0;
    for (const ConsumerStats& s : pool_->stats()) n += s.handled;
    return n;
  }

 private:
  Harness& h_;
  std::optional<ConsumerPool<std::uint32_t>> pool_;
};

}  // namespace pushstage::bench
