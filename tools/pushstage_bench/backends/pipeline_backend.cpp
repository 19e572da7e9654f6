// pipeline_backend.cpp: GenStage's pipeline shape: producers push into a head Dispatcher,
// stages - 1 pass-through Stages (one unpinned consumer each) forward through bounded (1024,
// Block) Dispatchers, the harness pool drains the last. Dispatch latency covers every hop.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "backends/backends.hpp"
#include "backends/harness_pool.hpp"
#include "pushstage/dispatcher.hpp"
#include "pushstage/stages/stage.hpp"

namespace pushstage::bench {
namespace {

class PipelineBackend {
 public:
  using Producer = Dispatcher<std::uint32_t>::Producer;
  PipelineBackend(Harness& h, int stages) : pool_(h) {
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
    pool_.start(*from);
  }
  Producer producer() { return head_.producer(); }
  static void push(Producer& p, std::uint32_t id) { (void)p.push(id); }
  void close_and_join() {
    head_.close();  // each stage closes the next once drained
    pool_.join();
  }
  std::optional<std::uint64_t> pool_handled() const { return pool_.handled(); }
  static std::size_t copies() { return 1; }

 private:
  Dispatcher<std::uint32_t> head_;
  std::vector<std::unique_ptr<Dispatcher<std::uint32_t>>> mids_;
  std::vector<std::unique_ptr<Stage<std::uint32_t, Dispatcher<std::uint32_t>>>> stages_;
  HarnessPool pool_;
};

}  // namespace

RunResult run_pipeline(const RunRequest& run, int stages) {
  return run_with<PipelineBackend>(run, stages);
}

}  // namespace pushstage::bench
