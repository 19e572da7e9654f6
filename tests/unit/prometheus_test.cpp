// prometheus_test.cpp: pushstage::prometheus served over real HTTP on a loopback port: the values
// scraped from /metrics are what the test did (pushes, refusals, handler calls, histograms), names
// a user gave come out escaped, basic authentication refuses what it must, and the default address
// is loopback only.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "pushstage/prometheus/exporter.hpp"
#include "pushstage/pushstage.hpp"

namespace pushstage::prometheus {
namespace {

struct Reply {
  int status = 0;
  std::string body;
};

// One HTTP/1.0 request (GET unless told) to 127.0.0.1:port; `headers` are extra header lines
// ("Name: value").
Reply get(std::uint16_t port, const std::string& path, const std::vector<std::string>& headers = {},
          const std::string& method = "GET") {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket");
  timeval guard{30, 0};  // against a hang only
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &guard, sizeof guard);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    throw std::runtime_error("connect");
  }
  std::string request = method + " " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n";
  for (const std::string& h : headers) request += h + "\r\n";
  request += "\r\n";
  for (std::size_t sent = 0; sent < request.size();) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
  }
  std::string raw;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;)
    raw.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  Reply r;
  if (raw.rfind("HTTP/1.", 0) == 0 && raw.size() > 12) r.status = std::stoi(raw.substr(9, 3));
  if (const auto end = raw.find("\r\n\r\n"); end != std::string::npos) r.body = raw.substr(end + 4);
  return r;
}

std::string base64(const std::string& in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  // Byte k of `in` as a 32-bit value (0 past the end).
  auto byte = [&](std::size_t k) -> std::uint32_t {
    return k < in.size() ? static_cast<unsigned char>(in[k]) : 0U;
  };
  std::string out;
  for (std::size_t i = 0; i < in.size(); i += 3) {
    const std::uint32_t v = (byte(i) << 16U) | (byte(i + 1) << 8U) | byte(i + 2);
    out += kAlphabet[(v >> 18U) & 0x3FU];
    out += kAlphabet[(v >> 12U) & 0x3FU];
    out += i + 1 < in.size() ? kAlphabet[(v >> 6U) & 0x3FU] : '=';
    out += i + 2 < in.size() ? kAlphabet[v & 0x3FU] : '=';
  }
  return out;
}

// The value of the sample `name{...}` whose labels include every one of `labels` ("k=\"v\"").
std::optional<double> sample(const std::string& body, const std::string& name,
                             std::initializer_list<std::string> labels) {
  std::istringstream lines(body);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(name + "{", 0) != 0) continue;
    const auto close = line.rfind('}');
    if (close == std::string::npos) continue;
    const std::string set = line.substr(name.size(), close - name.size() + 1);
    bool all = true;
    for (const std::string& l : labels) all = all && set.find(l) != std::string::npos;
    if (all) return std::stod(line.substr(close + 1));
  }
  return std::nullopt;
}

ExporterOptions loopback() {
  ExporterOptions o;
  o.bind = "127.0.0.1:0";
  return o;
}

TEST(Prometheus, ScrapedValuesAreWhatThePipelineDid) {
  Exporter exporter(loopback());
  ASSERT_NE(exporter.port(), 0);

  DispatcherOptions d;
  d.name = "orders";
  Dispatcher<int> orders(d);
  PoolOptions p;
  p.name = "workers";
  p.consumers = 2;
  p.observer = exporter.observer();
  ConsumerPool workers(orders, p, [](int&) {});
  for (int i = 0; i < 100; ++i) ASSERT_EQ(orders.push(i), PushResult::Pushed);
  orders.close();
  workers.join();

  DispatcherOptions f;
  f.name = "full";
  f.capacity = 2;
  f.overflow = Overflow::Reject;
  Dispatcher<int> full(f);
  for (int i = 0; i < 5; ++i) (void)full.push(i);
  full.close();
  (void)full.push(6);

  const Reply r = get(exporter.port(), "/metrics");
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string orders_l = "component=\"orders\"";
  const std::string workers_l = "component=\"workers\"";
  const std::string full_l = "component=\"full\"";
  EXPECT_EQ(sample(r.body, "pushstage_pushed_total", {orders_l, "kind=\"dispatcher\""}), 100);
  EXPECT_EQ(sample(r.body, "pushstage_popped_total", {orders_l}), 100);
  EXPECT_EQ(sample(r.body, "pushstage_buffered", {orders_l}), 0);
  EXPECT_EQ(sample(r.body, "pushstage_handled_total", {workers_l, "kind=\"consumer_pool\""}), 100);
  EXPECT_EQ(sample(r.body, "pushstage_failed_total", {workers_l}), 0);
  EXPECT_EQ(sample(r.body, "pushstage_consumers", {workers_l}), 2);
  EXPECT_EQ(sample(r.body, "pushstage_pushed_total", {full_l}), 2);
  EXPECT_EQ(sample(r.body, "pushstage_buffered", {full_l}), 2);
  EXPECT_EQ(sample(r.body, "pushstage_capacity", {full_l}), 2);
  EXPECT_EQ(sample(r.body, "pushstage_rejected_total", {full_l, "reason=\"full\""}), 3);
  EXPECT_EQ(sample(r.body, "pushstage_rejected_total", {full_l, "reason=\"closed\""}), 1);
  // From the observer: one handler call per event, none running now.
  EXPECT_EQ(sample(r.body, "pushstage_handler_duration_seconds_count", {workers_l}), 100);
  EXPECT_EQ(sample(r.body, "pushstage_batch_size_count", {workers_l}), 100);
  EXPECT_EQ(sample(r.body, "pushstage_batch_size_sum", {workers_l}), 100);
  EXPECT_EQ(sample(r.body, "pushstage_in_flight", {workers_l}), 0);
  // The dispatcher had no observer: its counters are exported all the same, no histograms.
  EXPECT_EQ(sample(r.body, "pushstage_handler_duration_seconds_count", {orders_l}), std::nullopt);
}

TEST(Prometheus, ABatcherExportsItsBatchesAndTheirSizes) {
  Exporter exporter(loopback());
  BatcherOptions b;
  b.name = "grouper";
  b.batch_size = 10;
  b.batch_timeout = std::chrono::hours(1);
  b.observer = exporter.observer();
  {
    Batcher<int> batcher(b, [](Batcher<int>::Batch&) {});
    for (int i = 0; i < 35; ++i) ASSERT_EQ(batcher.push(i), PushResult::Pushed);
    batcher.close();
    batcher.join();
    const Reply r = get(exporter.port(), "/metrics");
    ASSERT_EQ(r.status, 200);
    const std::string l = "component=\"grouper\"";
    EXPECT_EQ(sample(r.body, "pushstage_batches_total", {l, "kind=\"batcher\""}), 4);
    EXPECT_EQ(sample(r.body, "pushstage_batch_size_count", {l}), 4);
    EXPECT_EQ(sample(r.body, "pushstage_batch_size_sum", {l}), 35);
    EXPECT_EQ(sample(r.body, "pushstage_batch_size_bucket", {l, "le=\"16\""}), 4);
    EXPECT_EQ(sample(r.body, "pushstage_batch_size_bucket", {l, "le=\"4\""}), 0);
    EXPECT_EQ(sample(r.body, "pushstage_handled_total", {"component=\"grouper.processors\""}), 4);
  }
  // Gone from the Topology: no counters any more.
  const Reply after = get(exporter.port(), "/metrics");
  EXPECT_EQ(sample(after.body, "pushstage_batches_total", {"component=\"grouper\""}), std::nullopt);
}

TEST(Prometheus, NamesAUserGaveAreEscapedLabelValues) {
  Exporter exporter(loopback());
  DispatcherOptions d;
  d.name = "a\"b\\c\nd\xff";
  Dispatcher<int> odd(d);
  (void)odd.push(1);
  const Reply r = get(exporter.port(), "/metrics");
  ASSERT_EQ(r.status, 200);
  // Quote, backslash and newline escaped; the byte that is not UTF-8 is U+FFFD.
  EXPECT_EQ(sample(r.body, "pushstage_pushed_total", {"component=\"a\\\"b\\\\c\\nd\xEF\xBF\xBD\""}),
            1);
}

TEST(Prometheus, BasicAuthenticationRefusesAnythingButTheRightPair) {
  ExporterOptions o = loopback();
  o.user = "scraper";
  o.password = "s3cret";
  Exporter exporter(o);
  EXPECT_EQ(get(exporter.port(), "/metrics").status, 401);
  EXPECT_EQ(
      get(exporter.port(), "/metrics", {"Authorization: Basic " + base64("scraper:wrong")}).status,
      401);
  EXPECT_EQ(
      get(exporter.port(), "/metrics", {"Authorization: Basic " + base64("other:s3cret")}).status,
      401);
  const Reply ok =
      get(exporter.port(), "/metrics", {"Authorization: Basic " + base64("scraper:s3cret")});
  EXPECT_EQ(ok.status, 200);
  EXPECT_NE(ok.body.find("# TYPE pushstage_pushed_total counter"), std::string::npos);
}

TEST(Prometheus, TopologyJsonIsServedNextToMetricsWithNamesEscaped) {
  Exporter exporter(loopback());
  DispatcherOptions d;
  d.name = "<script>alert(1)</script>";
  Dispatcher<int> source(d);
  PoolOptions p;
  p.name = "sink&co";
  p.consumers = 1;
  p.observer = exporter.observer();
  ConsumerPool pool(source, p, [](int&) {});
  for (int i = 0; i < 10; ++i) ASSERT_EQ(source.push(i), PushResult::Pushed);
  source.close();
  pool.join();
  const Reply r = get(exporter.port(), "/topology.json");
  ASSERT_EQ(r.status, 200);
  // No byte of a name can open markup: <, > and & are \u escapes.
  EXPECT_EQ(r.body.find("<script>"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(R"("name":"\u003cscript\u003ealert(1)\u003c/script\u003e")"),
            std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find(R"("name":"sink\u0026co")"), std::string::npos) << r.body;
  // The observed pool carries its handler percentiles.
  EXPECT_NE(r.body.find("\"handler_p99_seconds\":"), std::string::npos) << r.body;
  const Reply page = get(exporter.port(), "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.body.find("topology.json"), std::string::npos);
  EXPECT_EQ(get(exporter.port(), "/nothing-here").status, 404);
}

TEST(Prometheus, ThePagesAreReadOnlyAndAuthenticatedLikeMetrics) {
  ExporterOptions o = loopback();
  o.user = "viewer";
  o.password = "pa:ss";
  Exporter exporter(o);
  const std::string good = "Authorization: Basic " + base64("viewer:pa:ss");
  for (const std::string path : {"/", "/topology.json"}) {
    EXPECT_EQ(get(exporter.port(), path).status, 401) << path;
    EXPECT_EQ(get(exporter.port(), path, {"Authorization: Basic " + base64("viewer:pa")}).status,
              401)
        << path;
    EXPECT_EQ(get(exporter.port(), path, {"Authorization: Basic !!!!"}).status, 401) << path;
    EXPECT_EQ(get(exporter.port(), path, {"Authorization: Bearer x"}).status, 401) << path;
    EXPECT_EQ(get(exporter.port(), path, {good}).status, 200) << path;
    EXPECT_EQ(get(exporter.port(), path, {good}, "POST").status, 405) << path;
    EXPECT_EQ(get(exporter.port(), path, {good}, "DELETE").status, 405) << path;
  }
}

TEST(Prometheus, ListensOnLoopbackByDefaultAndRefusesInvalidOptions) {
  EXPECT_EQ(ExporterOptions{}.bind.rfind("127.0.0.1:", 0), 0U);
  auto message = [](const ExporterOptions& o) {
    try {
      Exporter e(o);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  ExporterOptions o = loopback();
  o.threads = 0;
  EXPECT_NE(message(o).find("ExporterOptions::threads"), std::string::npos);
  o = loopback();
  o.bind.clear();
  EXPECT_NE(message(o).find("ExporterOptions::bind"), std::string::npos);
  o = loopback();
  o.user = "a:b";
  EXPECT_NE(message(o).find("ExporterOptions::user"), std::string::npos);
  o = loopback();
  o.password = "alone";
  EXPECT_NE(message(o).find("ExporterOptions::password"), std::string::npos);
}

TEST(Prometheus, AnAddressInUseIsARuntimeError) {
  Exporter first(loopback());
  ExporterOptions o;
  o.bind = "127.0.0.1:" + std::to_string(first.port());
  EXPECT_THROW(Exporter second(o), std::runtime_error);
}

}  // namespace
}  // namespace pushstage::prometheus
