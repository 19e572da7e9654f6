// pushstage/pool/consumer_pool.hpp: N consumer threads, each pinned to a CPU, that drain a source
// and call a handler for every event (or for every chunk of events). The source is any Source
// (pushstage/source.hpp): a Dispatcher (the consumers share it: GenStage's demand dispatch), a
// PartitionDispatcher (one consumer per partition), a BroadcastDispatcher (one consumer per
// subscriber), a KeyedDispatcher (any consumer takes any key that has nothing in flight; per-key
// order kept), or a dispatch mode of your own.
//
// Threading: the constructor starts the threads; the other members are safe from any thread.
//            The handler runs on the pool's threads, concurrently with itself.
// Progress:  a consumer with nothing to do waits inside its source (spin, then park); it never
//            busy-waits beyond the source's spin window.
// Demand:    GenStage's. Each consumer takes up to max_demand events (default 1), handles them in
//            chunks of at most max_demand - min_demand, and takes more (without waiting) when what
//            it holds falls to min_demand. With max_demand 1 a slow event never holds back a second
//            one: irregular work spreads over idle consumers.
// Ordering:  one consumer handles the events it takes in the order it took them, so the events of
//            one producer that reach one consumer are handled in push order; none across consumers.
// Close:     a pool never closes its source (the source may be shared, and is the user's). After
//            source.close(), join() returns once every event pushed before close() has been
//            handled exactly once. Destroying a pool stops it: each consumer handles what it holds
//            (a paused pool is resumed for that), takes no more and ends, and the destructor joins;
//            what the pool did not take stays in the source for other consumers (or its on_drop,
//            when the source is destroyed). To handle everything: close the source, then join().
// Failure:   a handler that throws is called again under PoolOptions::retry (same consumer, after
//            a backoff); on_error receives every exception. An event that still fails, or that
//            misses PoolOptions::deadline, counts as failed and goes to the dead-letter callback
//            (for a batch handler: every event of the chunk). Neither callback may throw
//            (std::terminate if one does).
// Flow:      PoolOptions::demand = Manual takes events only against ask(n) (or ask_consumer(i, n),
//            demand for one consumer: one partition or subscriber); pause() holds demand (events
//            stay in the source) until resume(), and PoolOptions::start_paused starts the pool
//            paused; PoolOptions::rate_limit caps handler calls per interval across pools;
//            resize(n) adds or retires consumers at run time.
// Memory:    what the producer did before pushing e happens-before the handler's call for e.
// Not guaranteed: which consumer gets an event; order across consumers.
//
// Members (declared in detail::PoolCore, each with its contract): join(), size(), stats(),
// pause(), resume(), paused(), ask(n), ask_consumer(i, n), demand(), resize(n), lift_limits(),
// name().
// How it works: pushstage/pool/pool_core.hpp.
#pragma once

#include <functional>
#include <span>
#include <utility>

#include "pushstage/pool/pool_core.hpp"
#include "pushstage/pool/pool_options.hpp"
#include "pushstage/source.hpp"

namespace pushstage {

template <class T>
class ConsumerPool : public detail::PoolCore<T, detail::NoOutput> {
  using Core = detail::PoolCore<T, detail::NoOutput>;

 public:
  // Called once per event, on a consumer thread.
  using Handler = std::function<void(T&)>;
  // Called once per chunk (1 .. max_demand - min_demand events, in the order taken).
  using BatchHandler = std::function<void(std::span<T>)>;
  // Receives each event that failed for good (it may move from it), on the consumer's thread.
  using DeadLetter = std::function<void(T&, const Failure&)>;

  // Starts options.consumers threads draining `source` (see above), which must outlive the pool.
  // Throws std::invalid_argument for invalid options or an empty handler, before starting any.
  // If a thread cannot be started (std::system_error), stops the threads already started (each
  // handles what it holds), joins them and rethrows; `source` stays open.
  ConsumerPool(detail::SourceRef<T> source, PoolOptions options, Handler handler,
               DeadLetter dead_letter = {})
      : Core(std::move(source), std::move(options),
             {"ConsumerPool", std::move(handler), {}, std::move(dead_letter), {}, {}, {}}) {}

  // The same with a batch handler: any callable taking std::span<T> (and not T&).
  template <detail::BatchCallable<T> F>
  ConsumerPool(detail::SourceRef<T> source, PoolOptions options, F batch_handler,
               DeadLetter dead_letter = {})
      : Core(std::move(source), std::move(options),
             {"ConsumerPool",
              {},
              BatchHandler(std::move(batch_handler)),
              std::move(dead_letter),
              {},
              {},
              {}}) {}
};

// ConsumerPool pool(source, options, handler[, dead_letter]): the event type is the source's.
template <Source S, class... Rest>
ConsumerPool(S&, PoolOptions, Rest...) -> ConsumerPool<typename S::value_type>;

}  // namespace pushstage
