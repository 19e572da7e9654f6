// worker_process.hpp: the --broker worker processes, both ends of their pipes. The parent starts
// each worker as this executable with --broker-worker ARGS (spawn_worker()), reads "ready" and,
// after closing the worker's stdin (stop()), one JSON line: the WorkerReport that the worker
// (worker_main.cpp) wrote when it stopped. The report's JSON is written and read here only.
// Threading: a WorkerProcess is used by one thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "pushstage/histogram.hpp"

namespace pushstage::bench {

// What one worker process handled, written when it stops. Stamps are now_ns().
struct WorkerReport {
  std::uint64_t handled = 0;
  std::vector<std::uint32_t> ids;  // every event handled, redeliveries included
  pushstage::Histogram latency;    // handler start - publish
  std::int64_t first_start = 0;
  std::int64_t last_end = 0;
  std::uint64_t fetches = 0;  // the source's counters (pushstage::nats::SourceStats)
  std::uint64_t redelivered = 0;
  std::uint64_t max_in_flight = 0;
  std::int64_t cpu_ns = 0;                     // the whole worker process
  std::vector<std::uint64_t> consumer_events;  // per consumer thread
};

[[nodiscard]] nlohmann::json worker_report_to_json(const WorkerReport& r);
// Throws nlohmann::json::exception on malformed input.
[[nodiscard]] WorkerReport worker_report_from_json(const nlohmann::json& j);

struct WorkerProcess {
  pid_t pid = -1;
  int in = -1;   // its stdin (nothing is written; closing it means "stop")
  int out = -1;  // its stdout: "ready", then one JSON line
  std::string buffer;

  // The next line, or nullopt on EOF / after `limit`.
  std::optional<std::string> line(std::chrono::milliseconds limit);
  // Appends what the worker has written by `deadline` to buffer; false on EOF, on an error and at
  // the deadline.
  bool read_more(std::chrono::steady_clock::time_point deadline);
  // Closes its stdin: the worker stops and writes its report.
  void stop();
  // Waits for it to exit and closes its stdout; returns the wait status.
  int wait_exit();
};

// The broker URL reaches a worker through its environment, not its argv: a URL may hold a
// password, and every local user can read a process's argv (ps), not its environment.
inline constexpr const char* kBrokerUrlVariable = "PUSHSTAGE_BENCH_BROKER_URL";

// Starts args[0] with `args` (fork and exec) and broker_url in $PUSHSTAGE_BENCH_BROKER_URL. The
// child gets SIGKILL when this process dies. Throws std::runtime_error when a pipe or the fork
// fails.
[[nodiscard]] WorkerProcess spawn_worker(const std::vector<std::string>& args,
                                         const std::string& broker_url);

}  // namespace pushstage::bench
