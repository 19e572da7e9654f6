// nats_test_worker: a consumer process for the redelivery test, which kills it mid-batch.
//   nats_test_worker URL STREAM CONSUMER CONSUMERS MAX_DEMAND ACK_WAIT_MS BLOCK_AFTER
// Runs a Pipeline on the consumer. Prints "<payload>" when a handler starts, and "ready" once
// connected (possibly after the first payloads: fetching starts with the pipeline). The first
// BLOCK_AFTER handlers return (their messages are acked); every later one blocks for good, so the
// process holds unacked messages when the test kills it.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

#include "pushstage/nats/pipeline.hpp"

int main(int argc, char** argv) {
  if (argc != 8) {
    std::fprintf(stderr,
                 "usage: nats_test_worker URL STREAM CONSUMER CONSUMERS MAX_DEMAND ACK_WAIT_MS "
                 "BLOCK_AFTER\n");
    return 2;
  }
  using namespace std::chrono_literals;
  pushstage::nats::SourceOptions so;
  so.connection.url = argv[1];
  so.stream = argv[2];
  so.consumer = argv[3];
  so.ack_wait = std::chrono::milliseconds(std::atol(argv[6]));
  so.poll = 100ms;
  pushstage::PoolOptions po;
  po.consumers = static_cast<std::size_t>(std::atol(argv[4]));
  po.max_demand = static_cast<std::size_t>(std::atol(argv[5]));
  po.pin = false;
  const long block_after = std::atol(argv[7]);
  std::mutex out;
  long started = 0;
  pushstage::nats::Pipeline pipeline(so, po, [&](pushstage::nats::Message& m) {
    long n = 0;
    {
      const std::lock_guard lock(out);
      n = ++started;
      std::printf("%.*s\n", static_cast<int>(m.data().size()), m.data().data());
      std::fflush(stdout);
    }
    if (n > block_after) {
      for (;;) std::this_thread::sleep_for(1s);  // mid-batch: the test kills us here
    }
  });
  {
    const std::lock_guard lock(out);  // a line of its own, never inside a handler's
    std::printf("ready\n");
    std::fflush(stdout);
  }
  pipeline.wait();
  return 0;
}
