// scenarios.cpp: see scenarios.hpp. Sizes are chosen so that each scenario takes well under two
// minutes on the project's 2-core VM (the default one about a minute).
#include "scenarios.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <string>
#include <utility>

#include "bench_core.hpp"
#include "report/format.hpp"
#include "scenario_targets.hpp"

namespace pushstage::bench {
namespace {

const std::vector<Impl> kStandard = {Impl::kPushstage, Impl::kPushstageLifo, Impl::kBlocking,
                                     Impl::kMutex,     Impl::kTbb,           Impl::kSpin};

// v as printf's "%g" writes it (7, 0.5, 1e+06).
std::string shortest(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// ---- seed: the example ----

std::vector<CaseDraft> seed_cases(std::size_t /*cpus*/) {
  CaseDraft c;
  c.name = "seed";
  c.events = 7000;
  c.consumers = 3;
  c.producers = 1;
  c.work = "uniform:500us:1500us";
  c.work_mode = WorkMode::kSleep;
  c.load = 0.8;
  c.reps = 3;
  // Pinned, as the mission runs consumers, and unpinned: pinning decides what a wake costs here
  // (README: Results), so the default table shows both.
  c.pinned_only = true;
  CaseDraft loose = c;
  loose.name = "seed-unpinned";
  loose.pin = false;
  loose.pinned_only = false;
  return {c, loose};
}

// ---- throughput: closed loop, trivial work ----

std::vector<CaseDraft> throughput_cases(std::size_t /*cpus*/) {
  std::vector<CaseDraft> out;
  for (const auto& [p, c] : {std::pair{1, 1}, std::pair{2, 2}, std::pair{1, 4}}) {
    CaseDraft d;
    d.name = std::to_string(p) + "P" + std::to_string(c) + "C";
    d.events = 1'000'000;
    d.producers = static_cast<std::size_t>(p);
    d.consumers = static_cast<std::size_t>(c);
    d.rate = 0;
    d.work = "const:0";
    d.work_mode = WorkMode::kSpin;
    d.reps = 3;
    out.push_back(d);
  }
  return out;
}

// ---- handoff: one event at a time, to a spinning or to a parked consumer ----

std::vector<CaseDraft> handoff_cases(std::size_t /*cpus*/) {
  CaseDraft hot;
  hot.name = "hot (gap 10us < spin window)";
  hot.events = 20'000;
  hot.producers = 1;
  hot.consumers = 1;
  hot.rate = 100'000;
  hot.arrivals = Arrivals::kFixed;
  hot.work = "const:0";
  hot.work_mode = WorkMode::kSpin;
  hot.reps = 3;
  CaseDraft parked = hot;
  parked.name = "parked (gap 1ms > spin window)";
  parked.events = 1000;
  parked.rate = 1000;
  return {hot, parked};
}

// ---- fairness: skewed producers, heavy-tailed work ----

std::vector<CaseDraft> fairness_cases(std::size_t /*cpus*/) {
  std::vector<Impl> impls = kStandard;
  impls.push_back(Impl::kBlockingNoToken);
  CaseDraft bimodal;
  bimodal.name = "skewed producers, bimodal work";
  bimodal.events = 4000;
  bimodal.producers = 4;
  bimodal.weights = {7, 1, 1, 1};
  bimodal.consumers = 2;
  bimodal.work = "bimodal:300us";
  bimodal.work_mode = WorkMode::kSleep;
  bimodal.load = 0.85;
  bimodal.reps = 2;
  bimodal.impls = impls;
  CaseDraft pareto = bimodal;
  pareto.name = "skewed producers, Pareto work";
  pareto.work = "pareto:100us:20ms:1.5";
  CaseDraft batch = bimodal;
  batch.name = "batch, bimodal work";
  batch.kind = RunKind::kBatch;
  batch.events = 1000;
  batch.producers = 1;
  batch.weights = {};
  return {bimodal, pareto, batch};
}

// ---- oversubscribed: more consumers than cores ----

std::vector<CaseDraft> oversubscribed_cases(std::size_t cpus) {
  std::set<std::size_t> counts{1, 2, cpus, 2 * cpus, 4 * cpus};
  std::vector<CaseDraft> out;
  for (const std::size_t c : counts) {
    CaseDraft d;
    d.name = std::to_string(c) + " consumer" + (c == 1 ? "" : "s");
    if (c == cpus) d.name += " (= cores)";
    if (c == 2 * cpus) d.name += " (2x cores)";
    if (c == 4 * cpus) d.name += " (4x cores)";
    d.events = 5000;
    d.producers = 1;
    d.consumers = c;
    d.rate = 10'000;  // the same offered load for every consumer count: 0.4 of one core
    d.work = "exp:40us";
    d.work_mode = WorkMode::kSpin;
    d.reps = 2;
    out.push_back(d);
  }
  return out;
}

// ---- idle: CPU burnt by consumers with nothing to do ----

std::vector<CaseDraft> idle_cases(std::size_t cpus) {
  std::vector<CaseDraft> out;
  for (const std::size_t c : std::set<std::size_t>{cpus, 2 * cpus}) {
    CaseDraft d;
    d.name = std::to_string(c) + " idle consumers";
    d.kind = RunKind::kIdle;
    d.events = c;  // one warm-up event each, then nothing
    d.producers = 1;
    d.consumers = c;
    d.rate = 0;
    d.work = "const:0";
    d.work_mode = WorkMode::kSpin;
    d.reps = 1;
    out.push_back(d);
  }
  return out;
}

// ---- pipeline, partition, broadcast: GenStage's shapes next to the core dispatcher ----

// A closed-loop case (throughput, trivial work) and an open-loop one (latency at a fixed rate).
std::vector<CaseDraft> shape_cases(std::vector<Impl> impls, std::size_t consumers) {
  CaseDraft closed;
  closed.name = "closed loop, trivial work";
  closed.events = 200'000;
  closed.producers = 1;
  closed.consumers = consumers;
  closed.rate = 0;
  closed.work = "const:0";
  closed.work_mode = WorkMode::kSpin;
  closed.reps = 3;
  closed.impls = impls;
  CaseDraft open = closed;
  open.name = "open loop 20k/s, 10us work";
  open.events = 20'000;
  open.rate = 20'000;
  open.arrivals = Arrivals::kFixed;
  open.work = "const:10us";
  return {closed, open};
}

std::vector<CaseDraft> pipeline_cases(std::size_t /*cpus*/) {
  return shape_cases({Impl::kPushstage, Impl::kPipeline2, Impl::kPipeline3}, 1);
}

std::vector<CaseDraft> partition_cases(std::size_t /*cpus*/) {
  std::vector<CaseDraft> out = shape_cases({Impl::kPushstage, Impl::kPartition, Impl::kKeyed}, 2);
  // Irregular work: a partition's backlog waits for its own consumer; the others may idle.
  CaseDraft irregular;
  irregular.name = "irregular work, 3 consumers";
  irregular.events = 3000;
  irregular.producers = 1;
  irregular.consumers = 3;
  irregular.work = "uniform:100us:300us";
  irregular.work_mode = WorkMode::kSleep;
  irregular.load = 0.7;
  irregular.reps = 2;
  irregular.impls = {Impl::kPushstage, Impl::kPartition, Impl::kKeyed};
  out.push_back(irregular);
  return out;
}

std::vector<CaseDraft> broadcast_cases(std::size_t /*cpus*/) {
  return shape_cases({Impl::kPushstage, Impl::kBroadcast}, 2);
}

constexpr Scenario kScenarios[] = {
    {"seed",
     "3 consumers, 1 producer, uniform 500-1500us sleep work, Poisson at 80% load (default)",
     seed_cases, seed_targets},
    {"throughput", "closed loop, trivial work: 1P1C, 2P2C, 1P4C", throughput_cases, nullptr},
    {"handoff", "one event at a time, gaps shorter and longer than pushstage's spin window",
     handoff_cases, nullptr},
    {"fairness", "skewed producers (7:1:1:1), bimodal and Pareto work, a bimodal batch",
     fairness_cases, fairness_targets},
    {"oversubscribed", "consumers = 1, 2, cores, 2x and 4x cores at a fixed offered load",
     oversubscribed_cases, oversubscribed_targets},
    {"idle", "pools with nothing to do: CPU per consumer after the spin window", idle_cases,
     idle_targets},
    {"pipeline", "2- and 3-stage pipelines (pass-through Stages) against the core dispatcher",
     pipeline_cases, shape_targets},
    {"partition", "PartitionDispatcher and KeyedDispatcher against the core dispatcher",
     partition_cases, shape_targets},
    {"broadcast", "BroadcastDispatcher (every consumer handles every event) against the core",
     broadcast_cases, shape_targets},
};

std::string describe(const CaseSpec& s) {
  const RunConfig& c = s.config;
  std::string d = std::to_string(c.consumers) + " consumer" + (c.consumers == 1 ? "" : "s") +
                  (!c.pin                           ? " (unpinned)"
                   : c.pin_to == PinTo::CacheDomain ? " (pinned to cache domains)"
                                                    : " (pinned)") +
                  ", " + std::to_string(c.plan.producers) + " producer" +
                  (c.plan.producers == 1 ? "" : "s");
  if (!c.plan.weights.empty()) {
    d += " weighted";
    for (std::size_t i = 0; i < c.plan.weights.size(); ++i) {
      // append, not " " + std::string: GCC 12 -O3 warns (-Wrestrict, a false positive) on that.
      d.append(i == 0 ? " " : ":").append(shortest(c.plan.weights[i]));
    }
  }
  d += ", " + c.plan.work.text + " " + work_mode_name(c.work_mode) + " work, ";
  if (c.kind == RunKind::kBatch) {
    d += "batch (all buffered at t0)";
  } else if (c.kind == RunKind::kIdle) {
    d += "then idle for " + format_ns(static_cast<double>(c.idle_window_ns));
  } else if (c.plan.rate <= 0) {
    d += "closed loop";
  } else {
    d += std::string(c.plan.arrivals == Arrivals::kPoisson ? "Poisson " : "fixed-rate ") +
         fixed(c.plan.rate, 0) + "/s";
    const double mean = c.plan.work.mean_ns();
    if (mean > 0) {
      d += " (" + fixed(100 * c.plan.rate * mean / 1e9 / static_cast<double>(c.consumers), 0) +
           "% load)";
    }
  }
  d += ", " + std::to_string(c.plan.events) + " events x " + std::to_string(s.reps) + " reps";
  if (c.max_demand != 1) d += ", max-demand " + std::to_string(c.max_demand);
  return d;
}

}  // namespace

std::span<const Scenario> scenarios() { return kScenarios; }

const Scenario* find_scenario(std::string_view name) {
  for (const Scenario& s : kScenarios) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

std::vector<CaseSpec> build_cases(const Scenario& scenario, const Overrides& f, std::size_t cpus) {
  std::vector<CaseSpec> out;
  for (CaseDraft d : scenario.cases(cpus)) {
    if (f.events) d.events = *f.events;
    if (f.producers) d.producers = *f.producers;
    if (f.weights) {
      d.weights = *f.weights;
      if (!f.producers) d.producers = d.weights.size();
    } else if (f.producers) {
      d.weights.clear();
    }
    if (f.consumers) d.consumers = *f.consumers;
    if (f.max_demand) d.max_demand = *f.max_demand;
    if (f.reps) d.reps = *f.reps;
    if (f.rate) d.rate = *f.rate;
    if (f.load) {
      d.load = *f.load;
      d.rate.reset();
    }
    if (f.arrivals) d.arrivals = *f.arrivals;
    if (f.work) d.work = *f.work;
    if (f.work_mode) d.work_mode = *f.work_mode;
    if (f.impls) d.impls = *f.impls;
    if (f.idle_window_ns) d.idle_window_ns = *f.idle_window_ns;
    if (f.batch) d.kind = RunKind::kBatch;
    if (f.no_pin) {
      if (d.pinned_only) continue;
      d.pin = false;
    }
    if (f.pin_to && d.pin) d.pin_to = *f.pin_to;

    CaseSpec s;
    s.name = d.name;
    s.reps = d.reps;
    s.impls = d.impls.empty() ? kStandard : d.impls;
    RunConfig& c = s.config;
    c.kind = d.kind;
    c.work_mode = d.work_mode;
    c.consumers = d.consumers;
    c.max_demand = d.max_demand;
    c.pin = d.pin;
    c.pin_to = d.pin_to;
    c.idle_window_ns = d.idle_window_ns;
    c.trace = f.trace;
    c.plan.events = d.events;
    c.plan.producers = d.producers;
    c.plan.weights = d.weights;
    c.plan.arrivals = d.arrivals;
    c.plan.work = parse_work("--work", d.work);
    c.plan.seed = f.seed.value_or(1);
    if (!d.weights.empty() && d.weights.size() != d.producers) {
      throw UsageError("--producer-weights: expects one weight per producer (" +
                       std::to_string(d.producers) + "); got " + std::to_string(d.weights.size()));
    }
    if (d.producers > d.events) {
      throw UsageError("--producers: expects at most as many producers as events (" +
                       std::to_string(d.events) + "), each producer needs one; got " +
                       std::to_string(d.producers));
    }
    if (d.kind != RunKind::kStream) {
      c.plan.rate = 0;  // batch and idle push everything at once
    } else if (d.rate) {
      c.plan.rate = *d.rate;
    } else {
      const double mean = c.plan.work.mean_ns();
      if (!(mean > 0)) {
        throw UsageError(
            "--load: needs work with a mean above 0 (use --rate for trivial work); "
            "got --work '" +
            d.work + "'");
      }
      c.plan.rate = d.load * static_cast<double>(d.consumers) * 1e9 / mean;
    }
    const std::size_t lines = d.events * d.reps * s.impls.size();
    if (f.trace && lines > 20'000) {
      throw UsageError(
          "--trace: prints a line per handled event, so it accepts runs of at most "
          "20000 lines (events x reps x implementations); got " +
          std::to_string(d.events) + " x " + std::to_string(d.reps) + " x " +
          std::to_string(s.impls.size()));
    }
    s.description = describe(s);
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace pushstage::bench
