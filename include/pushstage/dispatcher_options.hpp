// pushstage/dispatcher_options.hpp: the vocabulary of Dispatcher: its options, results and stats.
// Threading: plain value types; copy them freely.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace pushstage {

class Observer;  // pushstage/observe/observer.hpp

// What push() does when a bounded dispatcher is full.
enum class Overflow {
  Block,       // wait (parked on a futex, never busy) until a consumer makes room: backpressure
  Reject,      // refuse the new event: push returns PushResult::Rejected
  DropOldest,  // drop the oldest buffered event of one producer to make room; count it as dropped
};

// Which parked consumer a push wakes.
enum class WakeOrder {
  Fifo,  // the one parked longest: spreads work evenly (GenStage's first-come-first-served demand)
  Lifo,  // the one parked last: keeps few threads hot, lower latency at low load
};

// Why a dispatcher gave an event to its on_drop callback instead of to a consumer.
enum class DropReason {
  Oldest,     // Overflow::DropOldest dropped this buffered event to make room for a newer one
  Rejected,   // push() found the dispatcher full under Overflow::Reject
  Closed,     // push() came after close()
  Destroyed,  // still buffered when the dispatcher was destroyed
  Discarded,  // a dispatch mode's own rule sent it nowhere: a PartitionDispatcher router discarded
              // it (GenStage's hash returning :none), or a BroadcastDispatcher had no subscriber
  Cancelled,  // buffered for a BroadcastDispatcher subscription when it left (GenStage's cancel)
};

// Refusals (Rejected, Closed) have odd values: Dispatcher::push tests that bit (asserted there).
enum class PushResult {
  Pushed,         // the event is buffered (or already handed to a consumer)
  Rejected,       // bounded, full, Overflow::Reject (or try_push under Overflow::Block)
  DroppedOldest,  // the event is buffered; an older one was dropped to make room
  Closed,         // close() came first; the event was not taken
  Discarded = 5,  // a dispatch mode's own rule sent it nowhere (DropReason::Discarded); counted
};

struct DispatcherOptions {
  // Most events buffered at once; 0 means unbounded. Bounded: 1 .. 2^31-1.
  std::size_t capacity = 0;
  // What a push does when a bounded dispatcher is full. Reject and DropOldest need capacity > 0.
  Overflow overflow = Overflow::Block;
  // Which parked consumer the next event wakes.
  WakeOrder wake_order = WakeOrder::Fifo;
  // Wake the parked consumer nearest the pushing thread first: one that parked on the pusher's own
  // CPU (waking a thread on one's own CPU is cheap; one on another, idle CPU costs that CPU's
  // wake-up), then one sharing its cache (cpus.hpp: cache_domain()); wake_order decides among
  // equals. A consumer that wakes another for an event it leaves prefers one on another CPU
  // instead. false: wake_order alone.
  bool wake_nearby = true;
  // Pushes without a locked instruction, for tight loops where consumers rarely park: a push
  // publishes its count with a plain store, and every consumer that is about to park (or a
  // spinner that hands on events) and finds nothing pays a heavy fence for it instead:
  // membarrier(2), a system call that interrupts every CPU running a thread of this process
  // (microseconds). Measured here (README.md, How it works): tight-loop throughput 1.63-1.84x
  // (bounded 1.35x); the seed workload, where a consumer parks for every event, 7-8% more latency
  // and 4-6% more CPU.
  // Without membarrier (kernels before 4.14) it changes nothing.
  bool fast_push = false;
  // How long a consumer with nothing to do spins (with a pause instruction) before it parks.
  // A spinning consumer receives an event in well under a microsecond; waking a parked one costs
  // the producer a system call and the consumer a wake-up, tens of microseconds on a busy VM
  // (README.md, Results). 0 disables spinning. Must be >= 0.
  // The longest spin: a consumer whose spins keep finding nothing (gaps longer than `spin`)
  // halves its own window, down to spin / 32, and spins the full `spin` every 16th wait to notice
  // when gaps shorten; a spin that finds an event restores the full window.
  std::chrono::nanoseconds spin = std::chrono::microseconds(20);
  // Most consumers spinning at once; more would steal the cores that the work needs. The default
  // (kAutoSpinners) is one less than the CPUs this process may use, at least 1. Explicit values
  // must lie in [0, CPUs this process may use].
  static constexpr unsigned kAutoSpinners = ~0U;
  unsigned max_spinners = kAutoSpinners;
  // The dispatcher's name in the Topology, its telemetry and its metrics, at most 128 bytes.
  // Empty: "dispatcher-N" (pushstage/observe/topology.hpp). A mode names itself with it.
  std::string name;
  // Receives its drops, refusals and close (pushstage/observe/observer.hpp). Null: none.
  std::shared_ptr<Observer> observer;
};

// A snapshot of a dispatcher's counters. Counters are exact once producers and consumers have
// stopped; while they run, each field is a recent value and fields may disagree by in-flight
// events.
struct DispatcherStats {
  std::uint64_t pushed = 0;          // events accepted (Pushed or DroppedOldest)
  std::uint64_t popped = 0;          // events handed to consumers
  std::uint64_t rejected = 0;        // events refused because the dispatcher was full
  std::uint64_t dropped = 0;         // buffered events dropped by Overflow::DropOldest
  std::uint64_t refused_closed = 0;  // events refused because the dispatcher was closed
  std::uint64_t buffered = 0;        // pushed - popped - dropped
  std::uint32_t parked = 0;          // consumers asleep waiting for an event
  std::uint32_t spinning = 0;        // consumers spinning for an event
  // GenStage's demand: consumers that asked for an event and have none yet.
  [[nodiscard]] std::uint32_t waiting() const noexcept { return parked + spinning; }
};

}  // namespace pushstage
