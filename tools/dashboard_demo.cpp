// pushstage-dashboard-demo: a small pipeline with the dashboard on, to watch it live and for the
// dashboard's browser test (tests/dashboard/browser_test.sh).
//   orders (Dispatcher) -> parse (Stage, 2 consumers) -> parsed (Dispatcher, bounded)
//     -> forward (Stage) -> <stage name> (Batcher of 50, 3 ms timeout) -> its processors (pool)
// A producer pushes about 20,000 events a second. Every component has the exporter's observer.
//
// Usage: pushstage-dashboard-demo [--port N] [--seconds S] [--stage-name TEXT]
//   --port: listens on 127.0.0.1:N (0: a free port; default 9464); prints "listening on
//           http://127.0.0.1:PORT/" once it does.
//   --seconds: runs S seconds, then closes the pipeline and exits (default 0: until killed).
//   --stage-name: the Batcher's name (default "batch"); the browser test gives it markup.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "pushstage/prometheus/exporter.hpp"
#include "pushstage/pushstage.hpp"

namespace {

std::atomic<bool> stop{false};
extern "C" void on_signal(int /*signal*/) { stop.store(true, std::memory_order_relaxed); }

int usage(const char* why) {
  std::fprintf(stderr,
               "pushstage-dashboard-demo: %s\n"
               "usage: pushstage-dashboard-demo [--port N] [--seconds S] [--stage-name TEXT]\n",
               why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace pushstage;
  long port = 9464;
  long seconds = 0;
  std::string stage_name = "batch";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (i + 1 >= argc) return usage("each option takes a value");
    char* end = nullptr;
    if (arg == "--port") {
      port = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || port < 0 || port > 65535) return usage("--port: expects 0 to 65535");
    } else if (arg == "--seconds") {
      seconds = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || seconds < 0) return usage("--seconds: expects a count >= 0");
    } else if (arg == "--stage-name") {
      stage_name = argv[++i];
    } else {
      return usage("unknown option");
    }
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

  prometheus::ExporterOptions eo;
  eo.bind = "127.0.0.1:" + std::to_string(port);
  prometheus::Exporter exporter(eo);
  const auto observer = exporter.observer();

  DispatcherOptions head;
  head.name = "orders";
  head.capacity = 4096;
  head.observer = observer;
  Dispatcher<int> orders(head);

  DispatcherOptions mid;
  mid.name = "parsed";
  mid.capacity = 1024;
  mid.observer = observer;
  Dispatcher<int> parsed(mid);

  PoolOptions po;
  po.name = "parse";
  po.consumers = 2;
  po.pin = false;
  po.observer = observer;
  Stage parse(orders, parsed, po,
              [](int& e, Dispatcher<int>::Producer& out) { (void)out.push(e * 2); });

  BatcherOptions bo;
  bo.name = stage_name;
  bo.batch_size = 50;
  bo.batch_timeout = std::chrono::milliseconds(3);
  bo.processors.consumers = 2;
  bo.processors.pin = false;
  bo.observer = observer;
  Batcher<int> batcher(bo, [](Batcher<int>::Batch& b) {
    volatile long sum = 0;
    for (const int e : b.events) sum = sum + e;
  });
  PoolOptions fo = po;
  fo.name = "forward";
  fo.consumers = 1;
  Stage forward(parsed, batcher, fo,
                [](int& e, Dispatcher<int>::Producer& out) { (void)out.push(e); });

  std::printf("listening on http://127.0.0.1:%u/\n", static_cast<unsigned>(exporter.port()));
  std::fflush(stdout);

  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  int next = 0;
  while (!stop.load(std::memory_order_relaxed) &&
         (seconds == 0 || std::chrono::steady_clock::now() < until)) {
    for (int i = 0; i < 200; ++i) (void)orders.push(next++);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  orders.close();  // each stage drains, then closes the next
  parse.join();
  forward.join();
  batcher.join();
  return 0;
}
