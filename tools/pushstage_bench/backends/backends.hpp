// backends.hpp: one function per implementation, each a whole run of its backend (run_with() in
// harness/driver.hpp); run_once() (run.cpp) picks one by Impl. A backend is a class that meets
// the Backend concept (harness/driver.hpp), in the file named for it:
//   source_backend.cpp    a pushstage source + ConsumerPool: the Dispatcher (the subject, FIFO
//                         or LIFO wake), PartitionDispatcher, KeyedDispatcher, BroadcastDispatcher
//   peer_backend.cpp      each peer of bench/peers.hpp under a consumer loop shaped like
//                         ConsumerPool's: moodycamel blocking (with and without tokens),
//                         std::mutex + std::condition_variable, oneTBB, moodycamel spinning
//   pipeline_backend.cpp  Dispatcher -> pass-through Stages -> ConsumerPool
//   pipeline_front_backend.cpp  the subject's Dispatcher and consumers declared as a Pipeline
// Threading: each starts and joins its own threads; one run at a time.
#pragma once

#include <memory>

#include "harness/driver.hpp"
#include "pushstage/dispatcher_options.hpp"
#include "run.hpp"

namespace pushstage::bench {

// With --serve (in-process runs only): the exporter's observer, given to the Dispatcher and the
// ConsumerPool of every pushstage run, so that the dashboard and /metrics show dispatch and
// handler latencies. Null otherwise. Set by main() before the first run.
std::shared_ptr<Observer>& served_observer();

[[nodiscard]] RunResult run_pushstage(const RunRequest& run, WakeOrder order,
                                      bool fast_push = false);

[[nodiscard]] RunResult run_moodycamel_blocking(const RunRequest& run);
[[nodiscard]] RunResult run_moodycamel_notoken(const RunRequest& run);
[[nodiscard]] RunResult run_mutex(const RunRequest& run);
[[nodiscard]] RunResult run_tbb(const RunRequest& run);
[[nodiscard]] RunResult run_moodycamel_spin(const RunRequest& run);

// A head Dispatcher, stages - 1 pass-through Stages, the consumers.
[[nodiscard]] RunResult run_pipeline(const RunRequest& run, int stages);

[[nodiscard]] RunResult run_partition(const RunRequest& run);
[[nodiscard]] RunResult run_keyed(const RunRequest& run);
[[nodiscard]] RunResult run_broadcast(const RunRequest& run);

// The subject's topology through the Pipeline front: a Pipeline whose input the producers push
// into and whose processors (no batcher) call the harness handler.
[[nodiscard]] RunResult run_pipeline_front(const RunRequest& run);

}  // namespace pushstage::bench
