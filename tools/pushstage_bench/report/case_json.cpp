// case_json.cpp: see report.hpp.
#include <string>
#include <utility>

#include "harness/work.hpp"
#include "report/report.hpp"
#include "report/results_json.hpp"

namespace pushstage::bench {

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
      {"work_mode", work_mode_name(cfg.work_mode)},
      {"consumers", cfg.consumers},
      {"max_demand", cfg.max_demand},
      {"pin", cfg.pin},
      {"pin_to", cfg.pin ? (cfg.pin_to == PinTo::CacheDomain ? "cache-domain" : "cpu") : "none"},
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

}  // namespace pushstage::bench
