// source_backend.cpp: a pushstage source drained by the harness pool (harness_pool.hpp): the
// producers push into it, it is closed after the last event, the pool joins. The subject is the
// Dispatcher (FIFO or LIFO wake); the dispatch modes are partitions (one per consumer) and keyed
// slots (64), both chosen by event id, and broadcast subscribers (every consumer handles every
// event).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>

#include "backends/backends.hpp"
#include "backends/harness_pool.hpp"
#include "pushstage/dispatcher.hpp"
#include "pushstage/modes/broadcast_dispatcher.hpp"
#include "pushstage/modes/keyed_dispatcher.hpp"
#include "pushstage/modes/partition_dispatcher.hpp"

namespace pushstage::bench {
namespace {

// kIsWorkConserving = false: the source may leave a consumer idle while events wait for another,
// so Graham's bound for work-conserving list scheduling does not apply.
template <class Source, bool kIsWorkConserving = true>
class SourceBackend {
 public:
  using Producer = typename Source::Producer;
  // copies: handler calls per event (a broadcast: one per subscriber); args construct the source.
  template <class... Args>
  SourceBackend(Harness& h, std::size_t copies, Args&&... args)
      : copies_(copies), source_(std::forward<Args>(args)...), pool_(h) {}
  void start_consumers() { pool_.start(source_); }
  Producer producer() { return source_.producer(); }
  static void push(Producer& p, std::uint32_t id) { (void)p.push(id); }
  void close_and_join() {
    source_.close();
    pool_.join();
  }
  std::optional<std::uint64_t> pool_handled() const { return pool_.handled(); }
  std::size_t copies() const { return copies_; }
  static constexpr bool kWorkConserving = kIsWorkConserving;

 private:
  std::size_t copies_;
  Source source_;
  HarnessPool pool_;
};

std::size_t by_id(const std::uint32_t& id) { return id; }

}  // namespace

std::shared_ptr<Observer>& served_observer() {
  static std::shared_ptr<Observer> observer;
  return observer;
}

RunResult run_pushstage(const RunRequest& run, WakeOrder order, bool fast_push) {
  DispatcherOptions options;
  options.wake_order = order;
  options.fast_push = fast_push;
  options.observer = served_observer();
  return run_with<SourceBackend<Dispatcher<std::uint32_t>>>(run, std::size_t{1}, options);
}

RunResult run_partition(const RunRequest& run) {
  // A partition's backlog waits for its own consumer while another may idle.
  return run_with<SourceBackend<PartitionDispatcher<std::uint32_t>, false>>(
      run, std::size_t{1}, run.config.consumers, PartitionDispatcher<std::uint32_t>::Hash(by_id));
}

RunResult run_keyed(const RunRequest& run) {
  return run_with<SourceBackend<KeyedDispatcher<std::uint32_t>>>(
      run, std::size_t{1}, std::size_t{64}, KeyedDispatcher<std::uint32_t>::Hash(by_id));
}

RunResult run_broadcast(const RunRequest& run) {
  // 1024 per subscriber; a batch buffers every event before the consumers start.
  DispatcherOptions per_subscriber;
  per_subscriber.capacity = std::max<std::size_t>(
      1024, run.config.kind == RunKind::kBatch ? run.plan.size() : std::size_t{0});
  return run_with<SourceBackend<BroadcastDispatcher<std::uint32_t>>>(
      run, run.config.consumers, run.config.consumers, per_subscriber);
}

}  // namespace pushstage::bench
