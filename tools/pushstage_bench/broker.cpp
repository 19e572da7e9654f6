// broker.cpp: see broker.hpp. The parent sets up a stream and a durable pull consumer, starts the
// workers and waits for "ready" from each, publishes, waits until the broker reports every event
// acknowledged, then closes the workers' stdin: each stops its pipeline and writes one JSON line
// (ids handled, latency histogram, source counters), which the parent merges.
#include "broker.hpp"

#include <fcntl.h>
#include <nats/nats.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "pushstage/histogram.hpp"
#include "pushstage/nats/pipeline.hpp"
#include "pushstage/nats/sink.hpp"
#include "report.hpp"
#include "results_json.hpp"

namespace pushstage::bench {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string rate_text(double per_s) {
  if (per_s >= 1e6) return fixed(per_s / 1e6, 2) + " M/s";
  if (per_s >= 1e3) return fixed(per_s / 1e3, 1) + " k/s";
  return fixed(per_s, 0) + " /s";
}

// ---- the broker, seen through nats.c directly (setup and progress only) ----

class Admin {
 public:
  explicit Admin(const std::string& url) {
    natsOptions* o = nullptr;
    natsOptions_Create(&o);
    natsOptions_SetURL(o, url.c_str());
    natsOptions_SetTimeout(o, 5000);
    const natsStatus s = natsConnection_Connect(&nc_, o);
    natsOptions_Destroy(o);
    if (s != NATS_OK) {
      throw std::runtime_error("--broker: cannot connect to " + redacted_argument(url) + ": " +
                               natsStatus_GetText(s));
    }
    natsConnection_JetStream(&js_, nc_, nullptr);
  }
  ~Admin() {
    jsCtx_Destroy(js_);
    natsConnection_Destroy(nc_);
  }
  Admin(const Admin&) = delete;
  Admin& operator=(const Admin&) = delete;

  void create(const std::string& stream, const std::string& consumer, std::size_t ack_pending) {
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = stream.c_str();
    const std::string subjects = stream + ".>";
    const char* subj[] = {subjects.c_str()};
    sc.Subjects = subj;
    sc.SubjectsLen = 1;
    sc.Storage = js_MemoryStorage;
    jsStreamInfo* si = nullptr;
    natsStatus s = js_AddStream(&si, js_, &sc, nullptr, nullptr);
    jsStreamInfo_Destroy(si);
    if (s != NATS_OK) {
      throw std::runtime_error("--broker: cannot create stream " + stream + " (is JetStream " +
                               "enabled on the server?): " + natsStatus_GetText(s));
    }
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = consumer.c_str();
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = 30'000'000'000;
    cc.MaxDeliver = 5;
    cc.MaxAckPending = static_cast<std::int64_t>(ack_pending);
    jsConsumerInfo* ci = nullptr;
    s = js_AddConsumer(&ci, js_, stream.c_str(), &cc, nullptr, nullptr);
    jsConsumerInfo_Destroy(ci);
    if (s != NATS_OK) {
      throw std::runtime_error("--broker: cannot create consumer: " +
                               std::string(natsStatus_GetText(s)));
    }
  }
  void remove(const std::string& stream) {
    (void)js_DeleteStream(js_, stream.c_str(), nullptr, nullptr);
  }
  // Acknowledged-so-far (the ack floor), and whether everything published is acknowledged.
  bool done(const std::string& stream, const std::string& consumer, std::uint64_t& ack_floor) {
    jsConsumerInfo* ci = nullptr;
    if (js_GetConsumerInfo(&ci, js_, stream.c_str(), consumer.c_str(), nullptr, nullptr) !=
        NATS_OK) {
      return false;
    }
    ack_floor = ci->AckFloor.Stream;
    const bool all = ci->NumPending == 0 && ci->NumAckPending == 0;
    jsConsumerInfo_Destroy(ci);
    return all;
  }

 private:
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
};

// ---- worker processes ----

struct Worker {
  pid_t pid = -1;
  int in = -1;   // its stdin (we write nothing; closing it means "stop")
  int out = -1;  // its stdout: "ready", then one JSON line
  std::string buffer;

  // The next line, or nullopt on EOF / after `limit`.
  std::optional<std::string> line(std::chrono::milliseconds limit) {
    const auto end = Clock::now() + limit;
    for (;;) {
      const auto nl = buffer.find('\n');
      if (nl != std::string::npos) {
        std::string l = buffer.substr(0, nl);
        buffer.erase(0, nl + 1);
        return l;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{out, POLLIN, 0};
      const int r = poll(&p, 1, static_cast<int>(left.count()));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return std::nullopt;
      char buf[1 << 16];
      const ssize_t got = read(out, buf, sizeof buf);
      if (got <= 0) return std::nullopt;
      buffer.append(buf, static_cast<std::size_t>(got));
    }
  }
};

// The broker URL reaches a worker through its environment, not its argv: a URL may hold a
// password, and every local user can read a process's argv (ps), not its environment.
constexpr const char* kBrokerUrlVariable = "PUSHSTAGE_BENCH_BROKER_URL";

Worker spawn_worker(const std::vector<std::string>& args, const std::string& broker_url) {
  int in[2];
  int out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
    throw std::runtime_error("--broker: pipe2 failed");
  }
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const std::string url_entry = std::string(kBrokerUrlVariable) + "=" + broker_url;
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, kBrokerUrlVariable, std::strlen(kBrokerUrlVariable)) != 0) {
      envp.push_back(*e);
    }
  }
  envp.push_back(const_cast<char*>(url_entry.c_str()));
  envp.push_back(nullptr);
  const pid_t parent = getpid();
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("--broker: fork failed");
  if (pid == 0) {  // async-signal-safe calls only until exec: this process has nats.c threads
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(in[0], 0);
    dup2(out[1], 1);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  return Worker{pid, in[1], out[0], {}};
}

struct ProcessResult {
  bool ok = false;
  std::string failure;
  std::uint64_t handled = 0;
  std::vector<std::uint32_t> ids;
  pushstage::Histogram latency;
  std::int64_t first_start = 0;
  std::int64_t last_end = 0;
  std::uint64_t fetches = 0;
  std::uint64_t redelivered = 0;
  std::uint64_t max_in_flight = 0;
  std::int64_t cpu_ns = 0;
  std::vector<std::uint64_t> consumer_events;
};

ProcessResult parse_result(const std::string& line) {
  ProcessResult r;
  const nlohmann::json j = nlohmann::json::parse(line);
  r.handled = j.at("handled").get<std::uint64_t>();
  r.ids = j.at("ids").get<std::vector<std::uint32_t>>();
  r.latency = histogram_from_json(j.at("latency"));
  r.first_start = j.at("first_start").get<std::int64_t>();
  r.last_end = j.at("last_end").get<std::int64_t>();
  r.fetches = j.at("fetches").get<std::uint64_t>();
  r.redelivered = j.at("redelivered").get<std::uint64_t>();
  r.max_in_flight = j.at("max_in_flight").get<std::uint64_t>();
  r.cpu_ns = j.at("cpu_ns").get<std::int64_t>();
  r.consumer_events = j.at("consumer_events").get<std::vector<std::uint64_t>>();
  r.ok = true;
  return r;
}

struct CaseOutcome {
  std::size_t processes = 0;
  std::size_t rep = 0;
  bool ok = true;
  std::string failure;
  std::vector<ProcessResult> per_process;
  pushstage::Histogram latency;
  std::int64_t span_ns = 0;
  double throughput = 0;
  double publish_rate = 0;
  double jain = 1;
  double max_min = 1;
  std::uint64_t lost = 0;
  std::uint64_t duplicates = 0;
};

std::string pct(const pushstage::Histogram& h, double p) {
  return h.count() == 0 ? "-" : format_ns(static_cast<double>(h.value_at_percentile(p)));
}

CaseOutcome run_case(const BrokerSpec& spec, Admin& admin, std::size_t processes, std::size_t rep,
                     std::size_t case_no) {
  CaseOutcome c;
  c.processes = processes;
  c.rep = rep;
  const std::string stream = "PSBENCH_" + std::to_string(getpid()) + "_" + std::to_string(case_no);
  const std::string consumer = "workers";
  const std::size_t demand = processes * spec.consumers * spec.max_demand;
  admin.create(stream, consumer, std::max<std::size_t>(demand, 1000));

  std::vector<Worker> workers;
  auto stop_all = [&] {
    for (Worker& w : workers) {
      if (w.in >= 0) close(w.in);
      w.in = -1;
    }
  };
  for (std::size_t i = 0; i < processes; ++i) {
    workers.push_back(spawn_worker(
        {spec.self, "--broker-worker", "-", stream, consumer, std::to_string(spec.consumers),
         std::to_string(spec.max_demand), spec.work_mode == WorkMode::kSpin ? "spin" : "sleep",
         spec.pin ? "pin" : "no-pin"},
        spec.url));
  }
  for (Worker& w : workers) {
    const auto l = w.line(30s);
    if (!l || *l != "ready") {
      c.ok = false;
      c.failure = "a worker did not start (see its message above)";
    }
  }

  std::int64_t t0 = 0;
  if (c.ok) {
    pushstage::nats::SinkOptions so;
    so.connection.url = spec.url;
    so.subject = stream + ".events";
    so.max_in_flight = 1024;
    pushstage::nats::Sink sink(so);
    std::mt19937_64 rng(spec.seed + rep);
    t0 = now_ns();
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
      const int n = std::snprintf(payload, sizeof payload, "%zu %lld %lld", i,
                                  static_cast<long long>(now_ns()),
                                  static_cast<long long>(spec.work.sample(rng)));
      sink.publish(std::string_view(payload, static_cast<std::size_t>(n)));
    }
    const std::int64_t published = now_ns();
    c.publish_rate = static_cast<double>(spec.events) * 1e9 / static_cast<double>(published - t0);
    if (!sink.flush(60s) || sink.stats().failed != 0) {
      c.ok = false;
      c.failure = "publishing failed: " + std::to_string(sink.stats().failed) + " not stored";
    }
    // Until the broker has every event acknowledged; fail after 30 s without progress.
    std::uint64_t floor = 0;
    std::uint64_t last_floor = 0;
    auto last_progress = Clock::now();
    while (c.ok && !admin.done(stream, consumer, floor)) {
      if (floor != last_floor) {
        last_floor = floor;
        last_progress = Clock::now();
      } else if (Clock::now() - last_progress > 30s) {
        c.ok = false;
        c.failure = "no progress for 30 s (acknowledged up to " + std::to_string(floor) + " of " +
                    std::to_string(spec.events) + ")";
      }
      std::this_thread::sleep_for(10ms);
    }
  }
  stop_all();
  for (Worker& w : workers) {
    ProcessResult r;
    std::optional<std::string> l = w.line(60s);
    if (l) {
      try {
        r = parse_result(*l);
      } catch (const std::exception& e) {
        r.failure = std::string("unreadable result: ") + e.what();
      }
    } else {
      r.failure = "no result";
    }
    int status = 0;
    while (waitpid(w.pid, &status, 0) < 0 && errno == EINTR) {
    }
    close(w.out);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      r.ok = false;
      r.failure = "worker exited with status " + std::to_string(status);
    }
    if (!r.ok && c.ok) {
      c.ok = false;
      c.failure = "a worker failed: " + r.failure;
    }
    c.per_process.push_back(std::move(r));
  }
  admin.remove(stream);

  // Every event at least once; duplicates allowed and counted.
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
    c.ok = false;
    c.failure =
        std::to_string(d.missing) + " events lost (first: " + std::to_string(d.first_missing) + ")";
  }
  c.span_ns = end - t0;
  c.throughput =
      c.span_ns > 0 ? static_cast<double>(all.size()) * 1e9 / static_cast<double>(c.span_ns) : 0;
  c.jain = jain_index(counts);
  c.max_min = spread(counts);
  return c;
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
    const double tput =
        c.span_ns > 0 ? static_cast<double>(r.handled) * 1e9 / static_cast<double>(c.span_ns) : 0;
    std::snprintf(
        line, sizeof line, "  %-8zu %9llu %6.1f%% %12s %9s %9s %9s %9s %8llu %6llu %9s\n", i + 1,
        static_cast<unsigned long long>(r.handled), share, rate_text(tput).c_str(),
        pct(r.latency, 50).c_str(), pct(r.latency, 90).c_str(), pct(r.latency, 99).c_str(),
        pct(r.latency, 100).c_str(), static_cast<unsigned long long>(r.fetches),
        static_cast<unsigned long long>(r.max_in_flight),
        r.handled == 0
            ? "-"
            : format_ns(static_cast<double>(r.cpu_ns) / static_cast<double>(r.handled)).c_str());
    out << line;
  }
  std::snprintf(line, sizeof line, "  %-8s %9llu %6.1f%% %12s %9s %9s %9s %9s\n", "total",
                static_cast<unsigned long long>(total), 100.0, rate_text(c.throughput).c_str(),
                pct(c.latency, 50).c_str(), pct(c.latency, 90).c_str(), pct(c.latency, 99).c_str(),
                pct(c.latency, 100).c_str());
  out << line;
  out << "  fairness over processes: Jain " << fixed(c.jain, 3) << ", max/min "
      << fixed(c.max_min, 2) << "; lost " << c.lost << ", duplicates " << c.duplicates << "; span "
      << format_ns(static_cast<double>(c.span_ns)) << ", published at " << rate_text(c.publish_rate)
      << "\n";
}

nlohmann::json outcome_json(const CaseOutcome& c) {
  nlohmann::json per = nlohmann::json::array();
  for (const ProcessResult& r : c.per_process) {
    per.push_back({{"handled", r.handled},
                   {"latency_ns", histogram_to_json(r.latency)},
                   {"p50_ns", r.latency.value_at_percentile(50)},
                   {"p99_ns", r.latency.value_at_percentile(99)},
                   {"throughput", c.span_ns > 0 ? static_cast<double>(r.handled) * 1e9 /
                                                      static_cast<double>(c.span_ns)
                                                : 0},
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

}  // namespace

BrokerReport run_broker(const BrokerSpec& spec, std::ostream& out) {
  Admin admin(spec.url);
  out << "broker " << redacted_argument(spec.url)
      << ": stream in memory, one durable pull consumer shared by every "
      << "process; " << spec.events << " events per case, "
      << (spec.rate > 0 ? "published at " + rate_text(spec.rate)
                        : std::string("all published at once"))
      << "; work " << spec.work.text << " ("
      << (spec.work_mode == WorkMode::kSpin ? "spin" : "sleep")
      << ")\nlatency = handler start - publish (through the broker); throughput = events / (first "
      << "publish to last handler end); max-if = most messages in flight in that process\n";
  out.flush();
  BrokerReport report;
  report.json = nlohmann::json::array();
  std::vector<CaseOutcome> outcomes;
  std::size_t case_no = 0;
  for (const std::size_t p : spec.processes) {
    for (std::size_t rep = 0; rep < spec.reps; ++rep) {
      CaseOutcome c = run_case(spec, admin, p, rep, case_no++);
      print_outcome(out, spec, c);
      out.flush();
      report.ok = report.ok && c.ok;
      report.json.push_back(outcome_json(c));
      outcomes.push_back(std::move(c));
    }
  }
  if (outcomes.size() > 1) {
    out << "\nscale-out (total throughput relative to the first case):\n";
    for (const CaseOutcome& c : outcomes) {
      out << "  " << c.processes << " process" << (c.processes == 1 ? ": " : "es: ")
          << rate_text(c.throughput) << "  x"
          << fixed(outcomes.front().throughput > 0 ? c.throughput / outcomes.front().throughput : 0,
                   2)
          << "  p50 " << pct(c.latency, 50) << "  p99 " << pct(c.latency, 99) << "  Jain "
          << fixed(c.jain, 3) << "\n";
    }
  }
  return report;
}

int broker_worker_main(const std::vector<std::string>& args) {
  if (args.size() != 7) {
    std::fprintf(stderr,
                 "pushstage-bench --broker-worker URL|- STREAM CONSUMER CONSUMERS MAX_DEMAND "
                 "spin|sleep pin|no-pin (started by --broker; -: the URL is in $%s)\n",
                 kBrokerUrlVariable);
    return 2;
  }
  const WorkMode mode = args[5] == "spin" ? WorkMode::kSpin : WorkMode::kSleep;
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

  // One slot per consumer thread, claimed on its first event; read after the pool has joined.
  struct Slot {
    pushstage::Histogram latency;
    std::vector<std::uint32_t> ids;
    std::int64_t first_start = std::numeric_limits<std::int64_t>::max();
    std::int64_t last_end = 0;
  };
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
    const pushstage::nats::SourceStats st = pipeline.source_stats();
    pushstage::Histogram latency;
    std::vector<std::uint32_t> ids;
    std::int64_t first = std::numeric_limits<std::int64_t>::max();
    std::int64_t last = 0;
    std::vector<std::uint64_t> per_consumer;
    for (const auto& s : slots) {
      latency.merge(s->latency);
      ids.insert(ids.end(), s->ids.begin(), s->ids.end());
      first = std::min(first, s->first_start);
      last = std::max(last, s->last_end);
      per_consumer.push_back(s->ids.size());
    }
    const nlohmann::json j = {
        {"handled", ids.size()},
        {"ids", ids},
        {"latency", histogram_to_json(latency)},
        {"first_start", first == std::numeric_limits<std::int64_t>::max() ? 0 : first},
        {"last_end", last},
        {"fetches", st.fetches},
        {"redelivered", st.redelivered},
        {"max_in_flight", st.max_in_flight},
        {"cpu_ns", process_cpu_ns()},
        {"consumer_events", per_consumer}};
    std::printf("%s\n", j.dump().c_str());
    std::fflush(stdout);
    return 0;
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "pushstage-bench worker %d: %s\n", static_cast<int>(getpid()), ex.what());
    return 1;
  }
}

}  // namespace pushstage::bench
