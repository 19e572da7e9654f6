// pipeline_wait.hpp: waiting for a pushstage::nats::Pipeline's end without letting a test hang.
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <string>
#include <thread>

#include "nats_test_support.hpp"
#include "pushstage/nats/error.hpp"

namespace pushstage::nats::test {

// How a pipeline's wait() ended, awaited on a thread of its own: returned within eventually()'s
// limit or not (then the pipeline was stopped, so that the test reports instead of hanging), and
// the Error it threw, if any.
struct WaitOutcome {
  bool returned = false;
  bool threw = false;
  std::string error;     // the Error's what()
  int status = NATS_OK;  // Error::status(): a natsStatus
};
template <class Pipeline>
WaitOutcome wait_elsewhere(Pipeline& p) {
  WaitOutcome out;
  std::atomic<bool> returned{false};
  std::thread waiter([&] {
    try {
      p.wait();
    } catch (const Error& e) {
      out.threw = true;
      out.error = e.what();
      out.status = e.status();
    }
    returned = true;
  });
  out.returned = eventually([&] { return returned.load(); });
  if (!out.returned) p.stop();
  waiter.join();
  return out;
}

}  // namespace pushstage::nats::test
