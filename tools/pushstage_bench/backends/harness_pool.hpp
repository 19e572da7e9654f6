// harness_pool.hpp: the ConsumerPool every pushstage backend ends in: config.consumers consumers,
// pinned (to a CPU, or with --pin-to cache-domain to its cache domain) unless --no-pin, taking up
// to config.max_demand events at a time, each calling the harness handler. What the pool counted
// itself cross-checks the harness. Threading: start(), join() and handled() from the thread that
// drives the run.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <utility>

#include "backends/backends.hpp"
#include "harness/harness.hpp"
#include "pushstage/pool/consumer_pool.hpp"

namespace pushstage::bench {

class HarnessPool {
 public:
  explicit HarnessPool(Harness& h) : h_(h) {}

  // Starts the consumers on `source` (a Dispatcher or a dispatch mode), which must outlive them.
  template <class Source>
  void start(Source& source) {
    PoolOptions po;
    po.consumers = h_.config.consumers;
    po.pin = h_.config.pin;
    po.pin_to = h_.config.pin_to;
    po.observer = served_observer();
    po.max_demand = h_.config.max_demand;
    pool_.emplace(source, std::move(po), [&h = h_](std::uint32_t& id) {
      thread_local ConsumerLog* log = nullptr;
      if (log == nullptr) log = &h.claim();
      h.handle(*log, id);
    });
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
