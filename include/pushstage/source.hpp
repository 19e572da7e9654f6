// pushstage/source.hpp: what a ConsumerPool, a Stage or a Batcher takes events from (a Source),
// and what each of its consumers holds on it (a consumer handle): GenStage's Dispatcher behaviour,
// in C++. Dispatcher, PartitionDispatcher, BroadcastDispatcher and KeyedDispatcher are Sources;
// so is a type a user writes with the members below (README: "Write a dispatch mode"). A pool
// knows a source only through this contract.
//
// A Source S of events S::value_type:
//   s.handle_for(i)      the handle consumer i of a pool takes through: called once per consumer,
//                        on that consumer's thread. i < fixed_consumers(), or any i when it is 0.
//   s.fixed_consumers()  0: any number of consumers (a pool over the source may resize); n: exactly
//                        n, consumer i owning part i (a partition, a subscriber).
//   optional:
//   s.notify()           wakes every handle's wait_until() (DemandMode::Manual needs it).
//   s.consumer_role()    what each of the fixed consumers owns, for error messages.
// A consumer handle H (owned by one consumer thread; moved, never copied):
//   h.take(out, max, deadline) -> TakeResult: waits until `deadline` (time_point::max(): no limit)
//        for at least one event and appends between 1 and `max` to `out` (Got); Drained once
//        nothing more will come through this handle (the source is closed and its part is empty);
//        Interrupted when the handle's Interrupter fired (once per interrupt()); TimedOut.
//   h.try_take(out, max) -> size_t: appends what is there now, up to `max`; never waits.
//   h.interrupter() -> Interrupter: ends the handle's current or next wait from another thread.
//        Pools retire and stop consumers with it, so every wait of a handle must run in a
//        Dispatcher (or a core QueueCore): that is where an Interrupter comes from.
//   optional:
//   h.take(std::optional<T>&, deadline): one event without a vector (max_demand 1).
//   h.release() noexcept: done with what the last take returned (every handler call for it
//        returned). A handle with release() hands its events back as a whole, so the pool takes
//        more only after release() (KeyedDispatcher: the slot, and the key's order).
//   h.wait_ready(deadline), h.drained(), h.wait_until(pred): DemandMode::Manual takes demand only
//        once an event is there (wait_ready: wait for one without taking it), and waits for
//        demand on the source's notice (wait_until: re-evaluates pred when the source closes or
//        drains, or notify() is called; pred reads with seq_cst loads).
// Contract a source keeps: every event it accepted is taken once, through one handle (or dropped
//   under its own policy and reported by it); takes through one handle keep the order the source
//   promises; Drained is final; an interrupt is never lost (a wait checks for it before it
//   sleeps: core/queue_core.hpp, W3).
// Threading: handle_for(), fixed_consumers() and notify() are called from any thread; a handle's
//   members from its consumer's thread, except interrupter()'s result, which any thread may use.
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <vector>

#include "pushstage/core/queue_core.hpp"

namespace pushstage {

// How a consumer handle's take() or wait_ready() ended.
enum class TakeResult {
  Got,          // take: events were moved out; wait_ready: an event is (probably) there
  TimedOut,     // the deadline came first
  Drained,      // nothing more will come through this handle: the source is closed and empty
  Interrupted,  // Interrupter::interrupt() ended this wait (once per interrupt())
};

// Ends a consumer handle's current or next take() or wait_ready() with TakeResult::Interrupted
// (once per interrupt(); Dispatcher's pop() and pop_for() are not interrupted). Copyable;
// interrupt() is safe from any thread for as long as the dispatcher lives, also after the handle
// is gone (the interrupt may then reach a later handle: callers treat Interrupted as "re-check
// your own conditions"). Get one from a Dispatcher<T>::Consumer or a mode's consumer handle.
class Interrupter {
 public:
  void interrupt() const noexcept { core_->interrupt(*slot_); }

 private:
  template <class>
  friend class Dispatcher;
  template <class>
  friend class KeyedDispatcher;
  Interrupter(detail::QueueCore& core, detail::ConsumerSlot& slot) : core_(&core), slot_(&slot) {}
  detail::QueueCore* core_;
  detail::ConsumerSlot* slot_;
};

namespace detail {
// A core wait's end, as a consumer handle reports it.
constexpr TakeResult take_result(QueueCore::WaitResult r) noexcept {
  switch (r) {
    case QueueCore::WaitResult::kGot:
      return TakeResult::Got;
    case QueueCore::WaitResult::kDrained:
      return TakeResult::Drained;
    case QueueCore::WaitResult::kTimedOut:
      return TakeResult::TimedOut;
    case QueueCore::WaitResult::kInterrupted:
      break;
  }
  return TakeResult::Interrupted;
}
}  // namespace detail

// The Source members of a source whose consumers all share it, as many as a pool likes
// (Dispatcher, KeyedDispatcher; a mode of your own): each consumer's handle is the source's
// consumer(). Derive from SharedSource<YourSource> (CRTP).
template <class Derived>
class SharedSource {
 public:
  [[nodiscard]] auto handle_for(std::size_t /*consumer_index*/) {
    return static_cast<Derived*>(this)->consumer();
  }
  [[nodiscard]] static constexpr std::size_t fixed_consumers() noexcept { return 0; }

 protected:
  SharedSource() = default;
  ~SharedSource() = default;
};

// A consumer's handle on a source of T (see above).
template <class H, class T>
concept ConsumerHandle = std::move_constructible<H> &&
    requires(H& h, const H& ch, std::vector<T>& out, std::size_t max,
             std::chrono::steady_clock::time_point deadline) {
  { h.take(out, max, deadline) } -> std::same_as<TakeResult>;
  { h.try_take(out, max) } -> std::convertible_to<std::size_t>;
  { ch.interrupter() } -> std::same_as<Interrupter>;
};

// What pools, stages and batchers take events from (see above).
template <class S>
concept Source = requires(S& s, const S& cs, std::size_t i) {
  typename S::value_type;
  { s.handle_for(i) } -> ConsumerHandle<typename S::value_type>;
  { cs.fixed_consumers() } -> std::convertible_to<std::size_t>;
};

}  // namespace pushstage
