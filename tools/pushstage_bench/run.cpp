// run.cpp: see run.hpp. Every implementation's name and the backend that runs it.
#include "run.hpp"

#include <span>
#include <stdexcept>

#include "backends/backends.hpp"

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
    {Impl::kPipelineFront, "pushstage-pipeline-front", "ps-front",
     "pushstage's Dispatcher + consumers declared as a Pipeline (Message, acknowledgement)"},
    {Impl::kPushstageFastPush, "pushstage-fastpush", "ps-fastpush",
     "pushstage with DispatcherOptions::fast_push: no locked add per push, a heavy fence per park"},
};

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
      return run_pushstage(run, WakeOrder::Fifo);
    case Impl::kPushstageLifo:
      return run_pushstage(run, WakeOrder::Lifo);
    case Impl::kPushstageFastPush:
      return run_pushstage(run, WakeOrder::Fifo, true);
    case Impl::kBlocking:
      return run_moodycamel_blocking(run);
    case Impl::kMutex:
      return run_mutex(run);
    case Impl::kTbb:
      return run_tbb(run);
    case Impl::kSpin:
      return run_moodycamel_spin(run);
    case Impl::kBlockingNoToken:
      return run_moodycamel_notoken(run);
    case Impl::kPipeline2:
      return run_pipeline(run, 2);
    case Impl::kPipeline3:
      return run_pipeline(run, 3);
    case Impl::kPartition:
      return run_partition(run);
    case Impl::kKeyed:
      return run_keyed(run);
    case Impl::kBroadcast:
      return run_broadcast(run);
    case Impl::kPipelineFront:
      return run_pipeline_front(run);
  }
  throw std::logic_error("unknown Impl");
}

}  // namespace pushstage::bench
