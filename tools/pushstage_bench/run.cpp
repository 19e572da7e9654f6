// run.cpp: see run.hpp. The timed path is produce() and Harness::handle(); everything else runs
// before the start or after the join.
#include "run.hpp"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <latch>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "harness/driver.hpp"
#include "harness/harness.hpp"
#include "peers.hpp"
#include "pushstage/broadcast_dispatcher.hpp"
#include "pushstage/consumer_pool.hpp"
#include "pushstage/cpus.hpp"
#include "pushstage/detail/cache_line.hpp"
#include "pushstage/dispatcher.hpp"
#include "pushstage/keyed_dispatcher.hpp"
#include "pushstage/partition_dispatcher.hpp"
#include "pushstage/stage.hpp"
#include "results_json.hpp"

namespace pushstage::bench {

namespace {

constexpr ImplInfo kImpls[] = {
    {Impl::kPushstage, "pushstage", "pushstage",
     "pushstage Dispatcher + ConsumerPool, FIFO wake (the subject)"},
    {Impl::kPushstageLifo, "pushstage-lifo", "ps-lifo",
     "pushstage Dispatcher + ConsumerPool, LIFO wake"},
    {Impl::kBlocking, "moodycamel-blocking", "mc-blocking",
     "moodycamel BlockingConcurrentQueue, with tokens"},
    {Impl::kMutex, "mutex", "mutex+cv", "std::mutex + std::condition_variable + std::deque"},
    {Impl::kTbb, "tbb", "tbb-bounded", "oneTBB concurrent_bounded_queue (unbounded)"},
    {Impl::kSpin, "moodycamel-spin", "mc-spin",
     "raw moodycamel ConcurrentQueue, consumers spin (burns a core each)"},
    {Impl::kBlockingNoToken, "moodycamel-notoken", "mc-notoken",
     "BlockingConcurrentQueue, consumers without ConsumerToken (can starve producers)"},
    {Impl::kPipeline2, "pushstage-pipeline2", "ps-pipe2",
     "pushstage 2-stage pipeline: Stage (pass-through) -> bounded Dispatcher -> ConsumerPool"},
    {Impl::kPipeline3, "pushstage-pipeline3", "ps-pipe3",
     "pushstage 3-stage pipeline: two pass-through Stages, then the ConsumerPool"},
    {Impl::kPartition, "pushstage-partition", "ps-partition",
     "pushstage PartitionDispatcher: one partition per consumer, chosen by event id"},
    {Impl::kKeyed, "pushstage-keyed", "ps-keyed",
     "pushstage KeyedDispatcher: 64 slots by event id, any idle consumer takes a ready slot"},
    {Impl::kBroadcast, "pushstage-broadcast", "ps-broadcast",
     "pushstage BroadcastDispatcher: every consumer handles every event (1024 per subscriber)"},
};

// ---- implementations behind one shape: start_consumers, producer, push, close_and_join ----

class PushstageBackend {
 public:
  using Producer = Dispatcher<std::uint32_t>::Producer;
  PushstageBackend(Harness& h, WakeOrder order) : h_(h), d_(options(order)) {}
  void start_consumers() {
    PoolOptions po;
    po.consumers = h_.config.consumers;
    po.pin = h_.config.pin;
    po.max_demand = h_.config.max_demand;
    pool_.emplace(d_, std::move(po), [this](std::uint32_t& id) {
      thread_local ConsumerLog* log = nullptr;
      if (log == nullptr) log = &h_.claim();
      h_.handle(*log, id);
    });
  }
  Producer producer() { return d_.producer(); }
  static void push(Producer& p, std::uint32_t id) { (void)p.push(id); }
  void close_and_join() {
    d_.close();
    pool_->join();
  }
  // What the pool itself counted, to cross-check the harness.
  std::optional<std::uint64_t> pool_handled() const {
    std::uint64_t n = 0;
    for (const ConsumerStats& s : pool_->stats()) n += s.handled;
    return n;
  }
  // Handler calls per event.
  static std::size_t copies() { return 1; }

 private:
  static DispatcherOptions options(WakeOrder order) {
    DispatcherOptions o;
    o.wake_order = order;
    return o;
  }
  Harness& h_;
  Dispatcher<std::uint32_t> d_;
  std::optional<ConsumerPool<std::uint32_t>> pool_;
};

// A peer queue with a consumer loop shaped like ConsumerPool::run: pinned, pop one (waiting),
// take up to max_demand - 1 more without waiting, handle them with busy-time bookkeeping.
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
    if (cpus_[index] >= 0) pin_this_thread(cpus_[index]);
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

// ---- pushstage's other shapes: pipelines and dispatch modes, the same harness handler ----

// The consumer pool every shape ends in: the harness handler on config.consumers consumers.
PoolOptions harness_pool_options(const Harness& h) {
  PoolOptions po;
  po.consumers = h.config.consumers;
  po.pin = h.config.pin;
  po.max_demand = h.config.max_demand;
  return po;
}
std::function<void(std::uint32_t&)> harness_handler(Harness& h) {
  return [&h](std::uint32_t& id) {
    thread_local ConsumerLog* log = nullptr;
    if (log == nullptr) log = &h.claim();
    h.handle(*log, id);
  };
}
std::uint64_t handled_by(const std::vector<ConsumerStats>& stats) {
  std::uint64_t n = 0;
  for (const ConsumerStats& s : stats) n += s.handled;
  return n;
}

// head -> (stages - 1) pass-through Stages, one unpinned consumer each, bounded (1024, Block)
// dispatchers in between -> the harness pool. Dispatch latency covers every hop.
class PipelineBackend {
 public:
  using Producer = Dispatcher<std::uint32_t>::Producer;
  PipelineBackend(Harness& h, int stages) : h_(h) {
    DispatcherOptions bounded;
    bounded.capacity = 1024;
    for (int i = 1; i < stages; ++i) {
      mids_.push_back(std::make_unique<Dispatcher<std::uint32_t>>(bounded));
    }
  }
  void start_consumers() {
    PoolOptions pass;
    pass.consumers = 1;
    pass.pin = false;
    Dispatcher<std::uint32_t>* from = &head_;
    for (auto& to : mids_) {
      stages_.push_back(std::make_unique<Stage<std::uint32_t, Dispatcher<std::uint32_t>>>(
          *from, *to, pass, [](std::uint32_t& id, Producer& out) { (void)out.push(id); }));
      from = to.get();
    }
    pool_.emplace(*from, harness_pool_options(h_), harness_handler(h_));
  }
  Producer producer() { return head_.producer(); }
  static void push(Producer& p, std::uint32_t id) { (void)p.push(id); }
  void close_and_join() {
    head_.close();  // each stage closes the next once drained
    pool_->join();
  }
  std::optional<std::uint64_t> pool_handled() const { return handled_by(pool_->stats()); }
  static std::size_t copies() { return 1; }

 private:
  Harness& h_;
  Dispatcher<std::uint32_t> head_;
  std::vector<std::unique_ptr<Dispatcher<std::uint32_t>>> mids_;
  std::vector<std::unique_ptr<Stage<std::uint32_t, Dispatcher<std::uint32_t>>>> stages_;
  std::optional<ConsumerPool<std::uint32_t>> pool_;
};

// Partitions, keyed slots or broadcast subscribers in front of the harness pool.
template <class Source>
class ModeBackend {
 public:
  using Producer = typename Source::Producer;
  template <class... Args>
  explicit ModeBackend(Harness& h, Args&&... args) : h_(h), source_(std::forward<Args>(args)...) {}
  void start_consumers() { pool_.emplace(source_, harness_pool_options(h_), harness_handler(h_)); }
  Producer producer() { return source_.producer(); }
  static void push(Producer& p, std::uint32_t id) { (void)p.push(id); }
  void close_and_join() {
    source_.close();
    pool_->join();
  }
  std::optional<std::uint64_t> pool_handled() const { return handled_by(pool_->stats()); }
  std::size_t copies() const {
    if constexpr (std::is_same_v<Source, BroadcastDispatcher<std::uint32_t>>) {
      return h_.config.consumers;
    } else {
      return 1;
    }
  }
  // A partition's backlog waits for its own consumer while another may idle: Graham's bound for
  // work-conserving list scheduling does not apply to it.
  static constexpr bool kWorkConserving =
      !std::is_same_v<Source, PartitionDispatcher<std::uint32_t>>;

 private:
  Harness& h_;
  Source source_;
  std::optional<ConsumerPool<std::uint32_t>> pool_;
};

std::size_t by_id(const std::uint32_t& id) { return id; }

void write_all(int fd, const std::string& s) {
  std::size_t done = 0;
  while (done < s.size()) {
    const ssize_t w = write(fd, s.data() + done, s.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    done += static_cast<std::size_t>(w);
  }
}

}  // namespace

std::span<const ImplInfo> impls() { return kImpls; }

const ImplInfo& info(Impl impl) {
  for (const ImplInfo& i : kImpls) {
    if (i.impl == impl) return i;
  }
  throw std::logic_error("unknown Impl");
}

RunResult run_once(const RunConfig& config, const Plan& plan, Impl impl, std::size_t rep,
                   std::string_view progress_label) {
  const RunRequest run{config, plan, impl, rep, progress_label};
  switch (impl) {
    case Impl::kPushstage:
      return run_with<PushstageBackend>(run, WakeOrder::Fifo);
    case Impl::kPushstageLifo:
      return run_with<PushstageBackend>(run, WakeOrder::Lifo);
    case Impl::kBlocking:
      return run_with<PeerBackend<BlockingQueue>>(run);
    case Impl::kMutex:
      return run_with<PeerBackend<MutexQueue>>(run);
    case Impl::kTbb:
      return run_with<PeerBackend<TbbQueue>>(run);
    case Impl::kSpin:
      return run_with<PeerBackend<SpinningQueue>>(run);
    case Impl::kBlockingNoToken:
      return run_with<PeerBackend<BlockingQueueNoToken>>(run);
    case Impl::kPipeline2:
      return run_with<PipelineBackend>(run, 2);
    case Impl::kPipeline3:
      return run_with<PipelineBackend>(run, 3);
    case Impl::kPartition:
      return run_with<ModeBackend<PartitionDispatcher<std::uint32_t>>>(
          run, config.consumers, PartitionDispatcher<std::uint32_t>::Hash(by_id));
    case Impl::kKeyed:
      return run_with<ModeBackend<KeyedDispatcher<std::uint32_t>>>(
          run, std::size_t{64}, KeyedDispatcher<std::uint32_t>::Hash(by_id));
    case Impl::kBroadcast: {
      // 1024 per subscriber; a batch buffers every event before the consumers start.
      DispatcherOptions per_subscriber;
      per_subscriber.capacity = std::max<std::size_t>(
          1024, config.kind == RunKind::kBatch ? plan.size() : std::size_t{0});
      return run_with<ModeBackend<BroadcastDispatcher<std::uint32_t>>>(run, config.consumers,
                                                                       per_subscriber);
    }
  }
  throw std::logic_error("unknown Impl");
}

RunResult run_in_child(const RunConfig& config, const Plan& plan, Impl impl, std::size_t rep,
                       std::string_view progress_label) {
  std::fflush(stdout);
  std::fflush(stderr);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    close(fds[0]);
    RunResult r;
    try {
      r = run_once(config, plan, impl, rep, progress_label);
    } catch (const std::exception& e) {
      r.impl = std::string(info(impl).name);
      r.rep = rep;
      r.ok = false;
      r.failure = std::string("the run threw: ") + e.what();
    }
    write_all(fds[1], to_json(r).dump());
    close(fds[1]);
    std::fflush(stdout);
    _exit(0);
  }
  close(fds[1]);
  std::string text;
  char buf[1 << 16];
  for (;;) {
    const ssize_t got = read(fds[0], buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    text.append(buf, static_cast<std::size_t>(got));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  RunResult dead;
  dead.impl = std::string(info(impl).name);
  dead.rep = rep;
  dead.ok = false;
  if (WIFSIGNALED(status)) {
    dead.failure = "the child process died of signal " + std::to_string(WTERMSIG(status)) + " (" +
                   strsignal(WTERMSIG(status)) + ")";
    return dead;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || text.empty()) {
    dead.failure = "the child process exited with status " + std::to_string(WEXITSTATUS(status));
    return dead;
  }
  try {
    return from_json(nlohmann::json::parse(text));
  } catch (const std::exception& e) {
    dead.failure = std::string("unreadable result from the child: ") + e.what();
    return dead;
  }
}

}  // namespace pushstage::bench
