// pushstage/observe/observer.hpp: telemetry, in the spirit of Broadway's :telemetry events. An
// Observer given to a component (DispatcherOptions::observer, PoolOptions::observer,
// BatcherOptions::observer) receives what happens there: handler calls that start, stop or throw
// (with their duration), batches, drops and refusals (with their reason), retries and dead letters,
// pause and resume, resize, close and drain.
//
// Threading: on_event() runs on the thread where the event happened (a consumer thread for handler
//            events, the pushing thread for a drop, the caller of pause(), ...), concurrently from
//            several threads: an Observer must be thread-safe. attached() runs once on the
//            thread that builds the component, before its first event; detached() once, after its
//            last event (from its destructor).
// Cost:      without an observer a component pays one predictable branch per hook site and
//            nothing else (a handler call: one branch; drop and close paths: none beyond the branch
//            they had for on_drop). With one, each event is a virtual call made on the thread that
//            caused it: keep on_event() short (count, record, hand off).
// Failure:   every member is noexcept: an observer that throws terminates the process.
// Not reported: refusals that try_push() and push_bulk() hand back to their caller (the result
//            says so; stats().rejected counts them).
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>

#include "pushstage/dispatcher_options.hpp"
#include "pushstage/pool/pool_options.hpp"

namespace pushstage {

// What a component is; its Topology entry and its metrics' `kind` label (to_string()).
enum class ComponentKind : std::uint8_t {
  Dispatcher,
  PartitionDispatcher,
  BroadcastDispatcher,
  KeyedDispatcher,
  ConsumerPool,
  Stage,
  Batcher,
};
// "dispatcher", "partition_dispatcher", "broadcast_dispatcher", "keyed_dispatcher",
// "consumer_pool", "stage", "batcher".
[[nodiscard]] std::string_view to_string(ComponentKind kind) noexcept;

// Why a Batcher flushed a batch.
enum class BatchTrigger {
  Full,     // it reached batch_size
  Timeout,  // batch_timeout passed since its first event
  Close,    // the batcher was closed
};

// Who an event is about. One per component, alive from before its first event until after its
// last.
struct ComponentInfo {
  std::uint64_t id = 0;  // unique in the process, never reused (the Topology's id)
  std::string name;      // the options' name, or a default (see pushstage/observe/topology.hpp)
  ComponentKind kind = ComponentKind::Dispatcher;
  // What the observer's attached() returned for this component (the observer's own per-component
  // state: a Prometheus exporter keeps its histograms there).
  void* observer_state = nullptr;
};

enum class Telemetry : std::uint8_t {
  HandlerStart,      // a pool's handler call begins: count events, attempt, dispatch_latency
  HandlerStop,       // it returned: duration, count, attempt
  HandlerException,  // it threw: duration, count, attempt, error
  BatchStart,        // a Batcher's handler begins a batch: count (its size), trigger
  BatchStop,         // it ended: duration, count, trigger; error set if it threw
  Dropped,           // events destroyed undelivered: reason Oldest (DropOldest), Destroyed,
                     // Discarded (a mode's rule sent it nowhere) or Cancelled (a subscription left)
  Refused,           // a push() refused: reason Rejected (full) or Closed
  Retry,             // a failed call will be repeated: attempt (the one that failed), duration
                     // (the backoff before the next), error
  DeadLetter,        // an event failed for good: failure, attempt (calls made), error
  Paused,            // pause() paused a running pool
  Resumed,           // resume() let a paused pool go on
  Resized,           // resize(): count is the number of consumers from now on
  Closed,            // the component was closed (its first close())
  Drained,           // a pool's source is drained and every consumer ended: it takes no more
};
// "handler_start", "handler_stop", ... (snake_case of the enumerator).
[[nodiscard]] std::string_view to_string(Telemetry what) noexcept;

// One event. Fields that do not apply to `what` keep their defaults.
struct TelemetryEvent {
  TelemetryEvent(Telemetry w, const ComponentInfo& c) noexcept : what(w), component(c) {}

  Telemetry what;
  const ComponentInfo& component;
  std::size_t consumer = 0;                       // the pool's consumer, in start order
  std::uint64_t count = 0;                        // events concerned (Resized: consumers)
  std::chrono::nanoseconds duration{0};           // the call's, or the backoff (Retry)
  std::chrono::nanoseconds dispatch_latency{-1};  // HandlerStart, first attempt, events with
                                                  // pushstage_pushed_at() (below); else -1
  unsigned attempt = 0;                           // 1 for a first call
  DropReason reason = DropReason::Oldest;         // Dropped, Refused
  FailureKind failure = FailureKind::Threw;       // DeadLetter
  BatchTrigger trigger = BatchTrigger::Full;      // BatchStart, BatchStop
  std::exception_ptr error;                       // HandlerException, Retry, DeadLetter, BatchStop
};

// Receives the events of every component it was given to. Share one among components.
class Observer {
 public:
  virtual ~Observer() = default;
  // A component that has this observer was built: returns what its events' component.
  // observer_state will hold (null by default).
  virtual void* attached(const ComponentInfo& component) noexcept {
    (void)component;
    return nullptr;
  }
  // The component is gone: no event about it follows.
  virtual void detached(const ComponentInfo& component) noexcept { (void)component; }
  virtual void on_event(const TelemetryEvent& event) noexcept = 0;

 protected:
  Observer() = default;
  Observer(const Observer&) = default;
  Observer& operator=(const Observer&) = default;
};

// Dispatch latency (push to handler call) needs the push time, which a dispatcher does not keep
// per event (it would cost every push). An event type that carries it says so with a function
// found by argument-dependent lookup:
//   std::chrono::steady_clock::time_point pushstage_pushed_at(const MyEvent& e);
// and then a pool's HandlerStart events carry dispatch_latency (the Prometheus exporter's
// pushstage_dispatch_latency_seconds).
template <class T>
concept StampedEvent = requires(const T& event) {
  { pushstage_pushed_at(event) } -> std::convertible_to<std::chrono::steady_clock::time_point>;
};

}  // namespace pushstage
