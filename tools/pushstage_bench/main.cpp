// main.cpp: pushstage-bench, the command line. Parses and validates every flag before anything
// runs (bad input: one line on stderr, exit status 2), then runs each case's repetitions with the
// implementations interleaved (A B C A B C ...), each run in a forked child, and prints a table
// per case, the scenario's targets, and optionally JSON and SVG files.
// Exit status: 0 all checks passed; 1 an implementation lost or duplicated an event or broke the
// Graham bound (or a run died); 2 bad command line.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bench_core.hpp"
#include "pushstage/cpus.hpp"
#include "report.hpp"
#include "run.hpp"
#include "scenarios.hpp"
#ifdef PUSHSTAGE_BENCH_NATS
#include "broker.hpp"
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

struct Cli {
  std::string scenario = "seed";
  Overrides flags;
  std::string json_path;
  std::string svg_path;
  bool fork = true;
};

[[noreturn]] void usage_exit(const std::string& message) {
  std::fprintf(stderr, "pushstage-bench: %s\n", message.c_str());
  std::exit(2);
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

std::vector<std::size_t> parse_processes(const std::string& text) {
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

// pushstage-bench --broker: validates the flags that apply, then runs the scale-out cases.
int run_broker_main(const CLI::App& app, int argc, char** argv, const std::string& url,
                    const std::string& processes, const std::string& events,
                    const std::string& consumers, const std::string& max_demand,
                    const std::string& rate, const std::string& work, const std::string& work_mode,
                    const std::string& reps, const std::string& seed, const Cli& cli) {
  for (const char* flag :
       {"--scenario", "--impl", "--producers", "--producer-weights", "--load", "--arrivals",
        "--batch", "--trace", "--svg", "--idle-window", "--no-fork"}) {
    if (app.count(flag) != 0) {
      usage_exit("--broker: cannot be combined with " + std::string(flag) +
                 " (it applies to in-process runs)");
    }
  }
#ifndef PUSHSTAGE_BENCH_NATS
  (void)argc;
  (void)argv;
  (void)url;
  (void)processes;
  (void)events;
  (void)consumers;
  (void)max_demand;
  (void)rate;
  (void)work;
  (void)work_mode;
  (void)reps;
  (void)seed;
  (void)cli;
  usage_exit("--broker: this pushstage-bench was built without pushstage::nats (libnats)");
#else
  const auto wall0 = std::chrono::steady_clock::now();
  BrokerSpec spec;
  std::ofstream json_out;
  try {
    if (url.rfind("nats://", 0) != 0 || url.size() <= 7) {
      throw UsageError("--broker: expects a NATS URL such as nats://127.0.0.1:4222; got '" + url +
                       "'");
    }
    spec.url = url;
    spec.processes =
        processes.empty() ? std::vector<std::size_t>{1, 2, 4} : parse_processes(processes);
    if (!events.empty()) spec.events = parse_count("--events", events, 1, 10'000'000);
    if (!consumers.empty()) spec.consumers = parse_count("--consumers", consumers, 1, 1024);
    if (!max_demand.empty()) spec.max_demand = parse_count("--max-demand", max_demand, 1, 65536);
    if (!rate.empty()) spec.rate = parse_number("--rate", rate, 0, 1e7);
    spec.work = parse_work("--work", work.empty() ? std::string("const:1ms") : work);
    if (!work_mode.empty()) {
      if (work_mode == "spin") {
        spec.work_mode = WorkMode::kSpin;
      } else if (work_mode == "sleep") {
        spec.work_mode = WorkMode::kSleep;
      } else {
        throw UsageError("--work-mode: expects spin or sleep; got '" + work_mode + "'");
      }
    }
    spec.pin = !cli.flags.no_pin;
    if (!reps.empty()) spec.reps = parse_count("--reps", reps, 1, 100);
    if (!seed.empty()) spec.seed = parse_count("--seed", seed, 0, ~std::uint64_t{0} / 2);
  } catch (const UsageError& e) {
    usage_exit(e.what());
  }
  if (!cli.json_path.empty()) {
    json_out.open(cli.json_path);
    if (!json_out) usage_exit("--json: expects a writable file path; got '" + cli.json_path + "'");
  }
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    std::fprintf(stderr, "pushstage-bench: cannot find its own executable\n");
    return 1;
  }
  spec.self.assign(self, static_cast<std::size_t>(n));

  MachineInfo machine = machine_info();
  std::cout << "pushstage-bench --broker: " << spec.processes.size() << " case"
            << (spec.processes.size() == 1 ? "" : "s") << " x " << spec.reps << " rep"
            << (spec.reps == 1 ? "" : "s") << "\n";
  print_machine(std::cout, machine);
  BrokerReport report;
  try {
    report = run_broker(spec, std::cout);
  } catch (const std::exception& e) {
    std::cout.flush();
    std::fprintf(stderr, "pushstage-bench: %s\n", e.what());
    return 1;
  }
  const double wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  if (json_out.is_open()) {
    std::string command;
    for (int i = 0; i < argc; ++i) command += (i == 0 ? "" : " ") + std::string(argv[i]);
    nlohmann::json doc = {{"tool", "pushstage-bench"},
                          {"command", command},
                          {"mode", "broker"},
                          {"broker", spec.url},
                          {"events", spec.events},
                          {"consumers_per_process", spec.consumers},
                          {"max_demand", spec.max_demand},
                          {"rate", spec.rate},
                          {"work", spec.work.text},
                          {"work_mode", spec.work_mode == WorkMode::kSpin ? "spin" : "sleep"},
                          {"machine", machine_to_json(machine)},
                          {"wall_s", wall_s},
                          {"checks_passed", report.ok},
                          {"cases", report.json}};
    json_out << doc.dump(1) << "\n";
    std::cout << "wrote " << cli.json_path << "\n";
  }
  std::printf("wall time: %.1f s\n", wall_s);
  if (!report.ok) {
    std::cout << "FAILED: an event was lost or a worker failed (above)\n";
    return 1;
  }
  return 0;
#endif
}

int run_main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "--broker-worker") {
#ifdef PUSHSTAGE_BENCH_NATS
    return broker_worker_main(std::vector<std::string>(argv + 2, argv + argc));
#else
    usage_exit("--broker-worker: this pushstage-bench was built without pushstage::nats");
#endif
  }
  const auto wall0 = std::chrono::steady_clock::now();
  CLI::App app{"pushstage-bench: pushstage against its peers under irregular work, side by side.",
               "pushstage-bench"};
  app.footer(help_footer());
  app.get_formatter()->column_width(34);
  Cli cli;
  std::string events, producers, weights, consumers, max_demand, rate, load, arrivals, work,
      work_mode, impl_list, reps, seed, idle_window;
  app.add_option("--scenario", cli.scenario,
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
  app.add_flag("--batch", cli.flags.batch,
               "buffer every event before the consumers start; report makespan / Graham bound");
  app.add_flag("--no-pin", cli.flags.no_pin, "do not pin consumer (and producer) threads to CPUs");
  app.add_option("--reps", reps, "repetitions per implementation, interleaved, in [1, 100]");
  app.add_option("--seed", seed, "seed of the arrival and work plan (repetition r adds r)");
  app.add_option("--idle-window", idle_window, "idle scenario: how long CPU use is measured");
  app.add_flag("--trace", cli.flags.trace,
               "print who received and who finished each event (small runs: up to 20000 lines)");
  app.add_option("--json", cli.json_path, "write every metric, the configuration and the machine");
  app.add_option("--svg", cli.svg_path, "write latency CDFs, busy time per consumer, excess");
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
    std::cout << app.help();
    return 0;
  } catch (const CLI::ParseError& e) {
    usage_exit(std::string(e.what()) + " (see --help)");
  }
  cli.fork = !no_fork;
  if (!processes.empty() && broker.empty()) {
    usage_exit("--processes: needs --broker (worker processes share a broker's consumer)");
  }
  if (!broker.empty()) {
    return run_broker_main(app, argc, argv, broker, processes, events, consumers, max_demand, rate,
                           work, work_mode, reps, seed, cli);
  }

  const std::size_t cpus = allowed_cpus().size();
  std::vector<CaseSpec> cases;
  const Scenario* scenario = find_scenario(cli.scenario);
  try {
    if (scenario == nullptr) {
      std::string names;
      for (const Scenario& s : scenarios())
        names += (names.empty() ? "" : ", ") + std::string(s.name);
      throw UsageError("--scenario: expects one of " + names + "; got '" + cli.scenario + "'");
    }
    Overrides& f = cli.flags;
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
    cases = build_cases(*scenario, f, cpus);
  } catch (const UsageError& e) {
    usage_exit(e.what());
  } catch (const std::invalid_argument& e) {
    usage_exit(e.what());
  }
  // Open the output files now: a path that cannot be written is bad input, found before the run.
  std::ofstream json_out;
  std::ofstream svg_out;
  if (!cli.json_path.empty()) {
    json_out.open(cli.json_path);
    if (!json_out) usage_exit("--json: expects a writable file path; got '" + cli.json_path + "'");
  }
  if (!cli.svg_path.empty()) {
    svg_out.open(cli.svg_path);
    if (!svg_out) usage_exit("--svg: expects a writable file path; got '" + cli.svg_path + "'");
  }

  MachineInfo machine = machine_info();
  machine.spin_iters_per_ns = calibrate_spin_work();
  std::size_t total_runs = 0;
  for (const CaseSpec& c : cases) total_runs += c.reps * c.impls.size();
  std::cout << "pushstage-bench: scenario " << scenario->name << ", " << cases.size() << " case"
            << (cases.size() == 1 ? "" : "s") << ", " << total_runs << " runs"
            << (cli.fork ? " (each in its own process)" : "") << "\n";
  print_machine(std::cout, machine);
  std::cout.flush();

  std::vector<CaseResult> results;
  bool all_ok = true;
  std::size_t run_no = 0;
  for (const CaseSpec& spec : cases) {
    std::vector<std::vector<RunResult>> runs(spec.impls.size());
    for (std::size_t rep = 0; rep < spec.reps; ++rep) {
      PlanSpec ps = spec.config.plan;
      ps.seed += rep;
      const Plan plan = make_plan(ps);
      for (std::size_t i = 0; i < spec.impls.size(); ++i) {
        ++run_no;
        // Built with append: GCC 12 warns (-Wrestrict, a false positive) on a long + chain.
        std::string label = "[";
        label.append(std::to_string(run_no)).append("/").append(std::to_string(total_runs));
        label.append("] ").append(spec.name).append(", ").append(info(spec.impls[i]).name);
        label.append(" rep ").append(std::to_string(rep + 1)).append("/");
        label.append(std::to_string(spec.reps));
        runs[i].push_back(cli.fork ? run_in_child(spec.config, plan, spec.impls[i], rep, label)
                                   : run_once(spec.config, plan, spec.impls[i], rep, label));
      }
    }
    CaseResult cr;
    cr.spec = spec;
    for (std::size_t i = 0; i < spec.impls.size(); ++i) {
      cr.impls.push_back(summarise(info(spec.impls[i]), std::move(runs[i])));
      all_ok = all_ok && cr.impls.back().ok;
    }
    print_case(std::cout, cr);
    std::cout.flush();
    results.push_back(std::move(cr));
  }

  std::vector<std::string> targets;
  if (scenario->targets != nullptr) targets = scenario->targets(results, cpus);
  if (!targets.empty()) {
    std::cout << "\ntargets (reported, not enforced):\n";
    for (const std::string& t : targets) std::cout << "  " << t << "\n";
  }
  const double wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();

  if (json_out.is_open()) {
    std::string command;
    for (int i = 0; i < argc; ++i) command += (i == 0 ? "" : " ") + std::string(argv[i]);
    nlohmann::json doc = {{"tool", "pushstage-bench"},
                          {"command", command},
                          {"scenario", std::string(scenario->name)},
                          {"machine", machine_to_json(machine)},
                          {"wall_s", wall_s},
                          {"checks_passed", all_ok},
                          {"targets", targets},
                          {"cases", nlohmann::json::array()}};
    for (const CaseResult& c : results) doc["cases"].push_back(case_to_json(c));
    json_out << doc.dump(1) << "\n";
    std::cout << "wrote " << cli.json_path << "\n";
  }
  if (svg_out.is_open()) {
    svg_out << render_svg(results, "pushstage-bench --scenario " + std::string(scenario->name) +
                                       " (" + machine.cpu_model + ", commit " + machine.commit +
                                       ")");
    std::cout << "wrote " << cli.svg_path << "\n";
  }
  std::printf("wall time: %.1f s\n", wall_s);
  if (!all_ok) {
    std::cout << "FAILED: an implementation lost or duplicated events or broke the bound (above)\n";
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace pushstage::bench

int main(int argc, char** argv) { return pushstage::bench::run_main(argc, argv); }
