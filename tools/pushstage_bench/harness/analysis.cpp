// analysis.cpp: see analysis.hpp. The steps run in order: cost, the consumers' logs (and the
// exactly-once check), the timing of the events handled once, the batch bound, the trace.
#include "harness/analysis.hpp"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "bench_core.hpp"
#include "pushstage/histogram.hpp"

namespace pushstage::bench {
namespace {

// Each event's first handling, from the consumers' logs, and what the exactly-once check counted.
struct FirstHandlings {
  std::vector<std::uint8_t> seen;  // per event id
  std::vector<std::int64_t> start;
  std::vector<std::int64_t> end;
  std::vector<std::uint32_t> by;  // the consumer
  Deliveries deliveries;          // copies > 1: summed over consumers
  std::uint64_t bogus = 0;        // ids outside the plan
  std::int64_t last_end_all = 0;  // over every delivery
};

// The events handled (once), in id order, with what the batch check needs.
struct HandledOnce {
  std::vector<std::size_t> ids;
  std::vector<std::int64_t> service;  // end - start, per entry of ids
  std::int64_t last_end = 0;          // of their first handlings (copies > 1: of every delivery)
};

void append(std::string& failures, std::string_view failure) {
  if (!failures.empty()) failures.append("; ");
  failures.append(failure);
}

std::uint64_t at_least_zero(std::int64_t ns) {
  return static_cast<std::uint64_t>(std::max<std::int64_t>(0, ns));
}

// CPU time and memory over the run; an idle run reports its idle window only.
void add_cost(RunResult& r, const RunConfig& cfg, const Timeline& tl) {
  r.cpu_ns = tl.cpu_end - tl.cpu_start;
  r.cpu_consumers_ns = r.cpu_ns - tl.producers_cpu - tl.main_cpu;
  r.peak_rss_kb = tl.peak_rss_kb;
  r.rss_growth_kb = std::max<std::int64_t>(0, tl.peak_rss_kb - tl.rss_start_kb);
  if (cfg.kind == RunKind::kIdle) {
    r.cpu_ns = tl.idle_cpu;
    r.cpu_consumers_ns = tl.idle_cpu;
    r.idle_window_ns = tl.idle_window;
  }
}

// Every consumer's log: handler calls, events and busy time per consumer, dispatch and response
// latency, each event's first handling, and the exactly-once count (per consumer when copies > 1).
FirstHandlings read_logs(const Harness& h, const Timeline& tl, std::size_t copies, RunResult& r) {
  const Plan& plan = h.plan;
  const std::size_t n = plan.size();
  const std::size_t consumers = h.config.consumers;
  const bool open_loop = h.config.open_loop();
  FirstHandlings f;
  f.seen.assign(n, 0);
  f.start.assign(n, 0);
  f.end.assign(n, 0);
  f.by.assign(n, 0);
  std::vector<std::uint32_t> handled_ids;
  handled_ids.reserve(n);
  std::uint64_t overflow = 0;
  std::vector<pushstage::Histogram> dispatch(consumers);
  std::vector<pushstage::Histogram> response(consumers);
  r.consumer_events.assign(consumers, 0);
  r.consumer_busy_ns.assign(consumers, 0);
  for (std::size_t c = 0; c < consumers; ++c) {
    const ConsumerLog& log = h.logs[c];
    overflow += log.overflow;
    f.bogus += log.bogus;
    r.handled += log.n + log.overflow + log.bogus;
    r.consumer_events[c] = log.n;
    if (copies > 1) handled_ids.clear();
    for (std::size_t k = 0; k < log.n; ++k) {
      const Record& rec = log.records[k];
      handled_ids.push_back(rec.id);
      r.consumer_busy_ns[c] += rec.end - rec.start;
      f.last_end_all = std::max(f.last_end_all, rec.end);
      if (f.seen[rec.id] == 0) {
        f.seen[rec.id] = 1;
        f.start[rec.id] = rec.start;
        f.end[rec.id] = rec.end;
        f.by[rec.id] = static_cast<std::uint32_t>(c);
      } else if (copies == 1) {
        continue;  // a duplicate: count_deliveries reports it
      }
      dispatch[c].record(at_least_zero(rec.start - h.enqueued[rec.id]));
      if (open_loop) response[c].record(at_least_zero(rec.start - (tl.t0 + plan.intended[rec.id])));
    }
    if (copies > 1) {
      // Each consumer (subscriber) handles each event exactly once.
      const Deliveries d = count_deliveries(handled_ids, n);
      if (d.missing != 0 && f.deliveries.missing == 0) f.deliveries.first_missing = d.first_missing;
      f.deliveries.missing += d.missing;
      f.deliveries.duplicated += d.duplicated;
      f.deliveries.unknown += d.unknown;
    }
  }
  for (std::size_t c = 0; c < consumers; ++c) {
    r.dispatch.merge(dispatch[c]);
    r.response.merge(response[c]);
  }
  // Exactly once (per consumer when copies > 1). Records that did not fit (overflow) can only be
  // extra handlings; ids outside the plan were rejected before recording.
  if (copies == 1) f.deliveries = count_deliveries(handled_ids, n);
  r.missing = f.deliveries.missing;
  r.duplicated = f.deliveries.duplicated + overflow;
  f.bogus += f.deliveries.unknown;
  return f;
}

// Lost, duplicated and unknown events, and a pool whose own count differs from the harness's.
std::string delivery_failures(const RunResult& r, const FirstHandlings& f, const Plan& plan,
                              const Timeline& tl, const BackendFacts& backend) {
  std::string failures;
  if (r.missing != 0) {
    std::string lost = "lost " + std::to_string(r.missing) + " of " +
                       std::to_string(plan.size() * backend.copies) +
                       (backend.copies > 1 ? " deliveries" : " events") + " (first: event " +
                       std::to_string(f.deliveries.first_missing) + " from producer " +
                       std::to_string(plan.producer[f.deliveries.first_missing]) + ")";
    if (tl.stalled) lost += " - no progress for the stall limit";
    append(failures, lost);
  }
  if (r.duplicated != 0) {
    append(failures, "handled " + std::to_string(r.duplicated) + " events more than once");
  }
  if (f.bogus != 0) append(failures, std::to_string(f.bogus) + " events with unknown ids");
  if (backend.pool_handled && *backend.pool_handled != r.handled) {
    append(failures, "the consumers counted " + std::to_string(*backend.pool_handled) +
                         " handler calls, the harness " + std::to_string(r.handled));
  }
  return failures;
}

// The events handled once: dispatch latency per producer, the longest wait, span and throughput,
// and (copies == 1) excess over the ideal FIFO replay and FIFO inversions.
HandledOnce add_timing(const Harness& h, const Timeline& tl, const FirstHandlings& f,
                       std::size_t copies, RunResult& r) {
  const Plan& plan = h.plan;
  const bool batch = h.config.kind == RunKind::kBatch;
  HandledOnce once;
  once.ids.reserve(plan.size());
  for (std::size_t i = 0; i < plan.size(); ++i) {
    if (f.seen[i] != 0) once.ids.push_back(i);
  }
  const std::vector<std::size_t>& ids = once.ids;
  std::vector<std::int64_t> arrival(ids.size());
  std::vector<std::int64_t> enq(ids.size());
  std::vector<std::int64_t> st(ids.size());
  std::vector<std::uint32_t> prod(ids.size());
  once.service.resize(ids.size());
  std::int64_t first_enqueue = std::numeric_limits<std::int64_t>::max();
  once.last_end = tl.t0;
  r.dispatch_by_producer.assign(plan.per_producer.size(), pushstage::Histogram());
  for (std::size_t k = 0; k < ids.size(); ++k) {
    const std::size_t i = ids[k];
    enq[k] = h.enqueued[i];
    st[k] = f.start[i];
    prod[k] = plan.producer[i];
    once.service[k] = f.end[i] - f.start[i];
    // Batch: everything was available when the consumers started.
    arrival[k] = batch ? 0 : enq[k] - tl.t0;
    first_enqueue = std::min(first_enqueue, enq[k]);
    once.last_end = std::max(once.last_end, f.end[i]);
    const std::int64_t wait = f.start[i] - enq[k];
    r.dispatch_by_producer[prod[k]].record(at_least_zero(wait));
    if (wait > r.longest_wait_ns) {
      r.longest_wait_ns = wait;
      r.longest_wait_producer = prod[k];
    }
  }
  if (ids.empty()) return once;
  if (copies > 1) once.last_end = std::max(once.last_end, f.last_end_all);  // the last copy
  r.span_ns = once.last_end - (batch ? tl.t0 : first_enqueue);
  r.throughput =
      r.span_ns > 0 ? static_cast<double>(ids.size()) * 1e9 / static_cast<double>(r.span_ns) : 0;
  if (copies == 1) {  // the ideal FIFO schedule hands each event to one consumer
    const std::vector<std::int64_t> ideal =
        ideal_fifo_starts(arrival, once.service, h.config.consumers);
    for (std::size_t k = 0; k < ids.size(); ++k) {
      const std::int64_t excess = (st[k] - tl.t0) - ideal[k];
      if (excess < 0) ++r.excess_negative;
      r.excess.record(at_least_zero(excess));
    }
    r.fifo_inversions = fifo_inversions(enq, st, prod);
  }
  return once;
}

// A batch's makespan against Graham's bound; the failure, or "" when within it.
std::string check_makespan(const RunConfig& cfg, const Timeline& tl, const HandledOnce& once,
                           RunResult& r) {
  r.makespan_ns = once.last_end - tl.t0;
  r.graham_bound_ns = graham_bound(once.service, cfg.consumers);
  if (within_graham_bound(static_cast<double>(r.makespan_ns), r.graham_bound_ns,
                          cfg.graham_relative, static_cast<double>(cfg.graham_absolute_ns))) {
    return "";
  }
  char buf[200];
  std::snprintf(buf, sizeof buf,
                "makespan %.3f ms exceeds Graham's bound %.3f ms by more than %.0f%% + %.1f ms",
                static_cast<double>(r.makespan_ns) / 1e6, r.graham_bound_ns / 1e6,
                cfg.graham_relative * 100, static_cast<double>(cfg.graham_absolute_ns) / 1e6);
  return buf;
}

std::string ms(std::int64_t ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%+.3f ms", static_cast<double>(ns) / 1e6);
  return buf;
}

// --trace: who received each event and when, in the order the handlings started.
void print_trace(const Harness& h, const Timeline& tl, const FirstHandlings& f,
                 std::vector<std::size_t> order, std::string_view impl, std::size_t rep) {
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return f.start[a] < f.start[b]; });
  for (const std::size_t i : order) {
    std::printf(
        "[%.*s rep %zu] consumer %u received event %zu from producer %u at %s "
        "(enqueued %s), finished at %s\n",
        static_cast<int>(impl.size()), impl.data(), rep + 1, f.by[i], i, h.plan.producer[i],
        ms(f.start[i] - tl.t0).c_str(), ms(h.enqueued[i] - tl.t0).c_str(),
        ms(f.end[i] - tl.t0).c_str());
  }
  std::fflush(stdout);
}

}  // namespace

RunResult analyse(const Harness& h, const Timeline& tl, std::string_view impl, std::size_t rep,
                  const BackendFacts& backend) {
  RunResult r;
  r.impl = std::string(impl);
  r.rep = rep;
  r.events = h.plan.size();
  add_cost(r, h.config, tl);
  const FirstHandlings first = read_logs(h, tl, backend.copies, r);
  std::string failures = delivery_failures(r, first, h.plan, tl, backend);
  // Everything below uses the events handled (once); with failures it still describes them.
  const HandledOnce once = add_timing(h, tl, first, backend.copies, r);
  if (h.config.kind == RunKind::kBatch && !once.ids.empty() && backend.copies == 1 &&
      backend.work_conserving) {
    const std::string broken = check_makespan(h.config, tl, once, r);
    if (!broken.empty()) append(failures, broken);
  }
  if (!failures.empty()) {
    r.ok = false;
    r.failure = failures;
  }
  if (h.config.trace) print_trace(h, tl, first, once.ids, impl, rep);
  return r;
}

}  // namespace pushstage::bench
