// analysis.hpp: a run's records turned into its RunResult, after every thread has joined: the
// exactly-once check, CPU and memory, events and busy time per consumer, dispatch and response
// latency (per-consumer histograms, merged) and per producer, span and throughput, the replay of
// the same arrivals and service times through an ideal FIFO dispatcher (excess) and FIFO
// inversions, and for a batch the makespan against Graham's bound. --trace prints every handling.
// Threading: reads the harness without synchronisation: call it only after the join.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "harness/harness.hpp"
#include "run.hpp"

namespace pushstage::bench {

// What a backend says about its run, next to the harness's records.
struct BackendFacts {
  // Handler calls its consumers counted themselves, checked against the harness's count; nullopt
  // when the consumer loop is the harness's own (the peers).
  std::optional<std::uint64_t> pool_handled;
  // Handler calls per event: the number of subscribers for a broadcast, else 1. With copies > 1
  // each consumer must handle each event exactly once, dispatch latency counts every delivery,
  // and there is no ideal FIFO replay (excess stays empty).
  std::size_t copies = 1;
  // false: a batch is not held to Graham's bound (the makespan is still reported).
  bool work_conserving = true;
};

// The result of the run `h` recorded and `tl` timed. Lost, duplicated or unknown events and a
// broken bound make it !ok with the reason in `failure`; they never throw.
[[nodiscard]] RunResult analyse(const Harness& h, const Timeline& tl, std::string_view impl,
                                std::size_t rep, const BackendFacts& backend);

}  // namespace pushstage::bench
