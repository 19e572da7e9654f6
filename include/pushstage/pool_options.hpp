// pushstage/pool_options.hpp: the vocabulary of ConsumerPool and Stage: their options and stats.
// Threading: plain value types; copy them freely.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <vector>

namespace pushstage {

// Who asks for events: GenStage's subscription mode.
enum class DemandMode {
  Automatic,  // each consumer asks again as it handles events (max_demand, min_demand)
  Manual,     // the pool takes events only against demand granted by ask(n), e.g. by handlers that
              // finish asynchronously; it starts with none
};

struct PoolOptions {
  // Consumer threads, in [1, 65536]. Over a PartitionDispatcher or a BroadcastDispatcher: exactly
  // one per partition or subscriber.
  std::size_t consumers = 1;
  // Pin each consumer thread to one CPU.
  bool pin = true;
  // CPUs to pin to, used round-robin; each must be one this process may use. Empty: round-robin
  // over allowed_cpus(). Must be empty when pin is false.
  std::vector<int> cpus;
  // GenStage's demand. A consumer asks for up to max_demand events, handles them in chunks of at
  // most max_demand - min_demand, and asks again when what it holds falls to min_demand.
  // max_demand in [1, 65536] (GenStage's default is 1000, ours 1: one event at a time).
  std::size_t max_demand = 1;
  // In [0, max_demand - 1]; kAutoMinDemand means max_demand / 2 (GenStage's default; 0 when
  // max_demand is 1).
  static constexpr std::size_t kAutoMinDemand = ~std::size_t{0};
  std::size_t min_demand = kAutoMinDemand;
  // Automatic, or Manual: events are taken only against ask(n) (never more than max_demand at a
  // time per consumer either).
  DemandMode demand = DemandMode::Automatic;
  // Called on the consumer's thread each time the handler throws; the consumer goes on.
  std::function<void(std::exception_ptr)> on_error;
};

struct ConsumerStats {
  int cpu = -1;                      // the CPU it is pinned to; -1 when not pinned
  std::uint64_t handled = 0;         // events whose handler returned normally
  std::uint64_t failed = 0;          // events whose handler threw
  std::chrono::nanoseconds busy{0};  // time spent inside the handler
};

}  // namespace pushstage
