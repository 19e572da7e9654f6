// pushstage/dispatcher.hpp: hand events from many producers to consumers that ask for them.
//
// Threading: every member is safe to call from any thread. A Producer or Consumer handle belongs
//            to one thread at a time; handles must be destroyed before their dispatcher.
// Progress:  push() on an unbounded dispatcher, try_push() and try_pop() are lock-free; pop()
//            spins briefly and then parks on a futex; push() under Overflow::Block parks while the
//            buffer is full.
// Ordering:  events pushed through one Producer handle (or by one thread without a handle) are
//            popped in push order; there is no order across producers.
// Memory:    what a producer did before push(e) happens-before the pop() that returns e.
// Fairness:  Consumer handles rotate over producers (after at most 16 events of one producer), so a
//            light producer is not stuck behind a heavy one's backlog. There is no FIFO order
//            across producers.
// Tokenless: push(), pop() and the other calls without a handle use handles that the calling
//            thread keeps for the dispatcher (core/thread_cache.hpp), made on the thread's first
//            call: a Producer (so a thread's tokenless pushes are one producer, in order) and a
//            Consumer (so tokenless pops rotate fairly). They cost a few pointers' scan more than
//            a handle; each thread that used the dispatcher keeps a producer slot, a consumer slot
//            and a moodycamel producer until it exits or the dispatcher is destroyed. Two kinds of
//            push go without the thread's Producer, through moodycamel's implicit producer and a
//            slot leased for the call: a push made inside another push of the same thread on the
//            same dispatcher (from on_drop), and pushes from thread_local destructors after the
//            thread's cache has gone. They are in order among themselves, not with the thread's
//            other pushes.
// Drops:     nothing disappears unseen. With an on_drop callback, every event the dispatcher
//            destroys without handing it to a consumer goes to on_drop first, on the thread that
//            caused it: the DropOldest victim (inside the push that dropped it), the event of a
//            push() refused as Rejected or Closed (once that push has ended), and events still
//            buffered at destruction. try_push() and push_bulk() leave refused events with the
//            caller instead. stats() counts drops (dropped) and refusals (rejected) either way.
// Observed:  DispatcherOptions::name names it in the Topology (it joins when built, leaves when
//            destroyed); DispatcherOptions::observer receives its drops, the refusals of push()
//            and its close (pushstage/observe/observer.hpp), on the thread that caused them. The
//            push and pop paths have no hook: a drop or refusal takes the branch it took for
//            on_drop.
// Close:     close() is idempotent. Every push that returned Pushed or DroppedOldest, including
//            those concurrent with close(), is popped: pop() returns nullopt only once the
//            dispatcher is closed and every such event has been popped. Pushes that start after
//            close() return Closed and leave the event with the caller (try_push) or destroy it
//            (push). close() waits for pushes in progress to finish (microseconds; a producer
//            blocked for room is released first); it never waits for consumers.
// Memory use: unbounded dispatchers grow with the backlog and never return memory to the system
//            (moodycamel keeps its blocks). Bounded ones buffer at most `capacity` events; the
//            queue keeps up to about capacity blocks of 32 events per producer that ever filled it.
// Events:    T must be nothrow move constructible and destructible (checked at compile time): a
//            move that threw inside the lock-free queue would lose the event uncounted.
// Not guaranteed: order across producers; exact stats() while producers and consumers run.
//
// How it works: pushstage/core/queue_core.hpp (the wake protocol and its memory orderings).
#pragma once

#include <concurrentqueue/concurrentqueue.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <iterator>
#include <memory>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "pushstage/core/queue_core.hpp"
#include "pushstage/core/thread_cache.hpp"
#include "pushstage/core/upstreams.hpp"
#include "pushstage/dispatcher_options.hpp"
#include "pushstage/observe/listing.hpp"
#include "pushstage/source.hpp"

#ifdef PUSHSTAGE_FAULT_INJECTION
// tests/fault only (a private compile definition of that test target, never set for users): the
// test defines it to make an enqueue fail as moodycamel's does when it cannot allocate a block.
bool pushstage_fault_enqueue_fails() noexcept;
#endif

namespace pushstage {

template <class T>
class Dispatcher : public detail::FanIn<Dispatcher<T>>, public SharedSource<Dispatcher<T>> {
  // moodycamel moves an event out of its block during a dequeue and destroys it if the move
  // throws: the event would be lost and never counted as popped, which wedges the exact count that
  // parking and close rely on. So a throwing move is refused here rather than half-handled.
  static_assert(std::is_nothrow_move_constructible_v<T> && std::is_nothrow_destructible_v<T>,
                "Dispatcher<T> needs a T whose move constructor is noexcept (and a noexcept "
                "destructor): a move that throws inside the lock-free queue would lose the event. "
                "Mark the move constructor noexcept, or push a std::unique_ptr<T> instead");
  static_assert(!std::is_reference_v<T> && !std::is_const_v<T>, "T must be a plain object type");

  // Consumer handles move on to the next producer's sub-queue after 16 events of one (moodycamel
  // rotates after 256 by default): a light producer is not stuck behind a heavy one's backlog, at
  // the price of contention when several consumers serve the same producers. The measurements
  // that chose 16 are in README.md (How it works, Fairness).
  struct QueueTraits : moodycamel::ConcurrentQueueDefaultTraits {
    static constexpr std::uint32_t EXPLICIT_CONSUMER_CONSUMPTION_QUOTA_BEFORE_ROTATE = 16;
  };
  using Queue = moodycamel::ConcurrentQueue<T, QueueTraits>;
  using Clock = std::chrono::steady_clock;

 public:
  using value_type = T;
  // Receives an event the dispatcher would otherwise destroy (see Drops above); it may move from
  // it. Runs on the thread that caused the drop, must be short (a DropOldest push waits for it,
  // and close() waits for that push) and must not throw (std::terminate if it does).
  using DropHandler = std::function<void(T&& event, DropReason why)>;
  class Producer;
  class Consumer;
  class Transaction;

  // Throws std::invalid_argument for options out of range (the message names the field).
  explicit Dispatcher(DispatcherOptions options = {}, DropHandler on_drop = {})
      : core_(options),
        queue_(initial_queue_capacity(options)),
        on_drop_(std::move(on_drop)),
        listing_(listing_spec(options)),
        notify_drops_(on_drop_ || listing_.observer() != nullptr) {
    listing_.join();
  }
  // A part of a dispatch mode or a Batcher (`part`): not listed in the Topology; its drops are
  // reported as the parent's. options.name and options.observer are not used.
  Dispatcher(detail::PartOf part, const DispatcherOptions& options, DropHandler on_drop = {})
      : core_(options),
        queue_(initial_queue_capacity(options)),
        on_drop_(std::move(on_drop)),
        listing_(part),
        notify_drops_(on_drop_ || listing_.observer() != nullptr) {}
  // Destroys the events still buffered (after giving them to on_drop, if set). No other thread may
  // use the dispatcher any more.
  ~Dispatcher() {
    detail::ThreadCache::retire(*cache_owner_);  // T1: threads' cached handles no longer touch us
    listing_.leave();
    if (notify_drops_) drop_buffered();
  }
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Buffers `event`, or hands it to a waiting consumer. Bounded and full: Block waits for room,
  // Reject returns Rejected (the event goes to on_drop, else is destroyed), DropOldest drops a
  // buffered event instead (to on_drop). Returns Closed after close() (the event goes to on_drop,
  // else is destroyed). Throws std::bad_alloc if the queue cannot grow.
  PushResult push(T event) {
    if (Producer* p = thread_producer()) [[likely]]
      return refused(push_one(*p->slot_, &p->token_, event, true), event);
    return refused(push_without_handles(event, true), event);
  }

  // Like push() but never waits: when full under Block it returns Rejected. The event is moved
  // from only when the result is Pushed or DroppedOldest; otherwise it stays with the caller.
  [[nodiscard]] PushResult try_push(T& event) {
    if (Producer* p = thread_producer()) [[likely]]
      return push_one(*p->slot_, &p->token_, event, false);
    return push_without_handles(event, false);
  }

  // Pushes [first, last) in order, moving from the events it accepts. Returns how many it
  // accepted: a prefix of the range. Fewer than all only when bounded under Reject (the rest are
  // rejected and counted) or when close() interrupts it.
  template <std::forward_iterator It>
  std::size_t push_bulk(It first, It last) {
    if (Producer* p = thread_producer()) [[likely]]
      return push_many(*p->slot_, &p->token_, first, last);
    SlotLease lease(core_);
    return push_many(lease.slot, nullptr, first, last);
  }

  // The next event; waits for one. nullopt only once closed and drained. A thread's first
  // tokenless pop makes the Consumer handle the thread keeps (see Tokenless); it may throw
  // std::bad_alloc.
  std::optional<T> pop() {
    if (ThreadHandles* h = thread_handles()) [[likely]]
      return h->consumer().pop();
    return pop_tokenless(Clock::time_point::max());
  }
  // The next event if one is buffered (it may miss an event that is being pushed concurrently).
  std::optional<T> try_pop() {
    if (ThreadHandles* h = thread_handles()) [[likely]]
      return h->consumer().try_pop();
    std::optional<T> out;
    if (queue_.try_dequeue(out)) after_pop_shared();
    return out;
  }
  // Like pop() but gives up after `timeout` (negative counts as 0): nullopt on timeout or drained.
  std::optional<T> pop_for(std::chrono::nanoseconds timeout) {
    if (ThreadHandles* h = thread_handles()) [[likely]]
      return h->consumer().pop_for(timeout);
    return pop_tokenless(deadline_after(timeout));
  }

  // Refuses further pushes, releases blocked producers, waits for pushes in progress, then wakes
  // every parked consumer (they drain what is buffered and then get nullopt). Idempotent; a
  // second concurrent call may return before the first has finished.
  void close() noexcept {
    if (core_.close() && listing_.observer() != nullptr && !listing_.is_part()) [[unlikely]]
      listing_.report(Telemetry::Closed);
  }
  [[nodiscard]] bool closed() const noexcept { return core_.closed(); }
  // Closed, and every accepted event has been popped or dropped: pop() returns nullopt from now
  // on. Never waits; false may be stale (a drain in progress), true is final.
  [[nodiscard]] bool drained() const noexcept { return core_.drained(); }

  [[nodiscard]] DispatcherStats stats() const noexcept { return core_.stats(); }
  // Its name in the Topology (DispatcherOptions::name, or the default).
  [[nodiscard]] const std::string& name() const noexcept { return listing_.name(); }

  // For threads that wait for a condition of their own that involves this dispatcher's end (a
  // pool's consumers waiting for manual demand): wait_until(pred) returns once pred() holds; pred
  // is evaluated again whenever the dispatcher is closed, a consumer finds it drained, or someone
  // calls notify() after changing what pred reads (pred reads it with seq_cst loads; see
  // core/signal.hpp). notify() costs a system call only when someone waits.
  template <class Pred>
  void wait_until(Pred&& pred) noexcept {
    core_.wait_until(std::forward<Pred>(pred));
  }
  void notify() noexcept { core_.notify(); }

  // A producer handle: a moodycamel ProducerToken (its own sub-queue, the fastest push path).
  [[nodiscard]] Producer producer() { return Producer(*this); }
  // A consumer handle: a ConsumerToken (fair rotation over producers) and its own counter line.
  [[nodiscard]] Consumer consumer() { return Consumer(*this); }

  class Producer {
   public:
    Producer(Producer&& other) noexcept
        : d_(std::exchange(other.d_, nullptr)),
          slot_(std::exchange(other.slot_, nullptr)),
          token_(std::move(other.token_)) {}
    Producer& operator=(Producer&&) = delete;
    Producer(const Producer&) = delete;
    Producer& operator=(const Producer&) = delete;
    ~Producer() {
      if (slot_ != nullptr) d_->core_.return_slot(*slot_);
    }

    PushResult push(T event) {
      return d_->refused(d_->push_one(*slot_, &token_, event, true), event);
    }
    [[nodiscard]] PushResult try_push(T& event) {
      return d_->push_one(*slot_, &token_, event, false);
    }
    template <std::forward_iterator It>
    std::size_t push_bulk(It first, It last) {
      return d_->push_many(*slot_, &token_, first, last);
    }

   private:
    friend class Dispatcher;
    friend class Transaction;
    explicit Producer(Dispatcher& d)
        : d_(&d), slot_(&d.core_.lease_producer_slot()), token_(d.queue_) {}
    Dispatcher* d_;
    detail::ProducerSlot* slot_;
    moodycamel::ProducerToken token_;
  };

  // A push in phases, for dispatch modes that push one event into several Dispatchers all or
  // nothing (BroadcastDispatcher): reserve room in each (bounded; try_reserve() never waits and
  // wait_for_room() holds nothing while it waits), then begin() in each (from then on close()
  // waits for this push, briefly), then commit() each. Destroying a Transaction undoes what was
  // not committed (releases its room, ends a begun push). One event per Transaction; it belongs
  // to one thread and must not outlive its Dispatcher (or Producer).
  class Transaction {
   public:
    // Tokenless: leases a producer slot until destroyed.
    explicit Transaction(Dispatcher& d) : d_(&d), slot_(&d.core_.lease_producer_slot()) {}
    // Through a Producer handle (its sub-queue and order).
    explicit Transaction(Producer& p) : d_(p.d_), slot_(p.slot_), token_(&p.token_) {}
    Transaction(Transaction&& other) noexcept
        : d_(std::exchange(other.d_, nullptr)),
          slot_(other.slot_),
          token_(other.token_),
          room_(std::exchange(other.room_, false)),
          begun_(std::exchange(other.begun_, false)) {}
    Transaction& operator=(Transaction&&) = delete;
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    ~Transaction() {
      if (d_ == nullptr) return;
      abort();
      if (token_ == nullptr) d_->core_.return_slot(*slot_);
    }

    // Bounded: reserves room for the event if there is some; never waits. Unbounded: true.
    // Ignores close (begin() decides whether the push is accepted).
    [[nodiscard]] bool try_reserve() noexcept {
      if (!d_->core_.bounded() || room_) return true;
      room_ = d_->core_.try_reserve(1) == 1;
      return room_;
    }
    // Waits until room may have been freed (true: try again) or the dispatcher is closed (false).
    // Holds no room while it waits. Unbounded: true at once.
    bool wait_for_room() noexcept { return !d_->core_.bounded() || d_->core_.wait_for_room(); }
    // Gives back the room reserved, if any (a push that will not happen).
    void release_room() noexcept {
      if (room_) d_->core_.release_room(1);
      room_ = false;
    }
    // (P0) after try_reserve() succeeded. False: closed (counted in stats().refused_closed; the
    // room is released).
    [[nodiscard]] bool begin() noexcept {
      if (d_->core_.begin_push(*slot_)) {
        begun_ = true;
        return true;
      }
      d_->core_.note_refused_closed(1);
      release_room();
      return false;
    }
    // Enqueues `event` after begin() (P2, P4, P3): it is pushed. Throws std::bad_alloc if the
    // queue cannot grow, with nothing pushed (the transaction is undone).
    void commit(T&& event) {
      bool ok = false;
      try {
        ok = d_->enqueue(token_, event);
      } catch (...) {
        abort();
        throw;
      }
      if (!ok) {
        abort();
        throw std::bad_alloc();
      }
      begun_ = false;
      room_ = false;
      d_->core_.end_push(*slot_, 1);  // P2, P4, P3
    }
    // Undoes what was not committed.
    void abort() noexcept {
      if (begun_) detail::QueueCore::abort_push(*slot_);
      begun_ = false;
      release_room();
    }

   private:
    Dispatcher* d_;
    detail::ProducerSlot* slot_;
    moodycamel::ProducerToken* token_ = nullptr;
    bool room_ = false;
    bool begun_ = false;
  };

  class Consumer {
   public:
    Consumer(Consumer&& other) noexcept
        : d_(std::exchange(other.d_, nullptr)),
          slot_(std::exchange(other.slot_, nullptr)),
          token_(std::move(other.token_)) {}
    Consumer& operator=(Consumer&&) = delete;
    Consumer(const Consumer&) = delete;
    Consumer& operator=(const Consumer&) = delete;
    ~Consumer() {
      if (slot_ != nullptr) d_->core_.return_slot(*slot_);
    }

    std::optional<T> pop() { return pop_until(Clock::time_point::max()); }
    std::optional<T> try_pop() {
      std::optional<T> out;
      if (d_->queue_.try_dequeue(token_, out)) after_pop(1);
      return out;
    }
    std::optional<T> pop_for(std::chrono::nanoseconds timeout) {
      return pop_until(deadline_after(timeout));
    }
    // Moves up to `max` buffered events to `out` (an output iterator taking T&&, such as a
    // std::back_insert_iterator). Never waits. Returns how many.
    template <class OutIt>
    std::size_t try_pop_bulk(OutIt out, std::size_t max) {
      const std::size_t n = d_->queue_.try_dequeue_bulk(token_, out, max);
      if (n != 0) after_pop(n);
      return n;
    }

    // Waits until `deadline` (time_point::max(): no limit) for an event and moves it into `out`
    // (which must be empty). Got, or TimedOut, Drained, Interrupted with `out` left empty.
    TakeResult take(std::optional<T>& out, Clock::time_point deadline) {
      if (d_->queue_.try_dequeue(token_, out)) {
        after_pop(1);
        return TakeResult::Got;
      }
      return detail::take_result(d_->core_.wait(
          *slot_,
          [&] {
            if (!d_->queue_.try_dequeue(token_, out)) return false;
            after_pop(1);
            return true;
          },
          deadline, true));
    }
    // Like take(), then appends up to `max` - 1 more buffered events (max >= 1) without waiting:
    // at least one and at most `max` events, appended to `out` in the order taken.
    TakeResult take(std::vector<T>& out, std::size_t max, Clock::time_point deadline) {
      std::optional<T> first;
      const TakeResult r = take(first, deadline);
      if (r != TakeResult::Got) return r;
      out.push_back(std::move(*first));
      if (max > 1) try_pop_bulk(std::back_inserter(out), max - 1);
      return TakeResult::Got;
    }
    // Appends up to `max` buffered events to `out`, in the order taken; never waits.
    std::size_t try_take(std::vector<T>& out, std::size_t max) {
      return try_pop_bulk(std::back_inserter(out), max);
    }
    // Waits like take() until an event is probably buffered, without taking it (Got: a try_pop()
    // will probably succeed, unless another consumer is faster). For consumers that may take
    // events only once they know one is there (a pool's manual demand).
    TakeResult wait_ready(Clock::time_point deadline) {
      auto ready = [this] { return d_->queue_.size_approx() != 0; };
      if (ready()) return TakeResult::Got;
      return detail::take_result(d_->core_.wait(*slot_, ready, deadline, true));
    }
    // Interrupts this handle's waits from another thread (see Interrupter).
    [[nodiscard]] Interrupter interrupter() const noexcept {
      return Interrupter(d_->core_, *slot_);
    }
    // The dispatcher's drained() and wait_until(), for a handle's owner (see Source).
    [[nodiscard]] bool drained() const noexcept { return d_->drained(); }
    template <class Pred>
    void wait_until(Pred&& pred) noexcept {
      d_->wait_until(std::forward<Pred>(pred));
    }

   private:
    friend class Dispatcher;
    explicit Consumer(Dispatcher& d)
        : d_(&d), slot_(&d.core_.lease_consumer_slot()), token_(d.queue_) {}

    void after_pop(std::size_t n) {
      detail::QueueCore::note_popped(*slot_, n);
      if (d_->core_.bounded()) d_->core_.release_room(static_cast<std::uint32_t>(n));
    }
    std::optional<T> pop_until(Clock::time_point deadline) {
      std::optional<T> out;
      if (d_->queue_.try_dequeue(token_, out)) {
        after_pop(1);
        return out;
      }
      d_->core_.wait(
          *slot_,
          [&] {
            if (!d_->queue_.try_dequeue(token_, out)) return false;
            after_pop(1);
            return true;
          },
          deadline);
      return out;
    }

    Dispatcher* d_;
    detail::ConsumerSlot* slot_;
    moodycamel::ConsumerToken token_;
  };

 private:
  // A producer slot held for one tokenless call.
  struct SlotLease {
    explicit SlotLease(detail::QueueCore& demand) : d(demand), slot(demand.lease_producer_slot()) {}
    ~SlotLease() { d.return_slot(slot); }
    SlotLease(const SlotLease&) = delete;
    SlotLease& operator=(const SlotLease&) = delete;
    detail::QueueCore& d;
    detail::ProducerSlot& slot;
  };

  static std::size_t initial_queue_capacity(const DispatcherOptions& o) {
    constexpr std::size_t kPrealloc = 6 * Queue::BLOCK_SIZE;  // moodycamel's default
    constexpr std::size_t kPreallocMax = std::size_t{1} << 16;
    if (o.capacity == 0) return kPrealloc;
    return o.capacity < kPreallocMax ? o.capacity : kPreallocMax;
  }
  static Clock::time_point deadline_after(std::chrono::nanoseconds timeout) {
    const auto now = Clock::now();
    if (timeout.count() <= 0) return now;
    if (timeout >= Clock::time_point::max() - now) return Clock::time_point::max();
    return now + std::chrono::duration_cast<Clock::duration>(timeout);
  }

  bool enqueue(moodycamel::ProducerToken* token, T& event) {
#ifdef PUSHSTAGE_FAULT_INJECTION
    if (pushstage_fault_enqueue_fails()) return false;
#endif
    return token != nullptr ? queue_.enqueue(*token, std::move(event))
                            : queue_.enqueue(std::move(event));
  }
// GCC 12 at -O2/-O3 reports a false -Wstringop-overflow inside moodycamel's enqueue_bulk once it
// is inlined here (an atomic load it believes writes to a zero-size region; GCC bug 104475). GCC
// honours the pragma at this inlined call site, so users' -Werror builds of push_bulk keep working.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif
  template <class It>
  bool enqueue_many(moodycamel::ProducerToken* token, It first, std::size_t n) {
#ifdef PUSHSTAGE_FAULT_INJECTION
    if (pushstage_fault_enqueue_fails()) return false;
#endif
    auto moving = std::make_move_iterator(first);
    return token != nullptr ? queue_.enqueue_bulk(*token, moving, n)
                            : queue_.enqueue_bulk(moving, n);
  }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

  // Bounded and full: makes room for up to `want` events under the overflow policy. Returns how
  // many units of room the caller now holds; 0 means stop: rejected (counted) or closed.
  std::size_t make_room(std::size_t want, bool may_wait, bool& dropped) {
    for (;;) {
      const auto n = core_.try_reserve(static_cast<std::uint32_t>(
          want < detail::QueueCore::kRoomMaxRequest ? want : detail::QueueCore::kRoomMaxRequest));
      if (n != 0) return n;
      switch (core_.overflow()) {
        case Overflow::Reject:
          return 0;
        case Overflow::Block:
          if (!may_wait || !core_.wait_for_room()) return 0;
          break;
        case Overflow::DropOldest:
          if (drop_oldest()) {
            dropped = true;
            return 1;  // the dropped event's room is ours now
          }
          core_.yield_to_others();  // room is held by pushes still enqueueing; let them finish
          break;
      }
    }
  }
  bool drop_oldest() {
    std::optional<T> victim;
    if (!queue_.try_dequeue(victim)) return false;
    core_.note_dropped(1);
    if (notify_drops_) [[unlikely]]
      drop(std::move(*victim), DropReason::Oldest);
    return true;
  }

  // push() ends with `result` for `event`: when refused (Closed or Rejected), the event goes to
  // on_drop. One compare on the push path; the rest is out of line.
  PushResult refused(PushResult result, T& event) noexcept {
    static_assert((static_cast<int>(PushResult::Rejected) & 1) == 1 &&
                  (static_cast<int>(PushResult::Closed) & 1) == 1 &&
                  (static_cast<int>(PushResult::Pushed) & 1) == 0 &&
                  (static_cast<int>(PushResult::DroppedOldest) & 1) == 0);
    if ((static_cast<int>(result) & 1) != 0) [[unlikely]] {  // Rejected or Closed
      drop(std::move(event),
           result == PushResult::Closed ? DropReason::Closed : DropReason::Rejected);
    }
    return result;
  }
  // Hands an event the dispatcher will not deliver to on_drop, if set, and reports it to the
  // observer, if set; else leaves it to be destroyed by the caller. Out of line and cold: the push
  // paths inline as they did without it, and without either the test costs what it did.
  [[gnu::cold, gnu::noinline]] void drop(T&& event, DropReason why) noexcept {
    if (!notify_drops_) return;
    const bool refused = why == DropReason::Rejected || why == DropReason::Closed;
    listing_.report(refused ? Telemetry::Refused : Telemetry::Dropped, why);
    if (on_drop_) on_drop_(std::move(event), why);  // noexcept: a throw terminates
  }
  detail::ListingSpec listing_spec(const DispatcherOptions& options) {
    detail::ListingSpec spec = detail::dispatcher_spec(ComponentKind::Dispatcher, options, this);
    spec.fill = [this, capacity = options.capacity](ComponentSnapshot& s) {
      s.buffer = core_.stats();
      s.capacity = capacity;
    };
    return spec;
  }
  // At destruction: every event still buffered goes to on_drop. Single-threaded here, so the
  // simplest dequeue will do.
  [[gnu::cold, gnu::noinline]] void drop_buffered() noexcept {
    std::optional<T> left;
    while (queue_.try_dequeue_non_interleaved(left)) {
      drop(std::move(*left), DropReason::Destroyed);
      left.reset();
    }
  }

  PushResult push_one(detail::ProducerSlot& slot, moodycamel::ProducerToken* token, T& event,
                      bool may_wait) {
    if (!core_.begin_push(slot)) {  // P0
      core_.note_refused_closed(1);
      return PushResult::Closed;
    }
#ifdef PUSHSTAGE_PERF_GATE_SLOW_PUSH  // defined only by the perf gate's self-test builds
    for (volatile int slow = 0; slow < PUSHSTAGE_PERF_GATE_SLOW_PUSH;) slow = slow + 1;
#endif
    bool dropped = false;
    if (core_.bounded() && make_room(1, may_wait, dropped) == 0) {
      detail::QueueCore::abort_push(slot);
      if (core_.closed()) {
        core_.note_refused_closed(1);
        return PushResult::Closed;
      }
      core_.note_rejected(1);
      return PushResult::Rejected;
    }
    bool ok = false;
    try {
      ok = enqueue(token, event);
    } catch (...) {
      undo(slot, 1);
      throw;
    }
    if (!ok) {
      undo(slot, 1);
      throw std::bad_alloc();
    }
    core_.end_push(slot, 1);  // P2, P4, P3
    return dropped ? PushResult::DroppedOldest : PushResult::Pushed;
  }

  template <class It>
  std::size_t push_many(detail::ProducerSlot& slot, moodycamel::ProducerToken* token, It first,
                        It last) {
    const auto total = static_cast<std::size_t>(std::distance(first, last));
    std::size_t accepted = 0;
    while (accepted < total) {
      if (!core_.begin_push(slot)) {  // P0, once per chunk: close() may stop a bulk
        core_.note_refused_closed(total - accepted);
        break;
      }
      std::size_t n = total - accepted;
      if (core_.bounded()) {
        bool dropped = false;
        n = make_room(n, true, dropped);
        if (n == 0) {
          detail::QueueCore::abort_push(slot);
          if (core_.closed()) {
            core_.note_refused_closed(total - accepted);
          } else {
            core_.note_rejected(total - accepted);
          }
          break;
        }
      }
      bool ok = false;
      try {
        ok = enqueue_many(token, std::next(first, static_cast<std::ptrdiff_t>(accepted)), n);
      } catch (...) {
        undo(slot, n);
        throw;
      }
      if (!ok) {
        undo(slot, n);
        throw std::bad_alloc();
      }
      core_.end_push(slot, n);  // P2, P4, P3: per chunk, so consumers can free room meanwhile
      accepted += n;
    }
    return accepted;
  }

  void undo(detail::ProducerSlot& slot, std::size_t reserved) {
    if (core_.bounded()) core_.release_room(static_cast<std::uint32_t>(reserved));
    detail::QueueCore::abort_push(slot);
  }

  // The Producer handle the calling thread keeps for this dispatcher, or nullptr when the thread
  // is in a push on it already (a push from an on_drop callback: the slot's pushing flag is one
  // push's, so the inner push must not clear it) or its cache has gone (thread exit).
  Producer* thread_producer() {
    ThreadHandles* h = thread_handles();
    if (h == nullptr) [[unlikely]]
      return nullptr;
    Producer& p = h->producer();
    // relaxed: the slot's own writer is this thread.
    if (p.slot_->pushing.load(std::memory_order_relaxed) != 0) [[unlikely]]
      return nullptr;
    return &p;
  }
  // A tokenless push without the thread's handles (see thread_producer()): a slot leased for the
  // call and moodycamel's implicit producer.
  [[gnu::cold, gnu::noinline]] PushResult push_without_handles(T& event, bool may_wait) {
    SlotLease lease(core_);
    return push_one(lease.slot, nullptr, event, may_wait);
  }
  // What a thread keeps for its tokenless calls on this dispatcher (core/thread_cache.hpp): a
  // Producer handle, made on its first push (its sub-queue keeps the thread's pushes in order),
  // and a Consumer handle, made on its first pop.
  class ThreadHandles {
   public:
    explicit ThreadHandles(Dispatcher& d) noexcept : d_(&d) {}
    Producer& producer() {
      if (!producer_) [[unlikely]]
        producer_.emplace(Producer(*d_));
      return *producer_;
    }
    Consumer& consumer() {
      if (!consumer_) [[unlikely]]
        consumer_.emplace(Consumer(*d_));
      return *consumer_;
    }

   private:
    Dispatcher* d_;
    std::optional<Producer> producer_;
    std::optional<Consumer> consumer_;
  };
  // The calling thread's ThreadHandles (made on its first call), or nullptr at thread exit once
  // the thread's cache is gone (the caller goes without: a slot lease and moodycamel's implicit
  // producer per push, a tokenless dequeue per pop).
  ThreadHandles* thread_handles() {
    if (void* h = detail::ThreadCache::find(cache_owner_.get())) [[likely]]
      return static_cast<ThreadHandles*>(h);
    return cache_thread_handles();
  }
  [[gnu::cold, gnu::noinline]] ThreadHandles* cache_thread_handles() {
    auto make = [](void* self) -> void* {
      // Cannot throw once allocated: the constructor is noexcept (its handles are made later).
      return new (std::allocator<ThreadHandles>().allocate(1))
          ThreadHandles(*static_cast<Dispatcher*>(self));
    };
    auto release = [](void* handle, bool owner_alive) noexcept {
      auto* h = static_cast<ThreadHandles*>(handle);
      // Owner gone: the handles' destructors would touch the destroyed dispatcher, and they own
      // nothing else (pointers into it and moodycamel tokens, whose state is the queue's).
      if (owner_alive) h->~ThreadHandles();  // gives its slots and moodycamel producer back
      std::allocator<ThreadHandles>().deallocate(h, 1);
    };
    return static_cast<ThreadHandles*>(
        detail::ThreadCache::find_or_make(cache_owner_, make, this, release));
  }
  void after_pop_shared() {
    core_.note_popped_shared(1);
    if (core_.bounded()) core_.release_room(1);
  }
  std::optional<T> pop_tokenless(Clock::time_point deadline) {
    std::optional<T> out;
    if (queue_.try_dequeue(out)) {
      after_pop_shared();
      return out;
    }
    detail::ConsumerSlot& slot = core_.lease_consumer_slot();
    auto try_one = [&] {
      if (!queue_.try_dequeue(out)) return false;
      detail::QueueCore::note_popped(slot, 1);
      if (core_.bounded()) core_.release_room(1);
      return true;
    };
    core_.wait(slot, try_one, deadline);
    core_.return_slot(slot);
    return out;
  }

  detail::QueueCore core_;
  Queue queue_;
  // Shared with the thread caches that keep ThreadHandles of ours (tokenless calls).
  const std::shared_ptr<detail::CacheOwner> cache_owner_ = std::make_shared<detail::CacheOwner>();
  const DropHandler on_drop_;  // read-only after construction
  detail::Listing listing_;    // its Topology entry and observer; leaves first in ~Dispatcher()
  const bool notify_drops_;    // on_drop_ or an observer: drop() has work to do
};

}  // namespace pushstage
