// command_line.cpp: see command_line.hpp. Moved out of main.cpp unchanged, so that the flags can
// be parsed (and fuzzed) without running anything.
#include "command_line.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "bench_core.hpp"
#include "harness/work.hpp"
#include "pushstage/cpus.hpp"
#include "run.hpp"
#ifdef PUSHSTAGE_BENCH_NATS
#include "pushstage/nats/connect_options.hpp"
#endif

namespace pushstage::bench {
namespace {

constexpr const char* kHelpFooter = R"(
Scenarios (--scenario NAME; flags given with it replace the scenario's values in every case):
%SCENARIOS%
Implementations (--impl, comma-separated; default: the scenario's, usually the first six):
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
stays within Graham's bound plus 5% + 2 ms); a failure is printed and the exit status is 1.

Scale-out through a broker (--broker nats://HOST:PORT, a nats-server with JetStream): for each
count in --processes (default 1,2,4), that many worker processes each run a pushstage::nats
Pipeline of --consumers consumers (default 2, --max-demand 1) on one shared durable pull consumer;
--events events (default 4000) are published (all at once, or at --rate events/s) with work
--work (default const:1ms, --work-mode sleep). Reported per process and in total: events,
throughput, latency from publish to handler start, fetches; fairness across processes (Jain's
index over events per process, max/min). Every event must be handled at least once (duplicates
are counted); a lost event makes the exit status 1. Combines only with --events, --consumers,
--max-demand, --rate, --work, --work-mode, --no-pin, --reps, --seed, --json.)";

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

WorkMode parse_work_mode(const std::string& text) {
  for (const WorkMode mode : {WorkMode::kSpin, WorkMode::kSleep}) {
    if (text == work_mode_name(mode)) return mode;
  }
  throw UsageError("--work-mode: expects spin or sleep; got '" + text + "'");
}

[[maybe_unused]] std::vector<std::size_t> parse_processes(const std::string& text) {
  std::vector<std::size_t> out;
  std::stringstream ss(text);
  std::string item;
  const std::string expects = "--processes: expects comma-separated process counts in [1, 64]";
  while (std::getline(ss, item, ',')) {
    try {
      out.push_back(parse_count("--processes", item, 1, 64));
    } catch (const UsageError&) {
      throw UsageError(expects + ", e.g. 1,2,4; got '" + text + "'");
    }
  }
  if (out.empty()) throw UsageError(expects + ", e.g. 1,2,4; got '" + text + "'");
  return out;
}

struct BrokerFlags {
  std::string url, processes, events, consumers, max_demand, rate, work, work_mode, reps, seed;
  bool no_pin = false;
};

// --broker: the flags that apply to it, validated; every in-process flag refused.
BrokerCommand parse_broker(const CLI::App& app, const BrokerFlags& f) {
  for (const char* flag :
       {"--scenario", "--impl", "--producers", "--producer-weights", "--load", "--arrivals",
        "--batch", "--trace", "--pin-to", "--svg", "--idle-window", "--no-fork"}) {
    if (app.count(flag) != 0) {
      throw UsageError("--broker: cannot be combined with " + std::string(flag) +
                       " (it applies to in-process runs)");
    }
  }
#ifndef PUSHSTAGE_BENCH_NATS
  (void)f;
  throw UsageError("--broker: this pushstage-bench was built without pushstage::nats (libnats)");
#else
  BrokerCommand b;
  if (f.url.rfind("nats://", 0) != 0 || f.url.size() <= 7) {
    throw UsageError(
        "--broker: expects a NATS URL such as nats://127.0.0.1:4222 or "
        "nats://user:password@HOST:PORT (no TLS options here); got '" +
        redacted_argument(f.url) + "'");
  }
  b.url = f.url;
  if (!f.processes.empty()) b.processes = parse_processes(f.processes);
  if (!f.events.empty()) b.events = parse_count("--events", f.events, 1, 10'000'000);
  if (!f.consumers.empty()) b.consumers = parse_count("--consumers", f.consumers, 1, 1024);
  if (!f.max_demand.empty()) b.max_demand = parse_count("--max-demand", f.max_demand, 1, 65536);
  if (!f.rate.empty()) b.rate = parse_number("--rate", f.rate, 0, 1e7);
  b.work = parse_work("--work", f.work.empty() ? std::string("const:1ms") : f.work);
  if (!f.work_mode.empty()) b.work_mode = parse_work_mode(f.work_mode);
  b.pin = !f.no_pin;
  if (!f.reps.empty()) b.reps = parse_count("--reps", f.reps, 1, 100);
  if (!f.seed.empty()) b.seed = parse_count("--seed", f.seed, 0, ~std::uint64_t{0} / 2);
  return b;
#endif
}

// `text` with every argument that may hold a URL's secret shown as redacted_argument() shows it
// (whole, and the value of its --flag=value form).
std::string without_secrets(std::string text, int argc, const char* const* argv) {
  std::vector<std::pair<std::string, std::string>> masks;  // what -> how it is shown
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.find('@') == std::string::npos) continue;
    masks.emplace_back(arg, redacted_argument(arg));
    if (const auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      masks.emplace_back(arg.substr(eq + 1), redacted_argument(arg.substr(eq + 1)));
    }
  }
  // Longest first: masking a shorter argument inside a longer one would keep the longer one from
  // being found, with the rest of its secrets.
  std::sort(masks.begin(), masks.end(),
            [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  for (const auto& [from, to] : masks) {
    if (from.empty() || from == to) continue;
    for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
      text.replace(at, from.size(), to);
    }
  }
  return text;
}

CommandLine parse_arguments(int argc, const char* const* argv);

}  // namespace

std::string redacted_argument(const std::string& arg) {
  if (arg.find('@') == std::string::npos) return arg;
#ifdef PUSHSTAGE_BENCH_NATS
  if (const auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
    return arg.substr(0, eq + 1) + pushstage::nats::redacted_url(arg.substr(eq + 1));
  }
  return pushstage::nats::redacted_url(arg);
#else
  return "***";
#endif
}

CommandLine parse_command_line(int argc, const char* const* argv) {
  try {
    return parse_arguments(argc, argv);
  } catch (const UsageError& e) {
    throw UsageError(without_secrets(e.what(), argc, argv));
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(without_secrets(e.what(), argc, argv));
  }
}

namespace {

CommandLine parse_arguments(int argc, const char* const* argv) {
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
                 "seed | throughput | handoff | fairness | oversubscribed | idle | pipeline | "
                 "partition | broadcast (default seed)");
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
  std::string pin_to;
  app.add_option("--pin-to", pin_to,
                 "cpu (default) | cache-domain: what a pinned thread is pinned to");
  app.add_option("--reps", reps, "repetitions per implementation, interleaved, in [1, 100]");
  app.add_option("--seed", seed, "seed of the arrival and work plan (repetition r adds r)");
  app.add_option("--idle-window", idle_window, "idle scenario: how long CPU use is measured");
  app.add_flag("--trace", f.trace,
               "print who received and who finished each event (small runs: up to 20000 lines)");
  app.add_option("--json", out.json_path, "write every metric, the configuration and the machine");
  app.add_option("--svg", out.svg_path, "write latency CDFs, busy time per consumer, excess");
  bool no_fork = false;
  app.add_flag("--no-fork", no_fork, "run in this process (debugging; CPU and RSS then mix runs)");
  std::string broker;
  std::string processes;
  app.add_option("--broker", broker,
                 "scale out through NATS JetStream at this URL (nats://HOST:PORT); see below");
  app.add_option("--processes", processes, "with --broker: worker processes per case, e.g. 1,2,4");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    out.help = app.help();
    return out;
  } catch (const CLI::ParseError& e) {
    throw UsageError(std::string(e.what()) + " (see --help)");
  }
  out.fork = !no_fork;
  if (!processes.empty() && broker.empty()) {
    throw UsageError("--processes: needs --broker (worker processes share a broker's consumer)");
  }
  if (!broker.empty()) {
    out.broker = parse_broker(app, {broker, processes, events, consumers, max_demand, rate, work,
                                    work_mode, reps, seed, f.no_pin});
    return out;
  }

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
  if (!pin_to.empty()) {
    if (f.no_pin) throw UsageError("--pin-to: cannot be combined with --no-pin");
    if (pin_to == "cpu") {
      f.pin_to = PinTo::Cpu;
    } else if (pin_to == "cache-domain") {
      f.pin_to = PinTo::CacheDomain;
    } else {
      throw UsageError("--pin-to: expects cpu or cache-domain; got '" + pin_to + "'");
    }
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
  if (!work_mode.empty()) f.work_mode = parse_work_mode(work_mode);
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

}  // namespace

}  // namespace pushstage::bench
