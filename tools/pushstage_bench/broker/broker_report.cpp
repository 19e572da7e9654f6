// broker_report.cpp: see broker_report.hpp.
#include "broker/broker_report.hpp"

#include <cstdio>
#include <string>

#include "command_line.hpp"
#include "harness/work.hpp"
#include "report/format.hpp"
#include "report/results_json.hpp"

namespace pushstage::bench {
namespace {

// One process's events over the case's span.
double throughput_of(const CaseOutcome& c, const ProcessResult& r) {
  return c.span_ns > 0 ? static_cast<double>(r.handled) * 1e9 / static_cast<double>(c.span_ns) : 0;
}

}  // namespace

void print_broker_header(std::ostream& out, const BrokerSpec& spec) {
  out << "broker " << redacted_argument(spec.url)
      << ": stream in memory, one durable pull consumer shared by every "
      << "process; " << spec.events << " events per case, "
      << (spec.rate > 0 ? "published at " + format_rate(spec.rate)
                        : std::string("all published at once"))
      << "; work " << spec.work.text << " (" << work_mode_name(spec.work_mode)
      << ")\nlatency = handler start - publish (through the broker); throughput = events / (first "
      << "publish to last handler end); max-if = most messages in flight in that process\n";
}

void print_outcome(std::ostream& out, const BrokerSpec& spec, const CaseOutcome& c) {
  out << "\n"
      << c.processes << " process" << (c.processes == 1 ? "" : "es") << " x " << spec.consumers
      << " consumer" << (spec.consumers == 1 ? "" : "s") << " (max_demand " << spec.max_demand
      << ")" << (spec.reps > 1 ? ", rep " + std::to_string(c.rep + 1) : "")
      << (c.ok ? "" : "  FAILED: " + c.failure) << "\n";
  char line[256];
  std::snprintf(line, sizeof line, "  %-8s %9s %7s %12s %9s %9s %9s %9s %8s %6s %9s\n", "process",
                "handled", "share", "throughput", "p50", "p90", "p99", "max", "fetches", "max-if",
                "cpu/event");
  out << line;
  std::uint64_t total = 0;
  for (const ProcessResult& r : c.per_process) total += r.handled;
  for (std::size_t i = 0; i < c.per_process.size(); ++i) {
    const ProcessResult& r = c.per_process[i];
    const double share =
        total == 0 ? 0 : 100.0 * static_cast<double>(r.handled) / static_cast<double>(total);
    std::snprintf(
        line, sizeof line, "  %-8zu %9llu %6.1f%% %12s %9s %9s %9s %9s %8llu %6llu %9s\n", i + 1,
        static_cast<unsigned long long>(r.handled), share, format_rate(throughput_of(c, r)).c_str(),
        format_percentile(r.latency, 50).c_str(), format_percentile(r.latency, 90).c_str(),
        format_percentile(r.latency, 99).c_str(), format_percentile(r.latency, 100).c_str(),
        static_cast<unsigned long long>(r.fetches),
        static_cast<unsigned long long>(r.max_in_flight),
        r.handled == 0
            ? "-"
            : format_ns(static_cast<double>(r.cpu_ns) / static_cast<double>(r.handled)).c_str());
    out << line;
  }
  std::snprintf(line, sizeof line, "  %-8s %9llu %6.1f%% %12s %9s %9s %9s %9s\n", "total",
                static_cast<unsigned long long>(total), 100.0, format_rate(c.throughput).c_str(),
                format_percentile(c.latency, 50).c_str(), format_percentile(c.latency, 90).c_str(),
                format_percentile(c.latency, 99).c_str(),
                format_percentile(c.latency, 100).c_str());
  out << line;
  out << "  fairness over processes: Jain " << fixed(c.jain, 3) << ", max/min "
      << fixed(c.max_min, 2) << "; lost " << c.lost << ", duplicates " << c.duplicates << "; span "
      << format_ns(static_cast<double>(c.span_ns)) << ", published at "
      << format_rate(c.publish_rate) << "\n";
}

nlohmann::json outcome_json(const CaseOutcome& c) {
  nlohmann::json per = nlohmann::json::array();
  for (const ProcessResult& r : c.per_process) {
    per.push_back({{"handled", r.handled},
                   {"latency_ns", histogram_to_json(r.latency)},
                   {"p50_ns", r.latency.value_at_percentile(50)},
                   {"p99_ns", r.latency.value_at_percentile(99)},
                   {"throughput", throughput_of(c, r)},
                   {"fetches", r.fetches},
                   {"redelivered", r.redelivered},
                   {"max_in_flight", r.max_in_flight},
                   {"cpu_ns", r.cpu_ns},
                   {"consumer_events", r.consumer_events},
                   {"failure", r.failure}});
  }
  return {{"processes", c.processes},
          {"rep", c.rep},
          {"ok", c.ok},
          {"failure", c.failure},
          {"span_ns", c.span_ns},
          {"throughput", c.throughput},
          {"publish_rate", c.publish_rate},
          {"latency_ns", histogram_to_json(c.latency)},
          {"p50_ns", c.latency.value_at_percentile(50)},
          {"p90_ns", c.latency.value_at_percentile(90)},
          {"p99_ns", c.latency.value_at_percentile(99)},
          {"jain_events_per_process", c.jain},
          {"max_min_events_per_process", c.max_min},
          {"lost", c.lost},
          {"duplicates", c.duplicates},
          {"per_process", per}};
}

void print_scale_out(std::ostream& out, const std::vector<CaseOutcome>& outcomes) {
  if (outcomes.size() <= 1) return;
  out << "\nscale-out (total throughput relative to the first case):\n";
  for (const CaseOutcome& c : outcomes) {
    out << "  " << c.processes << " process" << (c.processes == 1 ? ": " : "es: ")
        << format_rate(c.throughput) << "  x"
        << fixed(outcomes.front().throughput > 0 ? c.throughput / outcomes.front().throughput : 0,
                 2)
        << "  p50 " << format_percentile(c.latency, 50) << "  p99 "
        << format_percentile(c.latency, 99) << "  Jain " << fixed(c.jain, 3) << "\n";
  }
}

}  // namespace pushstage::bench
