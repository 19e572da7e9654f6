// exporter.cpp: pushstage::prometheus (pushstage/prometheus/exporter.hpp). Counters and gauges are
// read from a Topology captured at each scrape (so every listed component is exported, observed or
// not); histograms and calls in flight come from the Recorder, an Observer that keeps one set of
// series per component name and kind. The dashboard ("/") and "/topology.json" are answered by
// civetweb's begin_request callback, before prometheus-cpp's handlers see the request: civetweb
// gives the callback no pointer of ours, so exporters are found by their listening port.
#include "pushstage/prometheus/exporter.hpp"

#include <CivetServer.h>  // CivetCallbacks
#include <civetweb.h>
#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <chrono>
#include <cmath>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../observe/text.hpp"
#include "basic_auth.hpp"
#include "pushstage/observe/topology.hpp"

namespace pushstage::prometheus::detail {
extern const char kDashboardHtml[];  // dashboard.html, embedded at build time
}  // namespace pushstage::prometheus::detail

namespace pushstage::prometheus {
namespace {

namespace pm = ::prometheus;

double seconds(std::chrono::nanoseconds ns) { return static_cast<double>(ns.count()) * 1e-9; }

// Label values must be UTF-8; a name a user gave may not be.
std::string label_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    const pushstage::detail::CodePoint c = pushstage::detail::decode_utf8(text);
    text.remove_prefix(c.bytes);
    pushstage::detail::append_utf8(out, c.value);
  }
  return out;
}

double quantile(const pm::ClientMetric::Histogram& h, double q);

pm::Histogram::BucketBoundaries exponential(double first, double factor, std::size_t count) {
  pm::Histogram::BucketBoundaries b;
  for (double v = first; b.size() < count; v *= factor) b.push_back(v);
  return b;
}

// Observes components given Exporter::observer(). Series are kept per (name, kind) for the
// Recorder's life: a component that is destroyed and built again under its name goes on with them
// (a name freed by one component may be taken by another before the first is detached).
class Recorder final : public Observer {
 public:
  explicit Recorder(std::shared_ptr<pm::Registry> registry)
      : registry_(std::move(registry)),
        in_flight_(pm::BuildGauge()
                       .Name("pushstage_in_flight")
                       .Help("Handler calls running now")
                       .Register(*registry_)),
        duration_(pm::BuildHistogram()
                      .Name("pushstage_handler_duration_seconds")
                      .Help("Duration of handler calls (a Batcher: of each batch)")
                      .Register(*registry_)),
        latency_(pm::BuildHistogram()
                     .Name("pushstage_dispatch_latency_seconds")
                     .Help("From push to the handler call, for events that carry their push time")
                     .Register(*registry_)),
        size_(pm::BuildHistogram()
                  .Name("pushstage_batch_size")
                  .Help("Events per handler call (a Batcher: per batch)")
                  .Register(*registry_)) {}

  void* attached(const ComponentInfo& c) noexcept override {
    try {
      const std::lock_guard lock(mutex_);
      std::unique_ptr<Series>& s = series_[{c.name, c.kind}];
      if (!s) {
        const pm::Labels labels{{"component", label_text(c.name)},
                                {"kind", std::string(to_string(c.kind))}};
        s = std::make_unique<Series>(Series{
            &in_flight_.Add(labels),
            &duration_.Add(labels, exponential(1e-6, 4, 13)),  // 1 us .. 16.8 s
            &latency_.Add(labels, exponential(1e-6, 4, 13)),
            &size_.Add(labels, exponential(1, 4, 9)),  // 1 .. 65536
        });
      }
      return s.get();
    } catch (...) {
      return nullptr;  // out of memory: this component goes unrecorded rather than terminating
    }
  }

  // The handler duration's p50 and p99 over the component's life, interpolated in its buckets;
  // nullopt before its first call.
  std::optional<std::pair<double, double>> handler_percentiles(const std::string& name,
                                                               ComponentKind kind) {
    pm::ClientMetric m;
    {
      const std::lock_guard lock(mutex_);
      const auto it = series_.find({name, kind});
      if (it == series_.end()) return std::nullopt;
      m = it->second->duration->Collect();
    }
    if (m.histogram.sample_count == 0) return std::nullopt;
    return std::pair{quantile(m.histogram, 0.5), quantile(m.histogram, 0.99)};
  }

  void on_event(const TelemetryEvent& e) noexcept override {
    auto* s = static_cast<Series*>(e.component.observer_state);
    if (s == nullptr) return;
    switch (e.what) {
      case Telemetry::HandlerStart:
        s->in_flight->Increment();
        if (e.attempt == 1) s->size->Observe(static_cast<double>(e.count));
        if (e.dispatch_latency.count() >= 0) s->latency->Observe(seconds(e.dispatch_latency));
        break;
      case Telemetry::HandlerStop:
      case Telemetry::HandlerException:
        s->in_flight->Decrement();
        s->duration->Observe(seconds(e.duration));
        break;
      case Telemetry::BatchStart:
        s->size->Observe(static_cast<double>(e.count));
        break;
      case Telemetry::BatchStop:
        s->duration->Observe(seconds(e.duration));
        break;
      default:
        break;  // counted from the Topology's stats
    }
  }

 private:
  struct Series {
    pm::Gauge* in_flight;
    pm::Histogram* duration;
    pm::Histogram* latency;
    pm::Histogram* size;
  };

  std::shared_ptr<pm::Registry> registry_;  // owns the families below
  pm::Family<pm::Gauge>& in_flight_;
  pm::Family<pm::Histogram>& duration_;
  pm::Family<pm::Histogram>& latency_;
  pm::Family<pm::Histogram>& size_;
  std::mutex mutex_;
  std::map<std::pair<std::string, ComponentKind>, std::unique_ptr<Series>> series_;
};

// The q-quantile of a histogram's samples, linear within the bucket it falls in (the bucket's upper
// bound when that is +Inf).
double quantile(const pm::ClientMetric::Histogram& h, double q) {
  const double rank = q * static_cast<double>(h.sample_count);
  double lower = 0;
  std::uint64_t below = 0;
  for (const pm::ClientMetric::Bucket& b : h.bucket) {
    if (static_cast<double>(b.cumulative_count) >= rank) {
      if (!std::isfinite(b.upper_bound)) return lower;
      const auto in = static_cast<double>(b.cumulative_count - below);
      return in == 0 ? b.upper_bound
                     : lower + (b.upper_bound - lower) * (rank - static_cast<double>(below)) / in;
    }
    lower = b.upper_bound;
    below = b.cumulative_count;
  }
  return lower;
}

// Counters and gauges of every listed component, read at each scrape.
class TopologyCollector final : public pm::Collectable {
 public:
  std::vector<pm::MetricFamily> Collect() const override {
    const Topology t = Topology::capture();
    Families f;
    for (const ComponentSnapshot& c : t.components) {
      const std::vector<pm::ClientMetric::Label> labels{{"component", label_text(c.name)},
                                                        {"kind", std::string(to_string(c.kind))}};
      if (c.buffer) {
        const DispatcherStats& b = *c.buffer;
        f.add("pushstage_pushed_total", labels, b.pushed);
        f.add("pushstage_popped_total", labels, b.popped);
        f.add("pushstage_dropped_total", labels, b.dropped);
        f.add("pushstage_rejected_total", with(labels, "reason", "full"), b.rejected);
        f.add("pushstage_rejected_total", with(labels, "reason", "closed"), b.refused_closed);
        f.add("pushstage_buffered", labels, b.buffered);
        f.add("pushstage_capacity", labels, c.capacity);
        f.add("pushstage_parked", labels, b.parked);
        f.add("pushstage_spinning", labels, b.spinning);
      }
      if (c.pool) {
        const PoolSnapshot& p = *c.pool;
        f.add("pushstage_handled_total", labels, p.handled);
        f.add("pushstage_failed_total", labels, p.failed);
        f.add("pushstage_retried_total", labels, p.retried);
        f.add("pushstage_expired_total", labels, p.expired);
        f.add("pushstage_consumers", labels, p.consumers);
        f.add("pushstage_demand", labels, p.demand);
      }
      if (c.batches) f.add("pushstage_batches_total", labels, c.batches->batches);
    }
    return std::move(f.out);
  }

 private:
  struct Spec {
    const char* name;
    const char* help;
    pm::MetricType type;
  };
  static constexpr Spec kSpecs[] = {
      {"pushstage_pushed_total", "Events accepted by push", pm::MetricType::Counter},
      {"pushstage_popped_total", "Events taken by consumers", pm::MetricType::Counter},
      {"pushstage_dropped_total", "Events dropped undelivered (DropOldest, destruction)",
       pm::MetricType::Counter},
      {"pushstage_rejected_total", "Pushes refused: full (Reject) or closed",
       pm::MetricType::Counter},
      {"pushstage_buffered", "Events buffered now", pm::MetricType::Gauge},
      {"pushstage_capacity", "Events the buffer may hold (0: unbounded)", pm::MetricType::Gauge},
      {"pushstage_parked", "Consumers parked waiting for events", pm::MetricType::Gauge},
      {"pushstage_spinning", "Consumers spinning before they park", pm::MetricType::Gauge},
      {"pushstage_handled_total", "Events handled", pm::MetricType::Counter},
      {"pushstage_failed_total", "Events that failed for good (dead letters)",
       pm::MetricType::Counter},
      {"pushstage_retried_total", "Handler calls repeated after a failure",
       pm::MetricType::Counter},
      {"pushstage_expired_total", "Events past their deadline", pm::MetricType::Counter},
      {"pushstage_consumers", "Consumers the pool runs", pm::MetricType::Gauge},
      {"pushstage_demand", "Manual demand asked for and not yet used", pm::MetricType::Gauge},
      {"pushstage_batches_total", "Batches a Batcher flushed", pm::MetricType::Counter},
  };

  // One family per name, in kSpecs order, each listed once even when empty of series.
  struct Families {
    std::vector<pm::MetricFamily> out;
    Families() {
      for (const Spec& s : kSpecs) out.push_back({s.name, s.help, s.type, {}});
    }
    void add(std::string_view name, std::vector<pm::ClientMetric::Label> labels,
             std::uint64_t value) {
      for (pm::MetricFamily& family : out) {
        if (family.name != name) continue;
        pm::ClientMetric m;
        m.label = std::move(labels);
        if (family.type == pm::MetricType::Counter) {
          m.counter.value = static_cast<double>(value);
        } else {
          m.gauge.value = static_cast<double>(value);
        }
        family.metric.push_back(std::move(m));
        return;
      }
    }
  };

  static std::vector<pm::ClientMetric::Label> with(std::vector<pm::ClientMetric::Label> labels,
                                                   std::string name, std::string value) {
    labels.push_back({std::move(name), std::move(value)});
    return labels;
  }
};

void check(const ExporterOptions& o) {
  if (o.bind.empty()) throw std::invalid_argument("ExporterOptions::bind must not be empty");
  if (o.threads < 1 || o.threads > 64) {
    throw std::invalid_argument("ExporterOptions::threads must be in [1, 64]; got " +
                                std::to_string(o.threads));
  }
  if (o.user.find(':') != std::string::npos) {
    throw std::invalid_argument("ExporterOptions::user must not contain ':'");
  }
  if (o.user.empty() && !o.password.empty()) {
    throw std::invalid_argument("ExporterOptions::password needs ExporterOptions::user");
  }
}

// What the dashboard's pages of one exporter need.
struct Pages {
  std::string user;  // empty: no authentication
  std::string password;
  Recorder* recorder;
};

// Exporters by listening port. Held while a page is answered: an exporter leaves it before its
// server stops, so no page reads an exporter being destroyed.
std::mutex pages_mutex;
std::map<int, const Pages*> pages_by_port;

void answer(mg_connection* conn, int status, const char* reason, const char* type,
            const std::string& body, const char* extra_headers = "") {
  const mg_request_info* ri = mg_get_request_info(conn);
  const bool head = ri->request_method != nullptr && std::string_view(ri->request_method) == "HEAD";
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
            "Content-Security-Policy: default-src 'self'; script-src 'unsafe-inline'; "
            "style-src 'unsafe-inline'\r\n%sConnection: close\r\n\r\n",
            status, reason, type, body.size(), extra_headers);
  if (!head) mg_write(conn, body.data(), body.size());
}

std::string topology_json(Recorder& recorder) {
  Topology t = Topology::capture();
  for (ComponentSnapshot& c : t.components) {
    if (const auto p = recorder.handler_percentiles(c.name, c.kind)) {
      c.metrics.emplace_back("handler_p50_seconds", p->first);
      c.metrics.emplace_back("handler_p99_seconds", p->second);
    }
  }
  return t.to_json();
}

// civetweb's begin_request: answers "/", "/index.html" and "/topology.json" (0: not ours, civetweb
// goes on to /metrics or 404). Read-only: GET and HEAD only.
int begin_request(mg_connection* conn) noexcept {
  try {
    const mg_request_info* ri = mg_get_request_info(conn);
    const std::string_view uri = ri->local_uri != nullptr ? ri->local_uri : "";
    const bool json = uri == "/topology.json";
    if (!json && uri != "/" && uri != "/index.html") return 0;
    const std::lock_guard lock(pages_mutex);
    const auto it = pages_by_port.find(ri->server_port);
    if (it == pages_by_port.end()) {
      answer(conn, 503, "Service Unavailable", "text/plain", "starting\n");
      return 503;
    }
    const Pages& pages = *it->second;
    if (!pages.user.empty()) {
      const char* header = mg_get_header(conn, "Authorization");
      const auto given = header != nullptr ? detail::parse_basic_auth(header) : std::nullopt;
      // Both compared, whatever the first gives: the time says nothing about which was wrong.
      const bool user_ok = given && detail::same_secret(given->user, pages.user);
      const bool password_ok = given && detail::same_secret(given->password, pages.password);
      if (!user_ok || !password_ok) {
        answer(conn, 401, "Unauthorized", "text/plain", "authentication required\n",
               "WWW-Authenticate: Basic realm=\"pushstage\", charset=\"UTF-8\"\r\n");
        return 401;
      }
    }
    const std::string_view method = ri->request_method != nullptr ? ri->request_method : "";
    if (method != "GET" && method != "HEAD") {
      answer(conn, 405, "Method Not Allowed", "text/plain", "read-only\n", "Allow: GET, HEAD\r\n");
      return 405;
    }
    if (json) {
      answer(conn, 200, "OK", "application/json", topology_json(*pages.recorder));
    } else {
      answer(conn, 200, "OK", "text/html; charset=utf-8", detail::kDashboardHtml);
    }
    return 200;
  } catch (...) {
    mg_send_http_error(conn, 500, "%s", "internal error");
    return 500;
  }
}

std::unique_ptr<pm::Exposer> expose(const ExporterOptions& o) {
  static const CivetCallbacks callbacks = [] {
    CivetCallbacks c;
    c.begin_request = begin_request;
    return c;
  }();
  try {
    return std::make_unique<pm::Exposer>(
        std::vector<std::string>{"listening_ports", o.bind, "num_threads",
                                 std::to_string(o.threads)},
        &callbacks);
  } catch (const std::exception& e) {
    // civetweb's reason may name the address; it never contains the credentials.
    throw std::runtime_error("pushstage::prometheus::Exporter: cannot listen on " + o.bind + ": " +
                             e.what());
  }
}

}  // namespace

struct Exporter::Impl {
  std::shared_ptr<pm::Registry> registry = std::make_shared<pm::Registry>();
  std::shared_ptr<TopologyCollector> topology = std::make_shared<TopologyCollector>();
  std::shared_ptr<Recorder> recorder = std::make_shared<Recorder>(registry);
  Pages pages;
  std::vector<int> ports;  // where pages_by_port lists it
  std::unique_ptr<pm::Exposer> exposer;
};

Exporter::Exporter(ExporterOptions options) : impl_(std::make_unique<Impl>()) {
  check(options);
  impl_->exposer = expose(options);
  if (!options.user.empty()) {
    // Both compared whole; the callback only ever sees what civetweb decoded from the request.
    impl_->exposer->RegisterAuth(
        [user = options.user, password = options.password](
            const std::string& u, const std::string& p) { return u == user && p == password; },
        "pushstage");
  }
  impl_->exposer->RegisterCollectable(impl_->topology);
  impl_->exposer->RegisterCollectable(impl_->registry);
  impl_->pages = Pages{options.user, options.password, impl_->recorder.get()};
  impl_->ports = impl_->exposer->GetListeningPorts();
  const std::lock_guard lock(pages_mutex);
  for (const int port : impl_->ports) pages_by_port[port] = &impl_->pages;
}

Exporter::~Exporter() {
  const std::lock_guard lock(pages_mutex);  // waits for a page being answered
  for (const int port : impl_->ports) pages_by_port.erase(port);
}

std::uint16_t Exporter::port() const {
  const std::vector<int> ports = impl_->exposer->GetListeningPorts();
  return ports.empty() ? 0 : static_cast<std::uint16_t>(ports.front());
}

std::shared_ptr<Observer> Exporter::observer() const noexcept { return impl_->recorder; }

}  // namespace pushstage::prometheus
