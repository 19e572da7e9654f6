// command_line.cpp: see command_line.hpp. Moved out of main.cpp unchanged, so that the flags can
// be parsed (and fuzzed) without running anything.
#include "command_line.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "bench_core.hpp"
#include "pushstage/cpus.hpp"
#include "run.hpp"

namespace pushstage::bench {
namespace {

constexpr const char* kHelpFooter = R"(
Scenarios (--scenario NAME; flags given with it replace the scenario's values in every case):
%SCENARIOS%
Implementations (--impl, comma-separated; default: all but moodycamel-notoken):
%IMPLS%
What is measured, per event, with steady_clock: intended time (the seeded plan), enqueue time,
handler start and end. dispatch = start - enqueue; response = start - intended (open loop only);
excess = start - start in a zero-overhead FIFO replay of the same arrivals (enqueue stamps) and
service times with the same number of consumers. Percentiles come from per-consumer histograms
merged over repetitions. CPU per event is getrusage over the run, all threads; "consumer threads
only" subtracts the producers and the main thread.

Why sleep work by default: the seed case has 3 consumers at 80% load, i.e. 2.4 cores of work on a
2-core machine if the work spun; sleeping work (like I/O) keeps the machine able to run every
implementation's dispatch path. Use --work-mode spin for CPU-bound work.

Every run checks that each event was handled exactly once (and, for --batch, that the makespan
stays within Graham's bound plus 5% + 2 ms); a failure is printed and the exit status is 1.)";

std::string help_footer() {
  std::string s = kHelpFooter;
  std::string sc;
  for (const Scenario& x : scenarios()) {
    sc += "  " + std::string(x.name) +
          std::string(16 - std::min<std::size_t>(15, x.name.size()), ' ') + std::string(x.summary) +
          "\n";
  }
  std::string im;
  for (const ImplInfo& i : impls()) {
    im += "  " + std::string(i.name) +
          std::string(22 - std::min<std::size_t>(21, i.name.size()), ' ') + std::string(i.what) +
          "\n";
  }
  s.replace(s.find("%SCENARIOS%\n"), 12, sc);
  s.replace(s.find("%IMPLS%\n"), 8, im);
  return s;
}

std::vector<Impl> parse_impls(const std::string& text) {
  std::vector<Impl> out;
  std::string names;
  for (const ImplInfo& i : impls()) names += (names.empty() ? "" : ", ") + std::string(i.name);
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const ImplInfo* found = nullptr;
    for (const ImplInfo& i : impls()) {
      if (i.name == item) found = &i;
    }
    if (found == nullptr) {
      throw UsageError("--impl: expects a comma-separated list of " + names + "; got '" + text +
                       "'");
    }
    out.push_back(found->impl);
  }
  if (out.empty()) throw UsageError("--impl: expects at least one of " + names + "; got ''");
  return out;
}

}  // namespace

CommandLine parse_command_line(int argc, const char* const* argv) {
  CLI::App app{"pushstage-bench: pushstage against its peers under irregular work, side by side.",
               "pushstage-bench"};
  app.footer(help_footer());
  app.get_formatter()->column_width(34);
  CommandLine out;
  std::string scenario_name = "seed";
  Overrides f;
  std::string events, producers, weights, consumers, max_demand, rate, load, arrivals, work,
      work_mode, impl_list, reps, seed, idle_window;
  app.add_option("--scenario", scenario_name,
                 "seed | throughput | handoff | fairness | "
                 "oversubscribed | idle (default seed)");
  app.add_option("--impl", impl_list, "implementations to run, comma-separated");
  app.add_option("--events", events, "events per run, >= 1");
  app.add_option("--producers", producers, "producer threads, >= 1");
  app.add_option("--producer-weights", weights, "share of the rate per producer, e.g. 7,1,1,1");
  app.add_option("--consumers", consumers, "consumer threads, in [1, 1024]");
  app.add_option("--max-demand", max_demand, "events a consumer takes at a time, in [1, 65536]");
  app.add_option("--rate", rate, "events/s over all producers; 0 = closed loop (throughput)");
  app.add_option("--load", load, "offered work / consumer capacity in (0, 4]; sets the rate");
  app.add_option("--arrivals", arrivals, "poisson | fixed (open loop)");
  app.add_option("--work", work, std::string("handler work per event: ") + kWorkForms);
  app.add_option("--work-mode", work_mode,
                 "sleep (like I/O; default for seed) | spin (calibrated instruction loop)");
  app.add_flag("--batch", f.batch,
               "buffer every event before the consumers start; report makespan / Graham bound");
  app.add_flag("--no-pin", f.no_pin, "do not pin consumer (and producer) threads to CPUs");
  app.add_option("--reps", reps, "repetitions per implementation, interleaved, in [1, 100]");
  app.add_option("--seed", seed, "seed of the arrival and work plan (repetition r adds r)");
  app.add_option("--idle-window", idle_window, "idle scenario: how long CPU use is measured");
  app.add_flag("--trace", f.trace,
               "print who received and who finished each event (small runs: up to 20000 lines)");
  app.add_option("--json", out.json_path, "write every metric, the configuration and the machine");
  app.add_option("--svg", out.svg_path, "write latency CDFs, busy time per consumer, excess");
  bool no_fork = false;
  app.add_flag("--no-fork", no_fork, "run in this process (debugging; CPU and RSS then mix runs)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    out.help = app.help();
    return out;
  } catch (const CLI::ParseError& e) {
    throw UsageError(std::string(e.what()) + " (see --help)");
  }
  out.fork = !no_fork;

  const std::size_t cpus = allowed_cpus().size();
  const Scenario* scenario = find_scenario(scenario_name);
  if (scenario == nullptr) {
    std::string names;
    for (const Scenario& s : scenarios())
      names += (names.empty() ? "" : ", ") + std::string(s.name);
    throw UsageError("--scenario: expects one of " + names + "; got '" + scenario_name + "'");
  }
  if (!events.empty()) f.events = parse_count("--events", events, 1, 50'000'000);
  if (!producers.empty()) f.producers = parse_count("--producers", producers, 1, 256);
  if (!weights.empty()) f.weights = parse_weights("--producer-weights", weights);
  if (!consumers.empty()) f.consumers = parse_count("--consumers", consumers, 1, 1024);
  if (!max_demand.empty()) f.max_demand = parse_count("--max-demand", max_demand, 1, 65536);
  if (!rate.empty() && !load.empty()) {
    throw UsageError("--rate: cannot be combined with --load (give one); got --rate '" + rate +
                     "' and --load '" + load + "'");
  }
  if (!rate.empty()) f.rate = parse_number("--rate", rate, 0, 1e9);
  if (!load.empty()) {
    f.load = parse_number("--load", load, 0, 4);
    if (*f.load <= 0) throw UsageError("--load: expects a number in (0, 4]; got '" + load + "'");
  }
  if (!arrivals.empty()) {
    if (arrivals == "poisson") {
      f.arrivals = Arrivals::kPoisson;
    } else if (arrivals == "fixed") {
      f.arrivals = Arrivals::kFixed;
    } else {
      throw UsageError("--arrivals: expects poisson or fixed; got '" + arrivals + "'");
    }
  }
  if (!work.empty()) f.work = parse_work("--work", work).text;
  if (!work_mode.empty()) {
    if (work_mode == "spin") {
      f.work_mode = WorkMode::kSpin;
    } else if (work_mode == "sleep") {
      f.work_mode = WorkMode::kSleep;
    } else {
      throw UsageError("--work-mode: expects spin or sleep; got '" + work_mode + "'");
    }
  }
  if (!impl_list.empty()) f.impls = parse_impls(impl_list);
  if (!reps.empty()) f.reps = parse_count("--reps", reps, 1, 100);
  if (!seed.empty()) f.seed = parse_count("--seed", seed, 0, ~std::uint64_t{0} / 2);
  if (!idle_window.empty()) {
    f.idle_window_ns = parse_duration_ns("--idle-window", idle_window);
    if (*f.idle_window_ns < 10'000'000 || *f.idle_window_ns > 60'000'000'000) {
      throw UsageError("--idle-window: expects a duration in [10ms, 60s]; got '" + idle_window +
                       "'");
    }
  }
  out.cases = build_cases(*scenario, f, cpus);
  out.scenario = scenario;
  return out;
}

}  // namespace pushstage::bench
