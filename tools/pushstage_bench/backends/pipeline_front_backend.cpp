// pipeline_front_backend.cpp: the subject's topology declared through the Pipeline front instead
// of wired by hand. The producers push into a Pipeline<std::uint32_t> whose input is the
// subject's Dispatcher (unbounded, FIFO wake) and whose processors are the harness pool's
// consumers (harness_pool.hpp: same count, max_demand, pinning, handler), with no batcher; each
// event travels as a Message and is acknowledged (to nobody) once handled. So
// `--impl pushstage,pushstage-pipeline-front` measures what the front adds per event: the
// Message, the barrier ledger, the chunk hooks, the acknowledgement.
// A batch run buffers every event before the consumers start: the harness pool is built then,
// while the processors, built with the pipeline, start paused (PoolOptions::start_paused) and are
// resumed then; their threads exist a little earlier than the pool's.
#include <cstddef>
#include <cstdint>
#include <optional>

#include "backends/backends.hpp"
#include "backends/harness_pool.hpp"
#include "pushstage/dispatcher_options.hpp"
#include "pushstage/stages/message.hpp"
#include "pushstage/stages/pipeline.hpp"
#include "pushstage/stages/pipeline_options.hpp"

namespace pushstage::bench {
namespace {

class PipelineFrontBackend {
 public:
  using Producer = Pipeline<std::uint32_t>::Producer;
  explicit PipelineFrontBackend(Harness& h) : h_(h) {
    if (h.config.kind == RunKind::kBatch) pipeline_.emplace(options(true));
  }
  void start_consumers() {
    if (pipeline_) {
      pipeline_->processors().resume();
    } else {
      pipeline_.emplace(options(false));
    }
  }
  Producer producer() { return pipeline_->producer(); }
  static void push(Producer& p, std::uint32_t id) { (void)p.push(id); }
  void close_and_join() {
    pipeline_->close();
    pipeline_->join();
  }
  // The messages the pipeline acknowledged as handled successfully: one per handler call.
  std::optional<std::uint64_t> pool_handled() const { return pipeline_->stats().successful; }
  static std::size_t copies() { return 1; }

 private:
  PipelineOptions<std::uint32_t> options(bool paused) const {
    PipelineOptions<std::uint32_t> o;
    o.input = DispatcherOptions{};  // unbounded, WakeOrder::Fifo: the subject's Dispatcher
    o.input.observer = served_observer();
    o.processors = harness_pool_options(h_.config);
    o.processors.start_paused = paused;
    o.handle_message = [&h = h_](Message<std::uint32_t>& m) {
      handle_on_this_consumer(h, m.data());
    };
    return o;
  }

  Harness& h_;
  std::optional<Pipeline<std::uint32_t>> pipeline_;
};

}  // namespace

RunResult run_pipeline_front(const RunRequest& run) { return run_with<PipelineFrontBackend>(run); }

}  // namespace pushstage::bench
