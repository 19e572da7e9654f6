// broker.hpp: pushstage-bench --broker URL: scale-out through NATS JetStream. For each process
// count, P worker processes (this binary, --broker-worker) each run a pushstage::nats::Pipeline on
// one shared durable consumer; this process publishes the events (through pushstage::nats::Sink)
// and waits until the broker has every one acknowledged. Reported per process and in total:
// events handled, throughput, latency (handler start - publish, across processes: steady_clock is
// CLOCK_MONOTONIC, one clock per machine), the source's fetches; fairness across processes as
// Jain's index over events per process and max/min. Every event must be handled at least once
// (lost events fail the run; duplicates, which at-least-once allows, are counted).
// The parts: broker_case.hpp (one case), jetstream_admin.hpp (the broker seen through nats.c),
// worker_process.hpp (the workers' pipes and their report), worker_main.cpp (a worker),
// broker_report.hpp (the tables, the scale-out summary, the JSON).
// Threading: run_broker() and broker_worker_main() run on the calling thread and start their own.
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "command_line.hpp"

namespace pushstage::bench {

// What --broker asked for (command_line.hpp, validated there), and where this executable is.
struct BrokerSpec : BrokerCommand {
  std::string self;  // this executable, started as the workers
};

struct BrokerReport {
  bool ok = true;       // every event handled at least once, every worker reported
  nlohmann::json json;  // the cases, for --json
};

// Runs every case; prints a table per case to `out`. Throws std::runtime_error when the broker
// cannot be used (unreachable, no JetStream).
BrokerReport run_broker(const BrokerSpec& spec, std::ostream& out);

// The worker process (pushstage-bench --broker-worker ARGS...). Exit status 0 on success.
int broker_worker_main(const std::vector<std::string>& args);

}  // namespace pushstage::bench
