// scenarios.hpp: named sets of cases (--scenario), the flags that override them, and the targets
// each scenario is judged against. A new scenario is one more entry in the table in
// scenarios.cpp: a name, a line for --help, a function that lists its cases, optionally targets
// (scenario_targets.hpp).
// Threading: plain functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "report/summary.hpp"
#include "run.hpp"

namespace pushstage::bench {

// A case before flags and the machine are applied.
struct CaseDraft {
  std::string name;
  RunKind kind = RunKind::kStream;
  std::size_t events = 1000;
  std::size_t producers = 1;
  std::vector<double> weights;
  std::optional<double> rate;  // events/s, 0 = closed loop; unset: from load
  double load = 0.8;           // offered work / consumer capacity, when rate is unset
  Arrivals arrivals = Arrivals::kPoisson;
  std::string work = "uniform:500us:1500us";
  WorkMode work_mode = WorkMode::kSleep;
  std::size_t consumers = 3;
  std::size_t max_demand = 1;
  bool pin = true;
  PinTo pin_to = PinTo::Cpu;
  bool pinned_only = false;  // a pinned case that --no-pin drops (its unpinned twin follows it)
  std::size_t reps = 3;
  std::vector<Impl> impls;  // empty: the six standard implementations
  std::int64_t idle_window_ns = 1'000'000'000;
};

// Flags given on the command line; each one replaces the scenario's value in every case.
struct Overrides {
  std::optional<std::size_t> events, producers, consumers, max_demand, reps;
  std::optional<std::vector<double>> weights;
  std::optional<double> rate, load;
  std::optional<Arrivals> arrivals;
  std::optional<std::string> work;
  std::optional<WorkMode> work_mode;
  std::optional<std::vector<Impl>> impls;
  std::optional<std::uint64_t> seed;
  std::optional<std::int64_t> idle_window_ns;
  bool batch = false;
  bool no_pin = false;
  std::optional<PinTo> pin_to;
  bool trace = false;
};

struct Scenario {
  std::string_view name;
  std::string_view summary;
  std::vector<CaseDraft> (*cases)(std::size_t cpus);
  // Lines "target ...: ... met|missed" for a finished scenario; may be null.
  std::vector<std::string> (*targets)(const std::vector<CaseResult>& results, std::size_t cpus);
};

[[nodiscard]] std::span<const Scenario> scenarios();
// nullptr when unknown.
[[nodiscard]] const Scenario* find_scenario(std::string_view name);

// The scenario's cases with the flags applied, validated. Throws UsageError naming the flag.
[[nodiscard]] std::vector<CaseSpec> build_cases(const Scenario& scenario, const Overrides& flags,
                                                std::size_t cpus);

}  // namespace pushstage::bench
