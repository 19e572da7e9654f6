// icount_tokenless.cpp: the perf gate's instruction count of the tokenless calls, in a file of its
// own with an event type of its own, so that its instantiation of Dispatcher::push does not change
// how GCC inlines the handle paths that icount_driver.cpp counts (with both in one file, push_one
// was no longer inlined into the 64-push loop: push_pop/burst64 +15%). A program that pushes
// through both APIs with one event type pays that; bench/dispatcher_tokenless_bench.cpp is split
// off dispatcher_bench for the same reason.
#include <cstdint>
#include <optional>

#include "icount_measure.hpp"
#include "pushstage/dispatcher.hpp"

namespace pushstage_icount {
namespace {

struct Event {
  std::uint64_t seq = 0;
  std::uint64_t stamp = 0;
};

}  // namespace

// Dispatcher::push and Dispatcher::try_pop without handles: each looks up the handles the thread
// keeps for the dispatcher (core/thread_cache.hpp; made during the warm-up).
void push_pop_tokenless(const char* name) {
  pushstage::Dispatcher<Event> d;
  std::uint64_t seq = 0;
  measure(name, kOps, kWarmup, [&](std::uint64_t n) {
    for (std::uint64_t i = 0; i < n; ++i) {
      expect(d.push(Event{seq, 0}) == pushstage::PushResult::Pushed);
      const std::optional<Event> e = d.try_pop();
      expect(e.has_value() && e->seq == seq);
      ++seq;
    }
  });
}

}  // namespace pushstage_icount
