// command_line.hpp: pushstage-bench's command line, parsed and validated into the cases to run,
// without running, printing or opening anything. main.cpp runs what it returns; the fuzz target
// tests/fuzz/bench_cli_fuzz.cpp feeds it arbitrary argument vectors.
// Threading: plain functions.
// Failure:   bad input throws UsageError (or std::invalid_argument) with the one-line message that
//            the CLI prints after "pushstage-bench: " before exiting with status 2.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bench_core.hpp"
#include "run.hpp"
#include "scenarios.hpp"

namespace pushstage::bench {

// --broker URL: scale-out through NATS JetStream, validated (main.cpp runs it; see broker.hpp).
struct BrokerCommand {
  std::string url;  // nats://[user:password@|token@]HOST:PORT: print it through redacted_argument
  std::vector<std::size_t> processes{1, 2, 4};  // --processes
  std::size_t events = 4000;
  std::size_t consumers = 2;   // per process
  std::size_t max_demand = 1;  // per consumer
  double rate = 0;             // events/s published; 0: all at once
  WorkDist work;               // default const:1ms
  WorkMode work_mode = WorkMode::kSleep;
  bool pin = true;
  std::size_t reps = 1;
  std::uint64_t seed = 1;
};

struct CommandLine {
  std::string help;  // non-empty when --help was given: print it and exit 0; nothing else is set
  const Scenario* scenario = nullptr;
  std::vector<CaseSpec> cases;          // the scenario's cases with the flags applied, validated
  std::string json_path;                // empty: no --json
  std::string svg_path;                 // empty: no --svg
  bool fork = true;                     // each run in its own process (--no-fork clears it)
  std::optional<BrokerCommand> broker;  // --broker: scenario and cases stay empty
};

// argv[0] is the program name, as in main(). Without PUSHSTAGE_BENCH_NATS (pushstage-bench built
// without pushstage::nats), --broker is refused as unavailable. An error message never shows the
// password or token of a URL given on the command line (see redacted_argument).
[[nodiscard]] CommandLine parse_command_line(int argc, const char* const* argv);

// `arg` (a command-line argument, or a --broker URL) as pushstage-bench prints it, in messages and
// in --json: a URL's password or token replaced by "***" (pushstage::nats::redacted_url; also in
// the --flag=URL form). Without PUSHSTAGE_BENCH_NATS, any argument holding '@' is "***" whole.
[[nodiscard]] std::string redacted_argument(const std::string& arg);

}  // namespace pushstage::bench
