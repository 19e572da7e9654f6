// command_line.hpp: pushstage-bench's command line, parsed and validated into the cases to run,
// without running, printing or opening anything. main.cpp runs what it returns; the fuzz target
// tests/fuzz/bench_cli_fuzz.cpp feeds it arbitrary argument vectors.
// Threading: plain functions.
// Failure:   bad input throws UsageError (or std::invalid_argument) with the one-line message that
//            the CLI prints after "pushstage-bench: " before exiting with status 2.
#pragma once

#include <string>
#include <vector>

#include "scenarios.hpp"

namespace pushstage::bench {

struct CommandLine {
  std::string help;  // non-empty when --help was given: print it and exit 0; nothing else is set
  const Scenario* scenario = nullptr;
  std::vector<CaseSpec> cases;  // the scenario's cases with the flags applied, validated
  std::string json_path;        // empty: no --json
  std::string svg_path;         // empty: no --svg
  bool fork = true;             // each run in its own process (--no-fork clears it)
};

// argv[0] is the program name, as in main().
[[nodiscard]] CommandLine parse_command_line(int argc, const char* const* argv);

}  // namespace pushstage::bench
