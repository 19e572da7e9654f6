// peer_backend.cpp: the peers of bench/peers.hpp, each under a consumer loop shaped like
// ConsumerPool's: pinned to the CPUs ConsumerPool would use, pop one event (waiting), take up to
// max_demand - 1 more without waiting, handle them with the pool's busy-time bookkeeping.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <thread>
#include <vector>

#include "backends/backends.hpp"
#include "peers.hpp"
#include "pushstage/cpus.hpp"
#include "pushstage/pool/consumer_pool.hpp"

namespace pushstage::bench {
namespace {

template <template <class> class Q>
class PeerBackend {
 public:
  using Queue = Q<std::uint32_t>;
  using Producer = typename Queue::Producer;
  explicit PeerBackend(Harness& h) : h_(h) {
    PoolOptions po;
    po.consumers = h.config.consumers;
    po.pin = h.config.pin;
    cpus_ = detail::plan_consumer_cpus(po);  // the CPUs ConsumerPool would use
  }
  void start_consumers() {
    for (std::size_t i = 0; i < cpus_.size(); ++i) threads_.emplace_back([this, i] { run(i); });
  }
  Producer producer() { return q_.producer(); }
  void push(Producer& p, std::uint32_t id) { q_.push(p, id); }
  void close_and_join() {
    q_.close(threads_.size());
    for (auto& t : threads_) t.join();
  }
  // The loop is ours: no independent count to compare with.
  std::optional<std::uint64_t> pool_handled() const { return std::nullopt; }
  static std::size_t copies() { return 1; }

 private:
  void run(std::size_t index) {
    if (cpus_[index] >= 0) pin_near(cpus_[index], h_.config.pin_to);
    auto consumer = q_.consumer();
    ConsumerLog* log = nullptr;
    const std::size_t max_demand = h_.config.max_demand;
    std::vector<std::uint32_t> batch;
    batch.reserve(max_demand);
    std::uint32_t id = 0;
    while (q_.pop(consumer, id)) {
      if (log == nullptr) log = &h_.claim();
      batch.clear();
      batch.push_back(id);
      while (batch.size() < max_demand && q_.try_pop(consumer, id)) batch.push_back(id);
      for (const std::uint32_t e : batch) timed_call(*log, [&] { h_.handle(*log, e); });
    }
  }

  Harness& h_;
  Queue q_;
  std::vector<int> cpus_;
  std::vector<std::thread> threads_;
};

}  // namespace

RunResult run_moodycamel_blocking(const RunRequest& run) {
  return run_with<PeerBackend<BlockingQueue>>(run);
}
RunResult run_moodycamel_notoken(const RunRequest& run) {
  return run_with<PeerBackend<BlockingQueueNoToken>>(run);
}
RunResult run_mutex(const RunRequest& run) { return run_with<PeerBackend<MutexQueue>>(run); }
RunResult run_tbb(const RunRequest& run) { return run_with<PeerBackend<TbbQueue>>(run); }
RunResult run_moodycamel_spin(const RunRequest& run) {
  return run_with<PeerBackend<SpinningQueue>>(run);
}

}  // namespace pushstage::bench
