// worker_main.cpp: a --broker worker process (pushstage-bench --broker-worker ARGS, started by
// the parent: broker_case.cpp). It runs a pushstage::nats::Pipeline on the case's shared durable
// consumer, says "ready", handles events until its stdin closes (each: parse "id publish_stamp
// work_ns", record latency and id, do the work), then stops the pipeline and writes its
// WorkerReport as one JSON line (worker_process.hpp).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "broker/broker.hpp"
#include "broker/worker_process.hpp"
#include "harness/clocks.hpp"
#include "harness/work.hpp"
#include "pushstage/histogram.hpp"
#include "pushstage/nats/pipeline.hpp"

namespace pushstage::bench {
namespace {

using namespace std::chrono_literals;

// One consumer thread's records, claimed on its first event; read after the pool has joined.
struct Slot {
  pushstage::Histogram latency;
  std::vector<std::uint32_t> ids;
  std::int64_t first_start = std::numeric_limits<std::int64_t>::max();
  std::int64_t last_end = 0;
};

WorkerReport merge(const std::vector<std::unique_ptr<Slot>>& slots,
                   const pushstage::nats::SourceStats& st) {
  WorkerReport r;
  std::int64_t first = std::numeric_limits<std::int64_t>::max();
  for (const auto& s : slots) {
    r.latency.merge(s->latency);
    r.ids.insert(r.ids.end(), s->ids.begin(), s->ids.end());
    first = std::min(first, s->first_start);
    r.last_end = std::max(r.last_end, s->last_end);
    r.consumer_events.push_back(s->ids.size());
  }
  r.handled = r.ids.size();
  r.first_start = first == std::numeric_limits<std::int64_t>::max() ? 0 : first;
  r.fetches = st.fetches;
  r.redelivered = st.redelivered;
  r.max_in_flight = st.max_in_flight;
  r.cpu_ns = process_cpu_ns();
  return r;
}

}  // namespace

int broker_worker_main(const std::vector<std::string>& args) {
  if (args.size() != 7) {
    std::fprintf(stderr,
                 "pushstage-bench --broker-worker URL|- STREAM CONSUMER CONSUMERS MAX_DEMAND "
                 "spin|sleep pin|no-pin (started by --broker; -: the URL is in $%s)\n",
                 kBrokerUrlVariable);
    return 2;
  }
  const WorkMode mode =
      args[5] == work_mode_name(WorkMode::kSpin) ? WorkMode::kSpin : WorkMode::kSleep;
  if (mode == WorkMode::kSpin) (void)calibrate_spin_work();
  pushstage::nats::SourceOptions so;
  const char* from_env = std::getenv(kBrokerUrlVariable);
  so.connection.url = args[0] == "-" && from_env != nullptr ? from_env : args[0];
  so.connection.name = "pushstage-bench worker " + std::to_string(getpid());
  so.stream = args[1];
  so.consumer = args[2];
  so.poll = 100ms;
  pushstage::PoolOptions po;
  po.consumers = std::stoul(args[3]);
  po.max_demand = std::stoul(args[4]);
  po.pin = args[6] == "pin";

  std::vector<std::unique_ptr<Slot>> slots;
  for (std::size_t i = 0; i < po.consumers; ++i) slots.push_back(std::make_unique<Slot>());
  std::atomic<std::size_t> next{0};
  auto handler = [&](pushstage::nats::Message& m) {
    const std::int64_t start = now_ns();
    thread_local Slot* mine = nullptr;
    if (mine == nullptr) {
      mine = slots[next.fetch_add(1, std::memory_order_relaxed)].get();  // unique index only
    }
    const std::string_view d = m.data();
    std::uint32_t id = 0;
    long long published = 0;
    long long work = 0;
    const char* p = d.data();
    const char* e = d.data() + d.size();
    auto r1 = std::from_chars(p, e, id);
    auto r2 = std::from_chars(r1.ptr + 1, e, published);
    std::from_chars(r2.ptr + 1, e, work);
    mine->latency.record(static_cast<std::uint64_t>(std::max<std::int64_t>(start - published, 0)));
    mine->ids.push_back(id);
    mine->first_start = std::min(mine->first_start, start);
    do_work(mode, work);
    mine->last_end = now_ns();
  };
  try {
    pushstage::nats::Pipeline pipeline(so, po, handler);
    std::printf("ready\n");
    std::fflush(stdout);
    char buf[256];
    while (read(0, buf, sizeof buf) > 0) {  // until the parent closes our stdin
    }
    pipeline.stop();
    const WorkerReport report = merge(slots, pipeline.source_stats());
    std::printf("%s\n", worker_report_to_json(report).dump().c_str());
    std::fflush(stdout);
    return 0;
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "pushstage-bench worker %d: %s\n", static_cast<int>(getpid()), ex.what());
    return 1;
  }
}

}  // namespace pushstage::bench
