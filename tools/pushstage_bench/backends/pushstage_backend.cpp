// pushstage_backend.cpp: the subject: producers push into a Dispatcher, a ConsumerPool drains it.
#include <cstddef>
#include <cstdint>
#include <optional>

#include "backends/backends.hpp"
#include "backends/harness_pool.hpp"
#include "pushstage/dispatcher.hpp"

namespace pushstage::bench {
namespace {

class PushstageBackend {
 public:
  using Producer = Dispatcher<std::uint32_t>::Producer;
  PushstageBackend(Harness& h, WakeOrder order) : d_(options(order)), pool_(h) {}
  void start_consumers() { pool_.start(d_); }
  Producer producer() { return d_.producer(); }
  static void push(Producer& p, std::uint32_t id) { (void)p.push(id); }
  void close_and_join() {
    d_.close();
    pool_.join();
  }
  std::optional<std::uint64_t> pool_handled() const { return pool_.handled(); }
  static std::size_t copies() { return 1; }

 private:
  static DispatcherOptions options(WakeOrder order) {
    DispatcherOptions o;
    o.wake_order = order;
    return o;
  }
  Dispatcher<std::uint32_t> d_;
  HarnessPool pool_;
};

}  // namespace

RunResult run_pushstage(const RunRequest& run, WakeOrder order) {
  return run_with<PushstageBackend>(run, order);
}

}  // namespace pushstage::bench
