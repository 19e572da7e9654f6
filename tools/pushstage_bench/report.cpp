// report.cpp: see report.hpp.
#include "report.hpp"

#include <sys/utsname.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iomanip>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "bench_core.hpp"
#include "pushstage/cpus.hpp"
#include "results_json.hpp"

namespace pushstage::bench {

extern const char* const kGitCommit;  // generated at build time (tools/CMakeLists.txt)
namespace {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 == 1 ? v[m] : (v[m - 1] + v[m]) / 2;
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string ratio(double subject, double peer) {
  if (!(subject > 0) || !(peer > 0)) return "-";
  return fixed(subject / peer, 2) + "x";
}

}  // namespace

std::string format_ns(double ns) {
  if (ns < 1e3) return fixed(ns, 0) + "ns";
  if (ns < 1e6) return fixed(ns / 1e3, ns < 1e4 ? 2 : 1) + "us";
  if (ns < 1e9) return fixed(ns / 1e6, ns < 1e7 ? 2 : 1) + "ms";
  return fixed(ns / 1e9, 2) + "s";
}

ImplSummary summarise(const ImplInfo& impl, std::vector<RunResult> runs) {
  ImplSummary s;
  s.impl = std::string(impl.name);
  s.column = std::string(impl.column);
  std::vector<double> throughput;
  std::vector<double> jain_busy;
  std::vector<double> jain_events;
  std::vector<double> idle_pct;
  std::int64_t cpu = 0;
  std::int64_t cpu_consumers = 0;
  bool first = true;
  for (const RunResult& r : runs) {
    if (!r.ok) {
      s.ok = false;
      s.failures.push_back("rep " + std::to_string(r.rep + 1) + ": " + r.failure);
    }
    if (r.consumer_events.empty()) continue;  // the child died: nothing measured
    s.events += r.events;
    throughput.push_back(r.throughput);
    s.dispatch.merge(r.dispatch);
    s.response.merge(r.response);
    s.excess.merge(r.excess);
    s.excess_negative += r.excess_negative;
    std::vector<double> busy(r.consumer_busy_ns.begin(), r.consumer_busy_ns.end());
    std::vector<double> counts(r.consumer_events.begin(), r.consumer_events.end());
    jain_busy.push_back(jain_index(busy));
    jain_events.push_back(jain_index(counts));
    const auto [lo, hi] = std::minmax_element(r.consumer_events.begin(), r.consumer_events.end());
    s.min_events = first ? *lo : std::min(s.min_events, *lo);
    s.max_events = first ? *hi : std::max(s.max_events, *hi);
    std::sort(busy.begin(), busy.end(), std::greater<>());
    s.busy_by_rank_s.resize(std::max(s.busy_by_rank_s.size(), busy.size()), 0.0);
    for (std::size_t i = 0; i < busy.size(); ++i) s.busy_by_rank_s[i] += busy[i] / 1e9;
    if (s.producer_p99_ns.size() < r.dispatch_by_producer.size()) {
      s.producer_p99_ns.resize(r.dispatch_by_producer.size());
    }
    s.fifo_inversions += r.fifo_inversions;
    if (r.longest_wait_ns > s.longest_wait_ns) {
      s.longest_wait_ns = r.longest_wait_ns;
      s.longest_wait_producer = r.longest_wait_producer;
    }
    if (r.graham_bound_ns > 0) {
      s.makespan_ratio =
          std::max(s.makespan_ratio, static_cast<double>(r.makespan_ns) / r.graham_bound_ns);
    }
    cpu += r.cpu_ns;
    cpu_consumers += r.cpu_consumers_ns;
    if (r.idle_window_ns > 0) {
      idle_pct.push_back(100.0 * static_cast<double>(r.cpu_ns) /
                         static_cast<double>(r.idle_window_ns) /
                         static_cast<double>(r.consumer_events.size()));
    }
    s.peak_rss_kb = std::max(s.peak_rss_kb, r.peak_rss_kb);
    s.rss_growth_kb = std::max(s.rss_growth_kb, r.rss_growth_kb);
    first = false;
  }
  // Per-producer p99 from histograms merged over repetitions (never averaged percentiles).
  std::vector<pushstage::Histogram> by_producer(s.producer_p99_ns.size());
  for (const RunResult& r : runs) {
    for (std::size_t p = 0; p < r.dispatch_by_producer.size(); ++p) {
      by_producer[p].merge(r.dispatch_by_producer[p]);
    }
  }
  std::vector<double> p99;
  for (std::size_t p = 0; p < by_producer.size(); ++p) {
    s.producer_p99_ns[p] = by_producer[p].value_at_percentile(99);
    if (by_producer[p].count() != 0) p99.push_back(static_cast<double>(s.producer_p99_ns[p]));
  }
  s.producer_p99_spread = spread(p99);
  s.throughput = median(throughput);
  s.jain_busy = median(jain_busy);
  s.jain_events = median(jain_events);
  s.idle_cpu_pct_per_consumer = median(idle_pct);
  if (s.events != 0) {
    s.cpu_us_per_event = static_cast<double>(cpu) / 1e3 / static_cast<double>(s.events);
    s.cpu_consumers_us_per_event =
        static_cast<double>(cpu_consumers) / 1e3 / static_cast<double>(s.events);
  }
  s.runs = std::move(runs);
  return s;
}

MachineInfo machine_info() {
  MachineInfo m;
  m.cpus = allowed_cpus().size();
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) m.cpu_model = line.substr(colon + 2);
      break;
    }
  }
  utsname u{};
  if (uname(&u) == 0) m.kernel = std::string(u.sysname) + " " + u.release + " " + u.machine;
  m.compiler = __VERSION__;
#if defined(__clang__)
  m.compiler = "clang " + m.compiler;
#elif defined(__GNUC__)
  m.compiler = "gcc " + m.compiler;
#endif
  m.commit = kGitCommit;
  return m;
}

void print_machine(std::ostream& out, const MachineInfo& m) {
  out << "machine: " << m.cpus << " CPUs, " << (m.cpu_model.empty() ? "unknown CPU" : m.cpu_model)
      << "; " << m.kernel << "; " << m.compiler << "; commit " << m.commit << "\n";
}

void print_case(std::ostream& out, const CaseResult& c) {
  const CaseSpec& spec = c.spec;
  const bool idle = spec.config.kind == RunKind::kIdle;
  const bool batch = spec.config.kind == RunKind::kBatch;
  const bool many_producers = spec.config.plan.producers > 1;
  struct Row {
    std::string label;
    std::vector<std::string> cells;
  };
  std::vector<Row> rows;
  auto add = [&](std::string label, const std::function<std::string(const ImplSummary&)>& f) {
    Row r{std::move(label), {}};
    for (const ImplSummary& s : c.impls) r.cells.push_back(f(s));
    rows.push_back(std::move(r));
  };
  auto add_ratio = [&](const std::function<double(const ImplSummary&)>& f) {
    Row r{"  pushstage/this", {}};
    for (std::size_t i = 0; i < c.impls.size(); ++i) {
      r.cells.push_back(i == 0 ? "" : ratio(f(c.impls[0]), f(c.impls[i])));
    }
    rows.push_back(std::move(r));
  };
  auto pct = [](const pushstage::Histogram& h, double p) {
    return h.count() == 0 ? std::string("-")
                          : format_ns(static_cast<double>(h.value_at_percentile(p)));
  };
  auto pct_value = [](const pushstage::Histogram& h, double p) {
    return static_cast<double>(h.value_at_percentile(p));
  };

  if (idle) {
    add("idle CPU/consumer, % of a core",
        [](const ImplSummary& s) { return fixed(s.idle_cpu_pct_per_consumer, 3) + "%"; });
  } else {
    add("throughput (events/s)", [](const ImplSummary& s) { return fixed(s.throughput, 0); });
    add_ratio([](const ImplSummary& s) { return s.throughput; });
    for (const double p : {50.0, 90.0, 99.0, 99.9}) {
      add("dispatch p" + fixed(p, p < 99.5 ? 0 : 1),
          [&](const ImplSummary& s) { return pct(s.dispatch, p); });
      if (p == 50.0 || p == 99.0) {
        add_ratio([&](const ImplSummary& s) { return pct_value(s.dispatch, p); });
      }
    }
    add("dispatch max", [&](const ImplSummary& s) { return pct(s.dispatch, 100); });
    if (spec.config.open_loop()) {
      for (const double p : {50.0, 99.0, 99.9, 100.0}) {
        add(p == 100.0 ? std::string("response max") : "response p" + fixed(p, p < 99.5 ? 0 : 1),
            [&](const ImplSummary& s) { return pct(s.response, p); });
      }
    }
    add("excess over ideal p50", [&](const ImplSummary& s) { return pct(s.excess, 50); });
    add_ratio([&](const ImplSummary& s) { return pct_value(s.excess, 50); });
    add("excess over ideal p99", [&](const ImplSummary& s) { return pct(s.excess, 99); });
    add_ratio([&](const ImplSummary& s) { return pct_value(s.excess, 99); });
    add("excess over ideal max", [&](const ImplSummary& s) { return pct(s.excess, 100); });
    add("Jain index, busy time", [](const ImplSummary& s) { return fixed(s.jain_busy, 3); });
    add("Jain index, events", [](const ImplSummary& s) { return fixed(s.jain_events, 3); });
    add("events/consumer min-max", [](const ImplSummary& s) {
      return std::to_string(s.min_events) + "-" + std::to_string(s.max_events);
    });
    if (many_producers) {
      add("producer p99 spread",
          [](const ImplSummary& s) { return fixed(s.producer_p99_spread, 2); });
      add("FIFO inversions", [](const ImplSummary& s) {
        return s.events == 0 ? std::string("-")
                             : fixed(100.0 * static_cast<double>(s.fifo_inversions) /
                                         static_cast<double>(s.events),
                                     2) +
                                   "%";
      });
    }
    add("longest wait",
        [](const ImplSummary& s) { return format_ns(static_cast<double>(s.longest_wait_ns)); });
    if (batch) {
      add("makespan / Graham bound",
          [](const ImplSummary& s) { return fixed(s.makespan_ratio, 3); });
    }
    add("CPU per event", [](const ImplSummary& s) { return format_ns(s.cpu_us_per_event * 1e3); });
    add_ratio([](const ImplSummary& s) { return s.cpu_us_per_event; });
    add("  consumer threads only",
        [](const ImplSummary& s) { return format_ns(s.cpu_consumers_us_per_event * 1e3); });
  }
  add("peak RSS (growth) MiB", [](const ImplSummary& s) {
    return fixed(static_cast<double>(s.peak_rss_kb) / 1024, 1) + " (" +
           fixed(static_cast<double>(s.rss_growth_kb) / 1024, 1) + ")";
  });
  add("exactly once" + std::string(batch ? ", bound" : ""),
      [](const ImplSummary& s) { return s.ok ? std::string("ok") : std::string("FAILED"); });

  std::size_t label_w = 24;
  for (const Row& r : rows) label_w = std::max(label_w, r.label.size());
  std::vector<std::size_t> col_w(c.impls.size(), 8);
  for (std::size_t i = 0; i < c.impls.size(); ++i) {
    col_w[i] = std::max(col_w[i], c.impls[i].column.size());
    for (const Row& r : rows) col_w[i] = std::max(col_w[i], r.cells[i].size());
  }
  out << "\n== " << spec.name << ": " << spec.description << "\n";
  out << std::left << std::setw(static_cast<int>(label_w)) << "metric";
  for (std::size_t i = 0; i < c.impls.size(); ++i) {
    out << "  " << std::right << std::setw(static_cast<int>(col_w[i])) << c.impls[i].column;
  }
  out << "\n";
  for (const Row& r : rows) {
    out << std::left << std::setw(static_cast<int>(label_w)) << r.label;
    for (std::size_t i = 0; i < r.cells.size(); ++i) {
      out << "  " << std::right << std::setw(static_cast<int>(col_w[i])) << r.cells[i];
    }
    out << "\n";
  }
  out << std::left;
  if (!idle) {
    out << "(pushstage/this: pushstage's value over this column's; for latency and CPU below 1 "
           "favours pushstage, for throughput above 1)\n";
  }
  for (const ImplSummary& s : c.impls) {
    for (const std::string& f : s.failures) out << "FAILED " << s.impl << " " << f << "\n";
  }
}

nlohmann::json machine_to_json(const MachineInfo& m) {
  return {{"cpus", m.cpus},     {"cpu_model", m.cpu_model},
          {"kernel", m.kernel}, {"compiler", m.compiler},
          {"commit", m.commit}, {"spin_iterations_per_ns", m.spin_iters_per_ns}};
}

nlohmann::json case_to_json(const CaseResult& c) {
  const RunConfig& cfg = c.spec.config;
  const char* kind = cfg.kind == RunKind::kStream  ? "stream"
                     : cfg.kind == RunKind::kBatch ? "batch"
                                                   : "idle";
  nlohmann::json impl_names = nlohmann::json::array();
  for (const Impl i : c.spec.impls) impl_names.push_back(std::string(info(i).name));
  nlohmann::json config = {
      {"kind", kind},
      {"events", cfg.plan.events},
      {"producers", cfg.plan.producers},
      {"producer_weights", cfg.plan.weights},
      {"rate_per_s", cfg.plan.rate},
      {"closed_loop", cfg.plan.rate <= 0},
      {"arrivals", cfg.plan.arrivals == Arrivals::kPoisson ? "poisson" : "fixed"},
      {"work", cfg.plan.work.text},
      {"work_mean_ns", cfg.plan.work.mean_ns()},
      {"work_mode", cfg.work_mode == WorkMode::kSpin ? "spin" : "sleep"},
      {"consumers", cfg.consumers},
      {"max_demand", cfg.max_demand},
      {"pin", cfg.pin},
      {"seed", cfg.plan.seed},
      {"reps", c.spec.reps},
      {"impls", impl_names},
      {"idle_window_ns", cfg.idle_window_ns},
      {"graham_tolerance",
       {{"relative", cfg.graham_relative}, {"absolute_ns", cfg.graham_absolute_ns}}},
      {"excess_arrivals", "enqueue stamps (batch: consumer start)"}};
  nlohmann::json impls = nlohmann::json::array();
  const ImplSummary* subject = c.impls.empty() ? nullptr : &c.impls.front();
  for (const ImplSummary& s : c.impls) {
    auto pcts = [](const pushstage::Histogram& h) {
      return nlohmann::json{{"count", h.count()},
                            {"p50_ns", h.value_at_percentile(50)},
                            {"p90_ns", h.value_at_percentile(90)},
                            {"p99_ns", h.value_at_percentile(99)},
                            {"p99_9_ns", h.value_at_percentile(99.9)},
                            {"max_ns", h.max()},
                            {"mean_ns", h.mean()}};
    };
    nlohmann::json summary = {{"events", s.events},
                              {"throughput_per_s", s.throughput},
                              {"dispatch", pcts(s.dispatch)},
                              {"response", pcts(s.response)},
                              {"excess_over_ideal", pcts(s.excess)},
                              {"excess_negative_events", s.excess_negative},
                              {"jain_busy", s.jain_busy},
                              {"jain_events", s.jain_events},
                              {"consumer_events_min", s.min_events},
                              {"consumer_events_max", s.max_events},
                              {"busy_s_by_rank", s.busy_by_rank_s},
                              {"producer_p99_ns", s.producer_p99_ns},
                              {"producer_p99_spread", s.producer_p99_spread},
                              {"fifo_inversions", s.fifo_inversions},
                              {"longest_wait_ns", s.longest_wait_ns},
                              {"longest_wait_producer", s.longest_wait_producer},
                              {"makespan_over_graham_bound", s.makespan_ratio},
                              {"cpu_us_per_event", s.cpu_us_per_event},
                              {"cpu_consumers_us_per_event", s.cpu_consumers_us_per_event},
                              {"idle_cpu_pct_per_consumer", s.idle_cpu_pct_per_consumer},
                              {"peak_rss_kb", s.peak_rss_kb},
                              {"rss_growth_kb", s.rss_growth_kb}};
    nlohmann::json ratios = nlohmann::json::object();
    if (subject != nullptr && subject != &s) {
      auto r = [](double a, double b) {
        return b > 0 && a > 0 ? nlohmann::json(a / b) : nlohmann::json();
      };
      ratios = {{"throughput", r(subject->throughput, s.throughput)},
                {"dispatch_p50", r(static_cast<double>(subject->dispatch.value_at_percentile(50)),
                                   static_cast<double>(s.dispatch.value_at_percentile(50)))},
                {"dispatch_p99", r(static_cast<double>(subject->dispatch.value_at_percentile(99)),
                                   static_cast<double>(s.dispatch.value_at_percentile(99)))},
                {"excess_p50", r(static_cast<double>(subject->excess.value_at_percentile(50)),
                                 static_cast<double>(s.excess.value_at_percentile(50)))},
                {"excess_p99", r(static_cast<double>(subject->excess.value_at_percentile(99)),
                                 static_cast<double>(s.excess.value_at_percentile(99)))},
                {"cpu_per_event", r(subject->cpu_us_per_event, s.cpu_us_per_event)}};
    }
    nlohmann::json runs = nlohmann::json::array();
    for (const RunResult& r : s.runs) runs.push_back(to_json(r));
    impls.push_back({{"impl", s.impl},
                     {"ok", s.ok},
                     {"failures", s.failures},
                     {"summary", std::move(summary)},
                     {"pushstage_over_this", std::move(ratios)},
                     {"runs", std::move(runs)}});
  }
  return {{"name", c.spec.name},
          {"description", c.spec.description},
          {"config", std::move(config)},
          {"impls", std::move(impls)}};
}

// ---- SVG ----

namespace {

constexpr const char* kColours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                    "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};

std::string esc(const std::string& s) {
  std::string out;
  for (const char ch : s) {
    if (ch == '<') {
      out += "&lt;";
    } else if (ch == '>') {
      out += "&gt;";
    } else if (ch == '&') {
      out += "&amp;";
    } else {
      out += ch;
    }
  }
  return out;
}

struct Box {
  double x, y, w, h;
};

void text(std::ostringstream& o, double x, double y, const std::string& s,
          const char* anchor = "start", int size = 11) {
  o << "<text x='" << fixed(x, 1) << "' y='" << fixed(y, 1) << "' font-size='" << size
    << "' text-anchor='" << anchor << "'>" << esc(s) << "</text>\n";
}

// A CDF per implementation on a log-x axis; values below `floor_ns` are drawn at it.
void cdf_panel(std::ostringstream& o, const Box& b, const std::string& title,
               const std::vector<std::pair<std::string, const pushstage::Histogram*>>& series) {
  constexpr double kFloor = 100;  // ns: the left edge of every latency axis
  double hi = kFloor * 10;
  for (const auto& [name, h] : series) hi = std::max(hi, static_cast<double>(h->max()));
  const double lo_dec = std::log10(kFloor);
  const double hi_dec = std::ceil(std::log10(hi));
  auto px = [&](double v) {
    return b.x + (std::log10(std::max(v, kFloor)) - lo_dec) / (hi_dec - lo_dec) * b.w;
  };
  auto py = [&](double f) { return b.y + b.h - f * b.h; };
  o << "<rect x='" << b.x << "' y='" << b.y << "' width='" << b.w << "' height='" << b.h
    << "' fill='none' stroke='#999'/>\n";
  text(o, b.x + b.w / 2, b.y - 8, title, "middle", 12);
  for (double d = lo_dec; d <= hi_dec + 1e-9; d += 1) {
    const double x = px(std::pow(10, d));
    o << "<line x1='" << fixed(x, 1) << "' y1='" << b.y << "' x2='" << fixed(x, 1) << "' y2='"
      << b.y + b.h << "' stroke='#eee'/>\n";
    text(o, x, b.y + b.h + 14, format_ns(std::pow(10, d)), "middle", 10);
  }
  for (const double f : {0.0, 0.25, 0.5, 0.75, 0.9, 1.0}) {
    const double y = py(f);
    o << "<line x1='" << b.x << "' y1='" << fixed(y, 1) << "' x2='" << b.x + b.w << "' y2='"
      << fixed(y, 1) << "' stroke='#eee'/>\n";
    text(o, b.x - 4, y + 4, fixed(f * 100, 0) + "%", "end", 10);
  }
  for (std::size_t i = 0; i < series.size(); ++i) {
    const pushstage::Histogram& h = *series[i].second;
    if (h.count() == 0) continue;
    std::ostringstream pts;
    double cum = 0;
    pts << fixed(px(static_cast<double>(h.min())), 1) << "," << fixed(py(0), 1) << " ";
    for (const auto& [index, count] : h.nonzero_buckets()) {
      const double v = std::min(static_cast<double>(pushstage::Histogram::bucket_highest(index)),
                                static_cast<double>(h.max()));
      cum += static_cast<double>(count);
      pts << fixed(px(v), 1) << "," << fixed(py(cum / static_cast<double>(h.count())), 1) << " ";
    }
    o << "<polyline fill='none' stroke-width='1.5' stroke='" << kColours[i % 8] << "' points='"
      << pts.str() << "'/>\n";
  }
}

// Groups of bars, one group per implementation.
void bars_panel(std::ostringstream& o, const Box& b, const std::string& title,
                const std::string& unit, const std::vector<std::string>& names,
                const std::vector<std::vector<double>>& values) {
  double top = 0;
  for (const auto& g : values) {
    for (const double v : g) top = std::max(top, v);
  }
  if (top <= 0) top = 1;
  o << "<rect x='" << b.x << "' y='" << b.y << "' width='" << b.w << "' height='" << b.h
    << "' fill='none' stroke='#999'/>\n";
  text(o, b.x + b.w / 2, b.y - 8, title, "middle", 12);
  text(o, b.x - 4, b.y + 10, fixed(top, top < 10 ? 2 : 0) + unit, "end", 10);
  text(o, b.x - 4, b.y + b.h, "0", "end", 10);
  const double group_w = b.w / static_cast<double>(std::max<std::size_t>(names.size(), 1));
  for (std::size_t g = 0; g < values.size(); ++g) {
    const auto& vs = values[g];
    const double bar_w = (group_w * 0.8) / static_cast<double>(std::max<std::size_t>(vs.size(), 1));
    for (std::size_t k = 0; k < vs.size(); ++k) {
      const double h = vs[k] / top * b.h;
      o << "<rect x='"
        << fixed(b.x + group_w * static_cast<double>(g) + group_w * 0.1 +
                     bar_w * static_cast<double>(k),
                 1)
        << "' y='" << fixed(b.y + b.h - h, 1) << "' width='" << fixed(std::max(bar_w - 1, 1.0), 1)
        << "' height='" << fixed(h, 1) << "' fill='" << kColours[g % 8] << "'/>\n";
    }
    text(o, b.x + group_w * (static_cast<double>(g) + 0.5), b.y + b.h + 14, names[g], "middle", 9);
  }
}

}  // namespace

std::string render_svg(const std::vector<CaseResult>& cases, const std::string& title) {
  constexpr double kPanelW = 380;
  constexpr double kPanelH = 230;
  constexpr double kRowH = 330;
  constexpr double kLeft = 60;
  constexpr double kGap = 70;
  const double width = kLeft + 3 * kPanelW + 2 * kGap + 30;
  const double height = 60 + kRowH * static_cast<double>(cases.size());
  std::ostringstream o;
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << width << "' height='" << height
    << "' font-family='sans-serif'>\n<rect width='100%' height='100%' fill='white'/>\n";
  text(o, 20, 24, title, "start", 15);
  for (std::size_t ci = 0; ci < cases.size(); ++ci) {
    const CaseResult& c = cases[ci];
    const double top = 50 + kRowH * static_cast<double>(ci);
    text(o, 20, top + 6, c.spec.name + ": " + c.spec.description, "start", 12);
    // Legend.
    double lx = 20;
    for (std::size_t i = 0; i < c.impls.size(); ++i) {
      o << "<rect x='" << lx << "' y='" << top + 14 << "' width='10' height='10' fill='"
        << kColours[i % 8] << "'/>\n";
      text(o, lx + 14, top + 23, c.impls[i].impl, "start", 10);
      lx += 30 + 6.0 * static_cast<double>(c.impls[i].impl.size());
    }
    const double py = top + 60;
    std::vector<std::string> names;
    for (const ImplSummary& s : c.impls) names.push_back(s.column);
    if (c.spec.config.kind == RunKind::kIdle) {
      std::vector<std::vector<double>> v;
      for (const ImplSummary& s : c.impls) v.push_back({s.idle_cpu_pct_per_consumer});
      bars_panel(o, Box{kLeft, py, kPanelW, kPanelH}, "idle CPU per consumer (% of a core)", "%",
                 names, v);
      continue;
    }
    std::vector<std::pair<std::string, const pushstage::Histogram*>> dispatch;
    std::vector<std::pair<std::string, const pushstage::Histogram*>> excess;
    std::vector<std::vector<double>> busy;
    for (const ImplSummary& s : c.impls) {
      dispatch.emplace_back(s.impl, &s.dispatch);
      excess.emplace_back(s.impl, &s.excess);
      busy.push_back(s.busy_by_rank_s);
    }
    cdf_panel(o, Box{kLeft, py, kPanelW, kPanelH}, "dispatch latency CDF (start - enqueue)",
              dispatch);
    bars_panel(o, Box{kLeft + kPanelW + kGap, py, kPanelW, kPanelH},
               "busy time per consumer, busiest first (s, all reps)", "s", names, busy);
    cdf_panel(o, Box{kLeft + 2 * (kPanelW + kGap), py, kPanelW, kPanelH},
              "excess over ideal FIFO CDF (<=100ns at left edge)", excess);
  }
  o << "</svg>\n";
  return o.str();
}

}  // namespace pushstage::bench
