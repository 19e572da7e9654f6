// pushstage/stages/pipeline_options.hpp: the vocabulary of Pipeline<T>: its options (Broadway's
// start_link options and its callbacks, in one declaration), a named batcher, what handle_batch
// learns about a batch, a feed (Broadway's producer), the stats and what the test helpers return.
// Threading: plain value types, except PipelineFeed (see there).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pushstage/dispatcher_options.hpp"
#include "pushstage/pool/pool_options.hpp"
#include "pushstage/stages/batcher.hpp"
#include "pushstage/stages/message.hpp"

namespace pushstage {

// What handle_batch is told about its batch (Broadway's BatchInfo).
struct BatchInfo {
  std::string_view batcher;    // the batcher's name
  std::string_view batch_key;  // the key every message of the batch has (Message::batch_key())
  std::size_t size = 0;        // messages in the batch
  BatchTrigger trigger = BatchTrigger::Full;
};

// A named batcher: messages that handle_message routes to `name` (Message::put_batcher) are
// grouped by batch key into batches, which handle_batch receives on the batcher's processors.
template <class T>
struct PipelineBatcher {
  // Unique within the pipeline, not empty.
  std::string name;
  // batch_size, batch_weight, batch_timeout, flush (OnTimeout or OnClose), the input buffer
  // (Overflow::Block only: a batcher must not drop a message), and the processors that run
  // handle_batch (processors.consumers is Broadway's concurrency; retry, deadline and rate limit
  // apply to each batch).
  BatcherOptions options;
  // A message's weight, for options.batch_weight (both or neither).
  std::function<std::uint64_t(const Message<T>&)> weight_of;
};

// Where messages come from besides push(): Broadway's producer (the NATS source, a range). A
// pipeline starts its feed once it runs and stops it first when it stops. start() and stop() are
// called once each, from the thread that builds or stops the pipeline; the feed pushes from
// threads of its own (producer() handles) and may close() the pipeline when it runs out.
template <class T>
class PipelineFeed {
 public:
  virtual ~PipelineFeed() = default;
  // Starts pushing into `into`. Throws to make the pipeline's constructor fail.
  virtual void start(Pipeline<T>& into) = 0;
  // Pushes nothing more once it returns: what it had taken from its origin is pushed (or left to
  // the origin) by then.
  virtual void stop() noexcept = 0;
  // Why the feed ended by itself (a broker gone for good); null while it runs or after stop().
  [[nodiscard]] virtual std::exception_ptr error() const { return nullptr; }
};

template <class T>
struct PipelineOptions {
  // Where push() and the feed put messages and processors take them from: GenStage's producer
  // buffer. Default: 10 000 messages under Overflow::Block (backpressure). A message dropped
  // (DropOldest) or refused (Reject, closed) by push() is acknowledged as failed at once.
  DispatcherOptions input = default_input();
  // Broadway's processors: consumers (concurrency), max_demand and min_demand, pinning, retry,
  // deadline, rate limit; on_error also receives what the callbacks below throw.
  PoolOptions processors;
  // Broadway's partition_by: messages with equal hashes go to the same processor, in order (one
  // processor per partition: processors.consumers partitions). Empty: any processor takes any.
  std::function<std::size_t(const Message<T>&)> partition_by;
  // Zero or more named batchers.
  std::vector<PipelineBatcher<T>> batchers;

  // Broadway's callbacks. Each may throw: a throw fails what it was given (after the retries of
  // processors.retry, or of the batcher's processors.retry).
  // Optional: each chunk a processor takes (up to max_demand - min_demand messages), before
  // handle_message sees any of them, e.g. to load what the chunk needs in one query.
  std::function<void(std::span<Message<T>>)> prepare_messages;
  // Required: one message, on a processor. Updates the data, routes to a batcher
  // (put_batcher, put_batch_key) or fails it (fail()).
  std::function<void(Message<T>&)> handle_message;
  // Required with batchers: one batch, on the batcher's processors. May fail single messages.
  std::function<void(std::span<Message<T>>, const BatchInfo&)> handle_batch;
  // Optional: failed messages, just before they are acknowledged (on the thread that acknowledges
  // them; for a dropped or refused message, the pushing thread).
  std::function<void(std::span<Message<T>>)> handle_failed;

  // How long the destructor lets stop() take (Broadway's shutdown), in [0, 24 h].
  std::chrono::nanoseconds shutdown = std::chrono::seconds(30);

  [[nodiscard]] static DispatcherOptions default_input() {
    DispatcherOptions o;
    o.capacity = 10'000;
    return o;
  }
};

// A snapshot of a pipeline's counters (exact once it has stopped).
struct PipelineStats {
  std::uint64_t successful = 0;  // acknowledged ok
  std::uint64_t failed = 0;      // acknowledged failed, by kind below
  std::uint64_t marked = 0;      // MessageFailure::Marked
  std::uint64_t threw = 0;
  std::uint64_t expired = 0;  // DeadlineExceeded
  std::uint64_t shutdown = 0;
  std::uint64_t dropped = 0;
  std::uint64_t refused = 0;
  std::uint64_t no_batcher = 0;
  DispatcherStats input;                  // summed over partitions with partition_by
  std::vector<ConsumerStats> processors;  // per processor
  std::vector<std::pair<std::string, BatcherStats>> batchers;
};

// What test_message() and test_batch() deliver: the messages, as acknowledged (Broadway's
// {:ack, ref, successful, failed}).
template <class T>
struct TestAck {
  std::vector<Message<T>> successful;
  std::vector<Message<T>> failed;
};

namespace detail {
// The options a Pipeline checks before it builds anything, without their types.
struct PipelineShape {
  const PoolOptions* processors = nullptr;
  bool has_partition_by = false;
  struct BatcherShape {
    std::string_view name;
    const BatcherOptions* options = nullptr;
    bool has_weight = false;
  };
  std::vector<BatcherShape> batchers;
  bool has_handle_message = false;
  bool has_handle_batch = false;
  std::chrono::nanoseconds shutdown{0};
};
// Throws std::invalid_argument naming the field ("PipelineOptions::batchers[1].name ...",
// "PipelineOptions::processors.consumers ...") unless every option is in range.
void check_pipeline_options(const PipelineShape& shape);
// The message of a DispatcherOptions error, as the field of PipelineOptions::input.
std::string input_option_error(std::string_view what);
}  // namespace detail

}  // namespace pushstage
