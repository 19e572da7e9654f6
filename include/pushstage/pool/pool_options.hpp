// pushstage/pool/pool_options.hpp: the vocabulary of ConsumerPool and Stage: their options and
// stats. Threading: plain value types; copy them freely.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <vector>

namespace pushstage {

class RateLimiter;  // pushstage/pool/rate_limiter.hpp

// Who asks for events: GenStage's subscription mode.
enum class DemandMode {
  Automatic,  // each consumer asks again as it handles events (max_demand, min_demand)
  Manual,     // the pool takes events only against demand granted by ask(n), e.g. by handlers that
              // finish asynchronously; it starts with none
};

// What a pool does when a handler throws: call it again, after a growing wait, up to max_attempts
// calls in all. Retries happen on the same consumer, before it takes its next event, so the order
// of one consumer's events is kept (and the consumer is busy while it waits). With a rate limit,
// each retry takes its events' grants again, after the backoff.
struct RetryPolicy {
  // Handler calls per event (per chunk, for a batch handler), in [1, 100]; 1 means no retry.
  unsigned max_attempts = 1;
  // Wait before the second call, >= 0; each later wait is `multiplier` times the one before
  // (multiplier in [1, 100]), at most max_backoff (>= backoff).
  std::chrono::nanoseconds backoff = std::chrono::milliseconds(10);
  double multiplier = 2;
  std::chrono::nanoseconds max_backoff = std::chrono::seconds(1);
};

enum class FailureKind {
  Threw,             // the handler threw on every attempt
  DeadlineExceeded,  // PoolOptions::deadline passed before or during handling
};

// Why an event failed for good; given to the dead-letter callback with the event.
struct Failure {
  FailureKind kind = FailureKind::Threw;
  std::exception_ptr error;  // the last exception thrown (null when none was)
  unsigned attempts = 0;     // handler calls made for the event
};

// What a pinned consumer is pinned to.
enum class PinTo {
  Cpu,          // its one CPU: its cache stays warm, and it never moves
  CacheDomain,  // the CPUs sharing its CPU's last-level cache (cpus.hpp: cache_domain()): the
                // kernel may run it on any of them, usually near the thread that wakes it
};

struct PoolOptions {
  // Consumer threads, in [1, 65536]. Over a PartitionDispatcher or a BroadcastDispatcher: exactly
  // one per partition or subscriber.
  std::size_t consumers = 1;
  // Pin each consumer thread to one CPU. The pools of a process share the CPUs: each pinned
  // consumer takes its CPU when its thread starts and gives it back when it ends (a destroyed
  // pool, a consumer retired by resize()), and without `cpus` it takes the allowed CPU that runs
  // the fewest pinned consumers of this process (ties: the lowest id). So two pools of one
  // consumer run on two CPUs. Unpinned consumers, and threads pinned by other means, count for
  // no CPU.
  bool pin = true;
  // With pin: the consumer's CPU alone (Cpu), or every CPU of that CPU's cache domain
  // (CacheDomain; the CPU still counts for its home CPU above). Cpu suits CPU-bound handlers that
  // keep their data warm; CacheDomain suits handlers that wait (I/O, sleeps) under irregular
  // arrivals, where waking a consumer pinned to another, idle CPU costs more than a cache that
  // is shared anyway (README: Results). On a machine whose CPUs all share one cache this is
  // "unpinned, but within the allowed CPUs".
  PinTo pin_to = PinTo::Cpu;
  // CPUs to pin to, used as given: consumer i runs on cpus[i % cpus.size()], however loaded (its
  // consumers still count, so that automatic pools keep off these CPUs). Each must be one this
  // process may use. Empty: automatic (above). Must be empty when pin is false.
  std::vector<int> cpus;
  // GenStage's demand. A consumer asks for up to max_demand events, handles them in chunks of at
  // most max_demand - min_demand, and asks again when what it holds falls to min_demand.
  // max_demand in [1, 65536] (GenStage's default is 1000, ours 1: one event at a time).
  std::size_t max_demand = 1;
  // In [0, max_demand - 1]; kAutoMinDemand means max_demand / 2 (GenStage's default; 0 when
  // max_demand is 1).
  static constexpr std::size_t kAutoMinDemand = ~std::size_t{0};
  std::size_t min_demand = kAutoMinDemand;
  // Automatic, or Manual: events are taken only against ask(n) (never more than max_demand at a
  // time per consumer either).
  DemandMode demand = DemandMode::Automatic;
  // GenStage's `demand: :accumulate` at init: the pool starts paused (see pause()): its consumers
  // take no event until resume(), so a topology can be wired completely before anything flows.
  bool start_paused = false;
  // Called on the consumer's thread each time the handler throws (retried or not); the consumer
  // goes on. Must not throw (std::terminate if it does).
  std::function<void(std::exception_ptr)> on_error;
  // A handler that throws is called again under this policy; an event that still fails goes to
  // the dead-letter callback (the pool's last constructor argument).
  RetryPolicy retry;
  // Per-event deadline, >= 0 (0: none), counted from when a consumer takes the event from its
  // source. Not yet handled by then: not handled at all. Handled (or retried) past it: failed,
  // even if the handler returned. Either way the event goes to the dead-letter callback as
  // FailureKind::DeadlineExceeded. A handler call is never interrupted. For a batch handler the
  // chunk's oldest event sets the deadline of the whole chunk.
  std::chrono::nanoseconds deadline{0};
  // Broadway's rate limiting: every handler call, retries included, takes its events' grants from
  // this limiter first (a chunk may be split to fit a window; a retried chunk waits for grants for
  // all its events). Share one limiter between pools to limit them together; change its rate
  // while they run with set_rate(). Null: no limit.
  std::shared_ptr<RateLimiter> rate_limit;
  // Stage only: count the stage as an upstream of its sink, which closes when the last of its
  // upstreams leaves (a stage leaves once its source is drained and every consumer has ended, or
  // when it is destroyed). false: the stage never closes its sink; the user does.
  bool close_sink = true;
};

struct ConsumerStats {
  int cpu = -1;  // its CPU (pinned to it, or with PinTo::CacheDomain its home); -1: not pinned
  std::uint64_t handled = 0;  // events whose handler returned normally (in time)
  std::uint64_t failed = 0;   // events that failed for good (went to the dead letter)
  std::uint64_t retried = 0;  // handler calls repeated after a throw
  std::uint64_t expired = 0;  // of the failed: those past PoolOptions::deadline
  // Time inside the handler. With max_demand 1 a handler that follows the previous one without a
  // wait in between is timed from the previous one's end (one clock read per event), so the take
  // between them (well under a microsecond) counts too.
  std::chrono::nanoseconds busy{0};
  bool active = true;  // false once it ended (retired by resize(), or drained)
};

}  // namespace pushstage
