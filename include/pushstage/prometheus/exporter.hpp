// pushstage/prometheus/exporter.hpp: the pipeline's metrics for Prometheus (component
// pushstage::prometheus, built when prometheus-cpp is found; `find_package(pushstage COMPONENTS
// prometheus)`). An Exporter serves, over HTTP on `/metrics`, through prometheus-cpp's Exposer:
//   from the Topology (every listed component, observed or not), labels component="<name>",
//   kind="<kind>":
//     counters  pushstage_pushed_total, pushstage_popped_total, pushstage_dropped_total,
//               pushstage_rejected_total{reason="full"|"closed"}, pushstage_handled_total,
//               pushstage_failed_total, pushstage_retried_total, pushstage_expired_total,
//               pushstage_batches_total
//     gauges    pushstage_buffered, pushstage_capacity, pushstage_parked, pushstage_spinning,
//               pushstage_consumers, pushstage_demand
//   from its observer (components given observer() in their options):
//     gauge     pushstage_in_flight (handler calls running now)
//     histograms pushstage_handler_duration_seconds, pushstage_dispatch_latency_seconds (events
//               with pushstage_pushed_at(), observe/observer.hpp), pushstage_batch_size (events per
//               handler call, and per Batcher batch)
//   and next to it, the dashboard: "/" (src/prometheus/dashboard.html: every component as a card,
//   in columns from sources to sinks, with throughput, buffer fill, demand, drops and, for
//   observed pools, handler p50/p99 over their life; it refreshes itself every second) and
//   "/topology.json" (Topology::to_json() plus metrics handler_p50_seconds, handler_p99_seconds).
//
// Security:  listens on 127.0.0.1 unless ExporterOptions::bind says otherwise; with a user set,
//            every request needs HTTP basic authentication (to every page). Read-only: no request
//            changes the pipeline (the pages answer GET and HEAD only). Names a user gave are
//            escaped: label values by the exposition format, JSON strings with <, > and & as \u
//            escapes, and the page sets every text as text, never as markup.
// Threading: the HTTP server runs its own threads; observer() may be shared by any components, on
//            any threads. Components may outlive the Exporter (the observer stays valid while any
//            holds it; what it records after the Exporter is gone is simply never served).
// Failure:   the constructor throws std::invalid_argument for invalid options (naming the field)
//            and std::runtime_error when the address cannot be bound.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "pushstage/observe/observer.hpp"

namespace pushstage::prometheus {

struct ExporterOptions {
  // host:port to listen on; port 0 picks a free one (port() tells which). Not empty.
  std::string bind = "127.0.0.1:9464";
  // HTTP basic authentication: when user is not empty, requests without this user and password
  // are answered 401. user must not contain ':'.
  std::string user;
  std::string password;
  // Threads serving HTTP requests, in [1, 64].
  unsigned threads = 2;
};

class Exporter {
 public:
  explicit Exporter(ExporterOptions options = {});
  ~Exporter();
  Exporter(const Exporter&) = delete;
  Exporter& operator=(const Exporter&) = delete;

  // The port it listens on.
  [[nodiscard]] std::uint16_t port() const;
  // An observer that records handler durations, batch sizes, dispatch latencies and calls in
  // flight: give it to components (DispatcherOptions::observer, PoolOptions::observer,
  // BatcherOptions::observer). The same one every call.
  [[nodiscard]] std::shared_ptr<Observer> observer() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pushstage::prometheus
