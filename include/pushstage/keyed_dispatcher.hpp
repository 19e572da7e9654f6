// pushstage/keyed_dispatcher.hpp: per-key order without one consumer per partition. A hash of
// each event's key picks one of N slots (a queue each); a slot with events is "ready", and any
// idle consumer takes the next ready slot, handles a batch of its events and hands it back. A slot
// is held by at most one consumer at a time, so the events of one key are handled in push order,
// while a hot key occupies one consumer and every other consumer serves the other keys (where a
// PartitionDispatcher would leave a partition's backlog to its single consumer).
//
// Threading: every member is safe from any thread. A Consumer handle belongs to one thread.
// Progress:  push() on an unbounded dispatcher is lock-free (two read-modify-writes on shared
// words,
//            one on the slot's counter); consumers wait for a ready slot in the core Dispatcher
//            (spin, then park). Bounded under Overflow::Block, a push waits while `capacity`
//            events are accepted and not yet handled.
// Ordering:  the events of one key pushed by one producer are handled in push order, by whichever
//            consumer holds their slot. Ready slots are served first come, first served.
// Memory:    what a producer did before push(e) happens-before the handler's call for e; what a
//            consumer's handler did for an event of a slot happens-before the next handler call
//            for that slot, on any consumer.
// Close:     every push that returned Pushed is handled; close() never waits for consumers.
// Failure:   a hash that throws: push() and try_push() throw it before accepting the event
//            (nothing counted; try_push leaves the event with the caller). std::bad_alloc from the
//            slot's queue: push() throws it, the event not accepted. Making a slot ready also may
//            allocate (ready_ grows a block when a thread first makes a slot ready, or fills its
//            block): if that fails after the event was accepted (push()) or while a consumer hands
//            a slot back (release()), std::terminate is called, since a slot with events that is
//            not ready would never be served and join() would hang.
// Not guaranteed: order across keys or producers; which consumer serves a slot.
//
// Protocol. gate_ = | closed: 1 bit | events accepted and not yet released: 63 bits |;
// slot.pending = events of the slot accepted and not yet released.
//   (K1) push, once the hash picked the slot (a throwing hash leaves nothing to undo): gate_ += 1
//        (fetch_add, or CAS when bounded to stay within capacity), seq_cst. If the closed bit was
//        set: undo (K5) and return Closed.
//   (K2) push: enqueue into the slot's moodycamel queue (release inside moodycamel).
//   (K3) push: p = slot.pending += 1 (acq_rel). p == 0: the slot was idle and this producer makes
//   it
//        ready: ready_.push(slot). ready_ is open: it closes only when gate_ counts 0 events, and
//        this event is counted from (K1) until its release.
//   (K4) consumer: pop a slot from ready_ (acquire); n = min(max, slot.pending) (acquire), n >= 1;
//        dequeue n events (only the holder dequeues; it retries a dequeue that misses an event
//        the count promises, which moodycamel makes visible by the release in (K2)); handle them.
//   (K5) consumer, after its handler calls returned: left = slot.pending -= n (acq_rel). left > 0:
//        push the slot back to ready_ (at the back: fair across keys). Then gate_ -= n (seq_cst);
//        if that leaves the closed bit and 0 events, close ready_, so waiting consumers drain out.
//   (K6) close(): gate_ |= closed (seq_cst); if it counted 0 events, close ready_ at once.
// Invariants: a slot with pending > 0 is either in ready_ or held by exactly one consumer: only the
//   RMW that takes pending from 0 schedules it (K3), and only the holder's (K5) reschedules or
//   idles it, all RMWs on one word being totally ordered. ready_ closes once, after every accepted
//   event was released: (K5)/(K6) are RMWs on gate_, so exactly the one that reaches closed|0 sees
//   it. Per-key order: the holder's handler calls happen-before its (K5) (program order), which the
//   next holder's (K4) reads from, directly or through ready_.
// Bounded: blocked producers wait on room_ (detail/signal.hpp: the (K5) RMW is its N1, the
//   predicate "count < capacity or closed" its A3).
#pragma once

#include <concurrentqueue/concurrentqueue.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <new>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "pushstage/detail/cache_line.hpp"
#include "pushstage/detail/signal.hpp"
#include "pushstage/detail/upstreams.hpp"
#include "pushstage/dispatcher.hpp"
#include "pushstage/dispatcher_options.hpp"

namespace pushstage {

struct KeyedStats {
  std::uint64_t pushed = 0;                // events accepted
  std::uint64_t handled = 0;               // events released by consumers after their handler calls
  std::uint64_t rejected = 0;              // events refused because the dispatcher was full
  std::uint64_t refused_closed = 0;        // events refused because the dispatcher was closed
  std::uint64_t buffered = 0;              // pushed - handled (waiting, or held by a consumer)
  std::vector<std::uint64_t> slot_pushed;  // per slot: events accepted into it
  // The slot with the most events pushed (the first of equals): the hot one.
  [[nodiscard]] std::size_t hottest() const noexcept;
};

namespace detail {
// Throws std::invalid_argument naming the argument: slots in [1, 65536], a hash, options with
// capacity in [0, 2^31 - 1] and overflow Block or Reject (Reject needs a capacity).
void check_keyed_options(std::size_t slots, bool has_hash, const DispatcherOptions& options);
}  // namespace detail

template <class T>
class KeyedDispatcher {
 public:
  using value_type = T;
  // The hash of an event's key: its slot is hash(event) % slots().
  using Hash = std::function<std::size_t(const T&)>;
  using DropHandler = typename Dispatcher<T>::DropHandler;
  class Producer;
  class Consumer;

  // `slots` queues (more slots than consumers: fewer keys share a slot). `options`: capacity
  // (0: unbounded) counts every event accepted and not yet handled; overflow Block or Reject;
  // spin, wake_order and max_spinners apply to consumers waiting for a ready slot. on_drop
  // receives events push() refused (Rejected, Closed). Throws std::invalid_argument.
  KeyedDispatcher(std::size_t slots, Hash hash, DispatcherOptions options = {},
                  DropHandler on_drop = {})
      : hash_((detail::check_keyed_options(slots, static_cast<bool>(hash), options),
               std::move(hash))),
        ready_(ready_options(options)),
        capacity_(options.capacity),
        reject_(options.overflow == Overflow::Reject),
        on_drop_(std::move(on_drop)) {
    slots_.reserve(slots);
    for (std::size_t i = 0; i < slots; ++i) slots_.push_back(std::make_unique<Slot>());
  }
  KeyedDispatcher(const KeyedDispatcher&) = delete;
  KeyedDispatcher& operator=(const KeyedDispatcher&) = delete;
  // No other thread may use the dispatcher any more; events not yet handled are destroyed (after
  // going to on_drop, if set, as DropReason::Destroyed).
  ~KeyedDispatcher() {
    if (!on_drop_) return;
    for (auto& s : slots_) {
      std::optional<T> left;
      while (s->queue.try_dequeue(left)) {
        on_drop_(std::move(*left), DropReason::Destroyed);
        left.reset();
      }
    }
  }

  // Accepts `event` into its key's slot. Bounded and full: Block waits, Reject returns Rejected.
  // After close(): Closed. A refused event goes to on_drop (else is destroyed).
  PushResult push(T event) {
    const PushResult r = push_one(event, true);
    if ((r == PushResult::Rejected || r == PushResult::Closed) && on_drop_) {
      on_drop_(std::move(event),
               r == PushResult::Closed ? DropReason::Closed : DropReason::Rejected);
    }
    return r;
  }
  // Like push() but never waits (full under Block: Rejected); a refused event stays with the
  // caller.
  [[nodiscard]] PushResult try_push(T& event) { return push_one(event, false); }

  // (K6). Refuses further pushes; releases blocked producers. Idempotent; never waits.
  void close() noexcept {
    const std::uint64_t g = gate_.fetch_or(kClosed, std::memory_order_seq_cst);  // K6
    if ((g & kClosed) != 0) return;
    if (g == 0) ready_.close();
    room_.notify_all();  // N1 was the fetch_or
  }
  [[nodiscard]] bool closed() const noexcept {
    return (gate_.load(std::memory_order_acquire) & kClosed) != 0;
  }
  // Closed, and every accepted event has been handled and released.
  [[nodiscard]] bool drained() const noexcept { return ready_.drained(); }
  // See Dispatcher::wait_until() and notify(): the same for this dispatcher's end.
  template <class Pred>
  void wait_until(Pred&& pred) noexcept {
    ready_.wait_until(std::forward<Pred>(pred));
  }
  void notify() noexcept { ready_.notify(); }

  // Fan-in (Stage with PoolOptions::close_sink): each stage emitting into this sink adds itself
  // before it starts and removes itself once it will emit no more; the last one to leave closes
  // it. So a sink fed by several stages closes after the last of them.
  void add_upstream() noexcept { upstreams_.add(); }
  void remove_upstream() noexcept {
    if (upstreams_.remove()) close();
  }

  [[nodiscard]] std::size_t slots() const noexcept { return slots_.size(); }
  [[nodiscard]] std::size_t slot_of(const T& event) const { return hash_(event) % slots_.size(); }

  [[nodiscard]] KeyedStats stats() const {
    KeyedStats s;
    for (const auto& slot : slots_) {
      // Statistics: relaxed. taken before pending: a release between the two reads can only
      // count its events once more, never lose them.
      const std::uint64_t taken = slot->released.load(std::memory_order_relaxed);
      const std::uint64_t pending = slot->pending.load(std::memory_order_relaxed);
      s.slot_pushed.push_back(taken + pending);
      s.pushed += taken + pending;
      s.handled += taken;
    }
    s.rejected = rejected_.load(std::memory_order_relaxed);
    s.refused_closed = refused_closed_.load(std::memory_order_relaxed);
    s.buffered = s.pushed - s.handled;
    return s;
  }

  [[nodiscard]] Producer producer() { return Producer(*this); }
  // A consumer handle, for ConsumerPool (or a hand-written consumer loop).
  [[nodiscard]] Consumer consumer() { return Consumer(*this); }

  class Producer {
   public:
    Producer(Producer&&) noexcept = default;
    Producer& operator=(Producer&&) = delete;
    Producer(const Producer&) = delete;
    Producer& operator=(const Producer&) = delete;
    ~Producer() = default;
    PushResult push(T event) { return d_->push(std::move(event)); }
    [[nodiscard]] PushResult try_push(T& event) { return d_->try_push(event); }

   private:
    friend class KeyedDispatcher;
    explicit Producer(KeyedDispatcher& d) : d_(&d) {}
    KeyedDispatcher* d_;
  };

  class Consumer {
   public:
    Consumer(Consumer&& other) noexcept
        : d_(other.d_),
          ready_(std::move(other.ready_)),
          reschedule_(std::move(other.reschedule_)),
          held_(std::exchange(other.held_, std::nullopt)),
          held_count_(std::exchange(other.held_count_, 0)) {}
    Consumer& operator=(Consumer&&) = delete;
    Consumer(const Consumer&) = delete;
    Consumer& operator=(const Consumer&) = delete;
    // Releases a slot still held.
    ~Consumer() { release(); }

    // (K4): waits until `deadline` (time_point::max(): no limit) for a ready slot, then appends up
    // to `max` (>= 1) of its events to `out`, in push order per producer. Drained: closed and
    // everything handled. The slot stays held until release(). Interruptible (Interrupter).
    TakeResult take(std::vector<T>& out, std::size_t max,
                    std::chrono::steady_clock::time_point deadline) {
      std::optional<std::uint32_t> id;
      const TakeResult r = ready_.take(id, deadline);
      if (r == TakeResult::Got) hold(*id, out, max);
      return r;
    }
    // (K4) without waiting: takes a ready slot's events if a slot is ready. Returns how many it
    // appended (0: none ready, nothing held).
    std::size_t try_take(std::vector<T>& out, std::size_t max) {
      std::optional<std::uint32_t> id = ready_.try_pop();
      return id ? hold(*id, out, max) : 0;
    }
    // Waits until a slot is probably ready, without taking it (see Dispatcher::Consumer).
    TakeResult wait_ready(std::chrono::steady_clock::time_point deadline) {
      return ready_.wait_ready(deadline);
    }
    [[nodiscard]] Interrupter interrupter() const noexcept { return ready_.interrupter(); }

    // (K5): done with the events of the held slot (every handler call for them returned).
    void release() noexcept {
      if (!held_) return;
      Slot& s = *d_->slots_[*held_];
      s.released.store(s.released.load(std::memory_order_relaxed) + held_count_,
                       std::memory_order_relaxed);  // one holder at a time; statistics
      const std::uint64_t left =
          s.pending.fetch_sub(held_count_, std::memory_order_acq_rel) - held_count_;  // K5
      // Open: these events are still counted. noexcept: a std::bad_alloc here terminates, see
      // Failure (the slot could not be handed back otherwise).
      if (left != 0) (void)reschedule_.push(*held_);
      d_->release_gate(held_count_);
      held_.reset();
      held_count_ = 0;
    }

   private:
    friend class KeyedDispatcher;
    explicit Consumer(KeyedDispatcher& d)
        : d_(&d), ready_(d.ready_.consumer()), reschedule_(d.ready_.producer()) {}
    // Holds slot `id` (just popped from ready_) and appends up to `max` of its events.
    std::size_t hold(std::uint32_t id, std::vector<T>& out, std::size_t max) {
      Slot& s = *d_->slots_[id];
      const std::uint64_t pending = s.pending.load(std::memory_order_acquire);  // K4, >= 1
      const std::size_t n = pending < max ? static_cast<std::size_t>(pending) : max;
      const std::size_t first = out.size();
      unsigned misses = 0;
      while (out.size() - first < n) {
        if (s.queue.try_dequeue_bulk(std::back_inserter(out), n - (out.size() - first)) == 0) {
          // The count promises the event and its enqueue happened-before; moodycamel's dequeue
          // can still miss it for a moment. Only we dequeue from this slot, so retry.
          if (++misses > 64) std::this_thread::yield();
        }
      }
      held_ = id;
      held_count_ = n;
      return n;
    }
    KeyedDispatcher* d_;
    typename Dispatcher<std::uint32_t>::Consumer ready_;
    typename Dispatcher<std::uint32_t>::Producer reschedule_;
    std::optional<std::uint32_t> held_;
    std::size_t held_count_ = 0;
  };

 private:
  static constexpr std::uint64_t kClosed = std::uint64_t{1} << 63;

  struct Slot {
    alignas(detail::kCacheLine) std::atomic<std::uint64_t> pending{0};  // K3, K5
    std::atomic<std::uint64_t> released{0};  // written by the holder only (statistics)
    moodycamel::ConcurrentQueue<T> queue{moodycamel::ConcurrentQueue<T>::BLOCK_SIZE};
  };

  static DispatcherOptions ready_options(DispatcherOptions o) {
    o.capacity = 0;  // at most slots() entries: never full
    o.overflow = Overflow::Block;
    return o;
  }

  PushResult push_one(T& event, bool may_wait) {
    // The user's hash first: if it throws, nothing has been counted yet.
    const std::size_t index = slot_of(event);
    if (const PushResult r = enter(may_wait); r != PushResult::Pushed) return r;  // K1
    Slot& s = *slots_[index];
    bool ok = false;
    try {
      ok = s.queue.enqueue(std::move(event));  // K2
    } catch (...) {
      release_gate(1);
      throw;
    }
    if (!ok) {
      release_gate(1);
      throw std::bad_alloc();
    }
    if (s.pending.fetch_add(1, std::memory_order_acq_rel) == 0) {  // K3 pairs with K4, K5
      make_ready(index);
    }
    return PushResult::Pushed;
  }

  // After (K3) took the slot's pending from 0: the event is accepted and cannot be taken back, and
  // no one else will make the slot ready. ready_ is unbounded and open (K3), so only
  // std::bad_alloc can fail the push: noexcept turns it into std::terminate (see Failure).
  void make_ready(std::size_t index) noexcept {
    (void)ready_.push(static_cast<std::uint32_t>(index));
  }

  // (K1). Pushed: the event may be enqueued. Closed or Rejected (full and not waiting): refused,
  // and counted.
  PushResult enter(bool may_wait) {
    if (capacity_ == 0) {
      if ((gate_.fetch_add(1, std::memory_order_seq_cst) & kClosed) == 0) {  // K1
        return PushResult::Pushed;
      }
      release_gate(1);
      return refuse_closed();
    }
    std::uint64_t g = gate_.load(std::memory_order_relaxed);
    for (;;) {
      if ((g & kClosed) != 0) return refuse_closed();
      if ((g & ~kClosed) >= capacity_) {
        if (reject_ || !may_wait) {
          rejected_.fetch_add(1, std::memory_order_relaxed);  // statistics
          return PushResult::Rejected;
        }
        room_.wait_for(
            [this] {  // A3 pairs with release_gate's and close()'s N1
              const std::uint64_t now = gate_.load(std::memory_order_seq_cst);
              return (now & kClosed) != 0 || (now & ~kClosed) < capacity_;
            },
            std::chrono::nanoseconds::max());
        g = gate_.load(std::memory_order_relaxed);
        continue;
      }
      if (gate_.compare_exchange_weak(g, g + 1, std::memory_order_seq_cst,
                                      std::memory_order_relaxed)) {  // K1
        return PushResult::Pushed;
      }
    }
  }
  PushResult refuse_closed() noexcept {
    refused_closed_.fetch_add(1, std::memory_order_relaxed);  // statistics
    return PushResult::Closed;
  }

  // The gate half of (K5), also the undo of (K1).
  void release_gate(std::uint64_t n) noexcept {
    const std::uint64_t g = gate_.fetch_sub(n, std::memory_order_seq_cst) - n;  // K5; N1 of room_
    if (g == kClosed) ready_.close();
    if (capacity_ != 0) room_.notify_all();
  }

  const Hash hash_;
  std::vector<std::unique_ptr<Slot>> slots_;
  Dispatcher<std::uint32_t> ready_;  // slots with events that no consumer holds
  const std::uint64_t capacity_;
  const bool reject_;
  const DropHandler on_drop_;
  alignas(detail::kCacheLine) std::atomic<std::uint64_t> gate_{0};
  std::atomic<std::uint64_t> rejected_{0};
  std::atomic<std::uint64_t> refused_closed_{0};
  detail::Upstreams upstreams_;  // fan-in: stages that may still emit
  detail::Signal room_;          // producers blocked for room
};

}  // namespace pushstage
