// main.cpp: pushstage-bench, the command line. Parses and validates every flag before anything
// runs (command_line.cpp; bad input: one line on stderr, exit status 2), then runs each case's
// repetitions with the implementations interleaved (A B C A B C ...), each run in a forked child,
// and prints a table per case, the scenario's targets, and optionally JSON and SVG files.
// Exit status: 0 all checks passed; 1 an implementation lost or duplicated an event or broke the
// Graham bound (or a run died); 2 bad command line.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backends/backends.hpp"
#include "bench_core.hpp"
#include "command_line.hpp"
#include "forked_run.hpp"
#ifdef PUSHSTAGE_BENCH_PROMETHEUS
#include "pushstage/prometheus/exporter.hpp"
#endif
#include "harness/work.hpp"
#include "pushstage/cpus.hpp"
#include "report/machine.hpp"
#include "report/report.hpp"
#include "report/summary.hpp"
#include "run.hpp"
#include "scenarios.hpp"
#ifdef PUSHSTAGE_BENCH_NATS
#include "broker/broker.hpp"
#endif

namespace pushstage::bench {
namespace {

using Clock = std::chrono::steady_clock;

// The command line as typed, for the JSON reports; a URL's password or token as "***".
std::string command_text(int argc, char** argv) {
  std::string command;
  for (int i = 0; i < argc; ++i) {
    // append, not " " + std::string: GCC 12 -O3 warns (-Wrestrict, a false positive) on that.
    if (i != 0) command.append(" ");
    command.append(redacted_argument(argv[i]));
  }
  return command;
}

[[noreturn]] void usage_exit(const std::string& message) {
  std::fprintf(stderr, "pushstage-bench: %s\n", message.c_str());
  std::exit(2);
}

// The file of --json or --svg, opened before anything runs: a path that cannot be written is bad
// input. Not open when the flag was not given.
std::ofstream open_output(const std::string& flag, const std::string& path) {
  std::ofstream out;
  if (!path.empty()) {
    out.open(path);
    if (!out) usage_exit(flag + ": expects a writable file path; got '" + path + "'");
  }
  return out;
}

void write_output(std::ofstream& out, const std::string& path, const std::string& text) {
  out << text;
  std::cout << "wrote " << path << "\n";
}

// What every --json document holds besides its cases: the tool, the command line, the machine,
// the wall time, whether every check passed.
nlohmann::json json_document(int argc, char** argv, const MachineInfo& machine, double wall_s,
                             bool checks_passed) {
  return {{"tool", "pushstage-bench"},
          {"command", command_text(argc, argv)},
          {"machine", machine_to_json(machine)},
          {"wall_s", wall_s},
          {"checks_passed", checks_passed}};
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

#ifdef PUSHSTAGE_BENCH_NATS
// pushstage-bench --broker: runs the scale-out cases parse_command_line validated.
int run_broker_main(const BrokerCommand& b, const std::string& json_path, int argc, char** argv) {
  const auto wall0 = Clock::now();
  BrokerSpec spec;
  static_cast<BrokerCommand&>(spec) = b;
  std::ofstream json_out = open_output("--json", json_path);
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
  const double wall_s = seconds_since(wall0);
  if (json_out.is_open()) {
    nlohmann::json doc = json_document(argc, argv, machine, wall_s, report.ok);
    doc.update({{"mode", "broker"},
                {"broker", redacted_argument(spec.url)},
                {"events", spec.events},
                {"consumers_per_process", spec.consumers},
                {"max_demand", spec.max_demand},
                {"rate", spec.rate},
                {"work", spec.work.text},
                {"work_mode", work_mode_name(spec.work_mode)},
                {"cases", report.json}});
    write_output(json_out, json_path, doc.dump(1) + "\n");
  }
  std::printf("wall time: %.1f s\n", wall_s);
  if (!report.ok) {
    std::cout << "FAILED: an event was lost or a worker failed (above)\n";
    return 1;
  }
  return 0;
}
#endif

// Every repetition of every implementation of one case, interleaved (A B C A B C ...), each in a
// forked child unless --no-fork; run_no counts runs over the whole scenario for the progress line.
CaseResult run_case(const CaseSpec& spec, bool fork, std::size_t total_runs, std::size_t& run_no) {
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
      runs[i].push_back(fork ? run_in_child(spec.config, plan, spec.impls[i], rep, label)
                             : run_once(spec.config, plan, spec.impls[i], rep, label));
    }
  }
  CaseResult cr;
  cr.spec = spec;
  for (std::size_t i = 0; i < spec.impls.size(); ++i) {
    cr.impls.push_back(summarise(info(spec.impls[i]), std::move(runs[i])));
  }
  return cr;
}

int run_main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "--broker-worker") {
#ifdef PUSHSTAGE_BENCH_NATS
    return broker_worker_main(std::vector<std::string>(argv + 2, argv + argc));
#else
    usage_exit("--broker-worker: this pushstage-bench was built without pushstage::nats");
#endif
  }
  const auto wall0 = Clock::now();
  CommandLine cli;
  try {
    cli = parse_command_line(argc, argv);
  } catch (const UsageError& e) {
    usage_exit(e.what());
  } catch (const std::invalid_argument& e) {
    usage_exit(e.what());
  }
  if (!cli.help.empty()) {
    std::cout << cli.help;
    return 0;
  }
#ifdef PUSHSTAGE_BENCH_NATS
  if (cli.broker) return run_broker_main(*cli.broker, cli.json_path, argc, argv);
#endif
  const std::size_t cpus = allowed_cpus().size();
  const Scenario* scenario = cli.scenario;
  const std::vector<CaseSpec>& cases = cli.cases;
#ifdef PUSHSTAGE_BENCH_PROMETHEUS
  // Up for the whole scenario: every run's dispatchers and pools join the Topology it serves.
  std::optional<pushstage::prometheus::Exporter> dashboard;
  if (cli.serve) {
    pushstage::prometheus::ExporterOptions eo;
    eo.bind = "127.0.0.1:" + std::to_string(*cli.serve);
    dashboard.emplace(eo);
    served_observer() = dashboard->observer();
    std::cout << "pushstage-bench: dashboard on http://127.0.0.1:" << dashboard->port() << "/\n";
  }
#endif
  std::ofstream json_out = open_output("--json", cli.json_path);
  std::ofstream svg_out = open_output("--svg", cli.svg_path);

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
    CaseResult cr = run_case(spec, cli.fork, total_runs, run_no);
    for (const ImplSummary& s : cr.impls) all_ok = all_ok && s.ok;
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
  const double wall_s = seconds_since(wall0);

  if (json_out.is_open()) {
    nlohmann::json doc = json_document(argc, argv, machine, wall_s, all_ok);
    doc.update({{"scenario", std::string(scenario->name)},
                {"targets", targets},
                {"cases", nlohmann::json::array()}});
    for (const CaseResult& c : results) doc["cases"].push_back(case_to_json(c));
    write_output(json_out, cli.json_path, doc.dump(1) + "\n");
  }
  if (svg_out.is_open()) {
    write_output(
        svg_out, cli.svg_path,
        render_svg(results, "pushstage-bench --scenario " + std::string(scenario->name) + " (" +
                                machine.cpu_model + ", commit " + machine.commit + ")"));
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
