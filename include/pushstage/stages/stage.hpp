// pushstage/stages/stage.hpp: GenStage's producer_consumer: a pool whose handler emits zero or more
// events into a downstream sink (a Dispatcher, or any of the other dispatchers or a Batcher).
// Chain stages to build a pipeline: head Dispatcher -> Stage -> Dispatcher -> ... -> ConsumerPool.
//
// Threading: like ConsumerPool: the constructor starts the threads; members are safe from any
//            thread. Each consumer emits through its own producer handle of the sink (the handler's
//            second argument), so emitting takes the sink's fastest push path.
// Backpressure: emitting is the sink's push: into a bounded sink under Overflow::Block it waits
//            for room, so a slow downstream stage slows this one, which stops taking events, which
//            fills its own source and slows its producers: end to end, nothing is dropped. Under
//            Reject or DropOldest the sink refuses or drops instead, counted in its stats and
//            handed to its on_drop callback: nothing disappears unseen.
// Close:     a stage leaves its sink once it will emit no more: when its source is closed and
//            drained and every consumer has ended (every handler call returned), or when the
//            stage is destroyed. The last stage to leave a sink closes it (fan-in: a sink fed by
//            several stages closes after the last of them; PoolOptions::close_sink = false
//            leaves the sink to the user). Closing the head of a pipeline therefore drains each
//            stage in order and then closes the next: nothing in flight is lost. Like a
//            ConsumerPool, a stage never closes its source; destroying it ends its consumers once
//            they have handled (and emitted) what they hold.
// Ordering:  a consumer emits in the order it handles; with one consumer per stage the events of
//            one producer keep their order through the whole pipeline.
// Memory:    what a handler did before emitting e happens-before the downstream handler's call
//            for e (the sink's push/pop guarantee).
// Not guaranteed: order across consumers of a stage.
//
// How it works: pushstage/pool/pool_core.hpp (the consumers), the sink's own header (the push).
#pragma once

#include <concepts>
#include <functional>
#include <span>
#include <utility>

#include "pushstage/pool/pool_core.hpp"
#include "pushstage/pool/pool_options.hpp"
#include "pushstage/source.hpp"

namespace pushstage {

// What a stage can emit into: something with producer handles, close(), and the fan-in count
// (add_upstream(), remove_upstream(): the last upstream to leave closes the sink).
template <class S>
concept StageSink = requires(S& sink) {
  typename S::value_type;
  typename S::Producer;
  { sink.producer() } -> std::same_as<typename S::Producer>;
  sink.close();
  sink.add_upstream();
  sink.remove_upstream();
};

template <class In, StageSink Sink>
class Stage : public detail::PoolCore<In, typename Sink::Producer> {
  using Core = detail::PoolCore<In, typename Sink::Producer>;

 public:
  using Out = typename Sink::value_type;
  // The consumer's producer handle of the sink: emit with push(Out) (or try_push, push_bulk).
  using Emitter = typename Sink::Producer;
  // Called once per event, on a consumer thread; emits zero or more events.
  using Handler = std::function<void(In&, Emitter&)>;
  // Called once per chunk (1 .. max_demand - min_demand events, in the order taken).
  using BatchHandler = std::function<void(std::span<In>, Emitter&)>;
  // Receives each event that failed for good (see ConsumerPool).
  using DeadLetter = std::function<void(In&, const Failure&)>;

  // Starts options.consumers threads that drain `source` and emit into `sink`; both must outlive
  // the stage. Throws std::invalid_argument for invalid options or an empty handler. If a thread
  // cannot be started (std::system_error), stops the threads already started (each handles what
  // it holds), joins them, leaves the sink and rethrows; `source` stays open.
  Stage(detail::SourceRef<In> source, Sink& sink, PoolOptions options, Handler handler,
        DeadLetter dead_letter = {})
      : Core(std::move(source), options,
             {"Stage",
              std::move(handler),
              {},
              std::move(dead_letter),
              producer_of(sink),
              joiner_of(sink, options.close_sink),
              leaver_of(sink, options.close_sink),
              {},
              {},
              &sink}),
        sink_(sink) {}

  // The same with a batch handler: any callable taking (std::span<In>, Emitter&).
  template <detail::BatchCallable<In, Emitter> F>
  Stage(detail::SourceRef<In> source, Sink& sink, PoolOptions options, F batch_handler,
        DeadLetter dead_letter = {})
      : Core(std::move(source), options,
             {"Stage",
              {},
              BatchHandler(std::move(batch_handler)),
              std::move(dead_letter),
              producer_of(sink),
              joiner_of(sink, options.close_sink),
              leaver_of(sink, options.close_sink),
              {},
              {},
              &sink}),
        sink_(sink) {}

  [[nodiscard]] Sink& sink() const noexcept { return sink_; }

 private:
  static std::function<Emitter()> producer_of(Sink& sink) {
    return [&sink] { return sink.producer(); };
  }
  // With close_sink: the stage counts as one of the sink's upstreams from before its threads start
  // (join) until it will emit no more (leave; the pool calls it once).
  static std::function<void()> joiner_of(Sink& sink, bool close) {
    if (!close) return {};
    return [&sink] { sink.add_upstream(); };
  }
  static std::function<void()> leaver_of(Sink& sink, bool close) {
    if (!close) return {};
    return [&sink] { sink.remove_upstream(); };
  }

  Sink& sink_;
};

// Stage stage(source, sink, options, handler[, dead_letter]): the event type is the source's.
template <Source S, class Sink, class... Rest>
Stage(S&, Sink&, PoolOptions, Rest...) -> Stage<typename S::value_type, Sink>;

}  // namespace pushstage
