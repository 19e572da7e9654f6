// broker_case.hpp: one --broker case: P worker processes on one shared durable consumer. The
// parent creates the case's stream and consumer, starts the workers and waits for "ready" from
// each, publishes the events through pushstage::nats::Sink (all at once, or paced at --rate; the
// payload is "id publish_stamp work_ns"), waits until the broker has every event acknowledged
// (failing after 30 s without progress), stops the workers, reads their reports and merges them:
// every event at least once (lost events fail the case; duplicates are counted), throughput over
// first publish to last handler end, fairness across processes.
// Threading: runs on the calling thread; the workers are processes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "broker/broker.hpp"
#include "broker/jetstream_admin.hpp"
#include "broker/worker_process.hpp"
#include "pushstage/histogram.hpp"

namespace pushstage::bench {

// A worker's report as the parent received it.
struct ProcessResult : WorkerReport {
  bool ok = false;
  std::string failure;  // no report, an unreadable one, or a failed exit
};

struct CaseOutcome {
  std::size_t processes = 0;
  std::size_t rep = 0;
  bool ok = true;
  std::string failure;
  std::vector<ProcessResult> per_process;
  pushstage::Histogram latency;  // merged over the processes
  std::int64_t span_ns = 0;
  double throughput = 0;
  double publish_rate = 0;
  double jain = 1;     // Jain's index over events per process
  double max_min = 1;  // events per process, max / min
  std::uint64_t lost = 0;
  std::uint64_t duplicates = 0;
};

// Case number `case_no` (it names the stream), repetition `rep` (the work sizes' seed is
// spec.seed + rep). Throws std::runtime_error when the stream cannot be created.
[[nodiscard]] CaseOutcome run_case(const BrokerSpec& spec, JetStreamAdmin& admin,
                                   std::size_t processes, std::size_t rep, std::size_t case_no);

}  // namespace pushstage::bench
