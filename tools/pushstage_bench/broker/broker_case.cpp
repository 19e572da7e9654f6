// broker_case.cpp: see broker_case.hpp.
#include "broker/broker_case.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <random>
#include <string_view>
#include <thread>
#include <utility>

#include "bench_core.hpp"
#include "harness/clocks.hpp"
#include "harness/work.hpp"
#include "pushstage/nats/sink.hpp"

namespace pushstage::bench {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

void fail(CaseOutcome& c, std::string failure) {
  c.ok = false;
  c.failure = std::move(failure);
}

// Starts the workers and waits for "ready" from each.
std::vector<WorkerProcess> start_workers(const BrokerSpec& spec, const std::string& stream,
                                         const std::string& consumer, CaseOutcome& c) {
  std::vector<WorkerProcess> workers;
  for (std::size_t i = 0; i < c.processes; ++i) {
    workers.push_back(spawn_worker({spec.self, "--broker-worker", "-", stream, consumer,
                                    std::to_string(spec.consumers), std::to_string(spec.max_demand),
                                    work_mode_name(spec.work_mode), spec.pin ? "pin" : "no-pin"},
                                   spec.url));
  }
  for (WorkerProcess& w : workers) {
    const auto l = w.line(30s);
    if (!l || *l != "ready") fail(c, "a worker did not start (see its message above)");
  }
  return workers;
}

pushstage::nats::SinkOptions sink_options(const BrokerSpec& spec, const std::string& stream) {
  pushstage::nats::SinkOptions so;
  so.connection.url = spec.url;
  so.subject = stream + ".events";
  so.max_in_flight = 1024;
  return so;
}

// Publishes every event; returns the first publish's stamp.
std::int64_t publish(const BrokerSpec& spec, pushstage::nats::Sink& sink, CaseOutcome& c) {
  std::mt19937_64 rng(spec.seed + c.rep);
  const std::int64_t t0 = now_ns();
  for (std::size_t i = 0; i < spec.events; ++i) {
    if (spec.rate > 0) {
      const auto intended =
          t0 + static_cast<std::int64_t>(static_cast<double>(i) * 1e9 / spec.rate);
      while (now_ns() < intended) {
        const std::int64_t left = intended - now_ns();
        if (left > 50'000) std::this_thread::sleep_for(std::chrono::nanoseconds(left - 20'000));
      }
    }
    char payload[64];
    const int n =
        std::snprintf(payload, sizeof payload, "%zu %lld %lld", i, static_cast<long long>(now_ns()),
                      static_cast<long long>(spec.work.sample(rng)));
    sink.publish(std::string_view(payload, static_cast<std::size_t>(n)));
  }
  const std::int64_t published = now_ns();
  c.publish_rate = static_cast<double>(spec.events) * 1e9 / static_cast<double>(published - t0);
  if (!sink.flush(60s) || sink.stats().failed != 0) {
    fail(c, "publishing failed: " + std::to_string(sink.stats().failed) + " not stored");
  }
  return t0;
}

// Until the broker has every event acknowledged; fails after 30 s without progress.
void wait_acknowledged(const BrokerSpec& spec, JetStreamAdmin& admin, const std::string& stream,
                       const std::string& consumer, CaseOutcome& c) {
  std::uint64_t floor = 0;
  std::uint64_t last_floor = 0;
  auto last_progress = Clock::now();
  while (c.ok && !admin.done(stream, consumer, floor)) {
    if (floor != last_floor) {
      last_floor = floor;
      last_progress = Clock::now();
    } else if (Clock::now() - last_progress > 30s) {
      fail(c, "no progress for 30 s (acknowledged up to " + std::to_string(floor) + " of " +
                  std::to_string(spec.events) + ")");
    }
    std::this_thread::sleep_for(10ms);
  }
}

// Stops every worker and reads its report.
void collect(std::vector<WorkerProcess>& workers, CaseOutcome& c) {
  for (WorkerProcess& w : workers) w.stop();
  for (WorkerProcess& w : workers) {
    ProcessResult r;
    if (const std::optional<std::string> l = w.line(60s)) {
      try {
        static_cast<WorkerReport&>(r) = worker_report_from_json(nlohmann::json::parse(*l));
        r.ok = true;
      } catch (const std::exception& e) {
        r.failure = std::string("unreadable result: ") + e.what();
      }
    } else {
      r.failure = "no result";
    }
    const int status = w.wait_exit();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      r.ok = false;
      r.failure = "worker exited with status " + std::to_string(status);
    }
    if (!r.ok && c.ok) fail(c, "a worker failed: " + r.failure);
    c.per_process.push_back(std::move(r));
  }
}

// Every event at least once; duplicates allowed and counted. Throughput and fairness.
void merge(const BrokerSpec& spec, std::int64_t t0, CaseOutcome& c) {
  std::vector<std::uint32_t> all;
  std::vector<double> counts;
  std::int64_t end = t0;
  for (const ProcessResult& r : c.per_process) {
    all.insert(all.end(), r.ids.begin(), r.ids.end());
    counts.push_back(static_cast<double>(r.handled));
    c.latency.merge(r.latency);
    end = std::max(end, r.last_end);
  }
  const Deliveries d = count_deliveries(all, spec.events);
  c.lost = d.missing;
  c.duplicates = d.duplicated;
  if (c.ok && (d.missing != 0 || d.unknown != 0)) {
    fail(c, std::to_string(d.missing) + " events lost (first: " + std::to_string(d.first_missing) +
                ")");
  }
  c.span_ns = end - t0;
  c.throughput =
      c.span_ns > 0 ? static_cast<double>(all.size()) * 1e9 / static_cast<double>(c.span_ns) : 0;
  c.jain = jain_index(counts);
  c.max_min = spread(counts);
}

}  // namespace

CaseOutcome run_case(const BrokerSpec& spec, JetStreamAdmin& admin, std::size_t processes,
                     std::size_t rep, std::size_t case_no) {
  CaseOutcome c;
  c.processes = processes;
  c.rep = rep;
  const std::string stream = "PSBENCH_" + std::to_string(getpid()) + "_" + std::to_string(case_no);
  const std::string consumer = "workers";
  const std::size_t demand = processes * spec.consumers * spec.max_demand;
  admin.create(stream, consumer, std::max<std::size_t>(demand, 1000));

  std::vector<WorkerProcess> workers = start_workers(spec, stream, consumer, c);
  std::int64_t t0 = 0;
  if (c.ok) {
    pushstage::nats::Sink sink(sink_options(spec, stream));
    t0 = publish(spec, sink, c);
    wait_acknowledged(spec, admin, stream, consumer, c);
  }
  collect(workers, c);
  admin.remove(stream);
  merge(spec, t0, c);
  return c;
}

}  // namespace pushstage::bench
