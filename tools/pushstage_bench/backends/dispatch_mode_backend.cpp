// dispatch_mode_backend.cpp: pushstage's dispatch modes in front of the harness pool: partitions
// (one per consumer) and keyed slots (64), both chosen by event id, and broadcast subscribers
// (every consumer handles every event).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <utility>

#include "backends/backends.hpp"
#include "backends/harness_pool.hpp"
#include "pushstage/broadcast_dispatcher.hpp"
#include "pushstage/keyed_dispatcher.hpp"
#include "pushstage/partition_dispatcher.hpp"

namespace pushstage::bench {
namespace {

template <class Source>
class ModeBackend {
 public:
  using Producer = typename Source::Producer;
  template <class... Args>
  explicit ModeBackend(Harness& h, Args&&... args)
      : consumers_(h.config.consumers), source_(std::forward<Args>(args)...), pool_(h) {}
  void start_consumers() { pool_.start(source_); }
  Producer producer() { return source_.producer(); }
  static void push(Producer& p, std::uint32_t id) { (void)p.push(id); }
  void close_and_join() {
    source_.close();
    pool_.join();
  }
  std::optional<std::uint64_t> pool_handled() const { return pool_.handled(); }
  std::size_t copies() const {
    if constexpr (std::is_same_v<Source, BroadcastDispatcher<std::uint32_t>>) {
      return consumers_;
    } else {
      return 1;
    }
  }
  // A partition's backlog waits for its own consumer while another may idle: Graham's bound for
  // work-conserving list scheduling does not apply to it.
  static constexpr bool kWorkConserving =
      !std::is_same_v<Source, PartitionDispatcher<std::uint32_t>>;

 private:
  std::size_t consumers_;
  Source source_;
  HarnessPool pool_;
};

std::size_t by_id(const std::uint32_t& id) { return id; }

}  // namespace

RunResult run_partition(const RunRequest& run) {
  return run_with<ModeBackend<PartitionDispatcher<std::uint32_t>>>(
      run, run.config.consumers, PartitionDispatcher<std::uint32_t>::Hash(by_id));
}

RunResult run_keyed(const RunRequest& run) {
  return run_with<ModeBackend<KeyedDispatcher<std::uint32_t>>>(
      run, std::size_t{64}, KeyedDispatcher<std::uint32_t>::Hash(by_id));
}

RunResult run_broadcast(const RunRequest& run) {
  // 1024 per subscriber; a batch buffers every event before the consumers start.
  DispatcherOptions per_subscriber;
  per_subscriber.capacity = std::max<std::size_t>(
      1024, run.config.kind == RunKind::kBatch ? run.plan.size() : std::size_t{0});
  return run_with<ModeBackend<BroadcastDispatcher<std::uint32_t>>>(run, run.config.consumers,
                                                                   per_subscriber);
}

}  // namespace pushstage::bench
