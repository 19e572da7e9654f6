// pushstage/modes/keyed_dispatcher.hpp: per-key order without one consumer per partition. A hash of
// each event's key picks one of N slots (a queue each); a slot with events is "ready", and any
// idle consumer takes the next ready slot, handles a batch of its events and hands it back. A slot
// is held by at most one consumer at a time, so the events of one key are handled in push order,
// while a hot key occupies one consumer and every other consumer serves the other keys (where a
// PartitionDispatcher would leave a partition's backlog to its single consumer).
//
// Threading: every member is safe from any thread. A Producer or Consumer handle belongs to one
//            thread at a time; handles must be destroyed before their dispatcher.
// Progress:  push() on an unbounded dispatcher takes no lock: read-modify-writes on the gate, the
//            slot's counter and, when it makes the slot ready, the ready ring; it spins only in
//            (Q1), for a consumer that is between (Q3) and (Q4) on the cell it needs. Consumers
//            wait for a ready slot as Dispatcher consumers wait (spin, then park;
//            core/queue_core.hpp), and retry while the append ahead of a ready slot is between (Q1)
//            and (Q2). Bounded under Overflow::Block, a push waits while `capacity` events are
//            accepted and not yet handled.
// Ordering:  the events of one key pushed by one producer are handled in push order, by whichever
//            consumer holds their slot. Ready slots are served first come, first served.
// Memory:    what a producer did before push(e) happens-before the handler's call for e; what a
//            consumer's handler did for an event of a slot happens-before the next handler call
//            for that slot, on any consumer.
// Memory use: until its first push a slot costs at most 24 bytes, whatever sizeof(T): a pointer,
//            and its share of the ready ring (8-byte cells, `slots` rounded up to a power of two);
//            65,536 slots take 1 MiB. A slot's first push allocates its queue (at most 1 KiB), and
//            each thread's first push into a slot its record there with a block of 32 events (at
//            most 1.5 KiB + 32 x sizeof(T)); a thread's backlog in a slot grows by such blocks.
//            Nothing is returned before the dispatcher is destroyed. tests/fault/keyed_alloc_test
//            checks these bounds.
// Close:     every push that returned Pushed is handled; close() never waits for consumers.
// Failure:   a hash that throws: push() and try_push() throw it before accepting the event
//            (nothing counted; try_push leaves the event with the caller). std::bad_alloc: push()
//            and try_push() throw it with nothing accepted (try_push leaves the event with the
//            caller): what they allocate (the slot's queue and its blocks, a lease in the ready
//            set) comes before (KY1) or is undone with it, and making a slot ready cannot fail (the
//            ready ring has a cell for every slot). One failure lasts: if it hits the index of a
//            thread's record in a slot's queue (allocated by the thread's first push into the
//            slot), moodycamel keeps the record without one, and that thread's later pushes into
//            that slot throw std::bad_alloc too. take() throws it with nothing taken, and the slot
//            goes back to the ready set (behind the slots made ready meanwhile); release()
//            allocates nothing. producer() and consumer() may throw it.
// Observed:  options.name names it in the Topology; options.observer receives the refusals of
//            push(), the events destroyed with it, and its close.
// Not guaranteed: order across keys or producers; which consumer serves a slot.
//
// Protocol. gate_ = | closed: 1 bit | events accepted and not yet released: 63 bits |;
// slot.pending = events of the slot accepted and not yet released. The ready set is ready_ring_
// (slot indices) counted and waited for by ready_, a detail::QueueCore: the pair is what a
// Dispatcher<std::uint32_t> is, with a buffer allocated in full by the constructor.
//   (KY1) push, once the hash picked the slot, the slot's queue exists (the first push installs it
//        by CAS) and the push holds a producer lease of ready_ (a Producer handle holds one for
//        its life): gate_ += 1 (fetch_add, or CAS when bounded to stay within capacity), seq_cst.
//        If the closed bit was set: undo (KY5) and return Closed.
//   (KY2) push: enqueue into the slot's moodycamel queue (release inside moodycamel). If it cannot
//        allocate: undo (KY1) and throw std::bad_alloc.
//   (KY3) push: p = slot.pending += 1 (acq_rel). p == 0: the slot was idle and this producer makes
//        it ready: append it to ready_ring_ between ready_'s (P0) and (P2)-(P4)-(P3) on the lease,
//        which wake a parked consumer. ready_ is open: it closes only when gate_ counts 0 events,
//        and this event is counted from (KY1) until its release.
//   (KY4) consumer: pop a slot from ready_ring_ (Q3), waiting in ready_'s protocol (W1)-(W2)
//        until one is there; n = min(max, slot.pending) (acquire), n >= 1; make room for n events
//        in the caller's vector (if that throws: hand the slot back as (KY5) does, and rethrow);
//        dequeue n events (only the holder dequeues; it retries a dequeue that misses an event
//        the count promises, which moodycamel makes visible by the release in (KY2)); handle them.
//   (KY5) consumer, after its handler calls returned: left = slot.pending -= n (acq_rel). left > 0:
//        append the slot to ready_ring_ as (KY3) does, on the consumer's own lease (at the back:
//        fair across keys). Then gate_ -= n (seq_cst); if that leaves the closed bit and 0 events,
//        close ready_, so waiting consumers drain out.
//   (KY6) close(): gate_ |= closed (seq_cst); if it counted 0 events, close ready_ at once.
// Ready ring: cells_[i] = | turn: 48 bits | slot index: 16 bits |; tail_ and head_ count
// positions; position t uses cell t % capacity, whose turn is t while free for it and t + 1 once
// it holds an index.
//   (Q1) append at t = tail_ once cell t reads turn t (acquire, pairs with Q4): claim t by CAS on
//        tail_ (relaxed: the cell's turn, not tail_, hands the index over). An older turn: the
//        consumer that popped the cell one lap earlier has not reached (Q4) yet; spin.
//   (Q2) cell t = turn t + 1 | index (release, pairs with Q3).
//   (Q3) pop at h = head_ if cell h reads turn h + 1 (acquire, pairs with Q2; an older turn: empty,
//        or the append at h is between Q1 and Q2, and ready_'s exact count has the consumer
//        retry): claim h by CAS on head_ (relaxed, as in Q1).
//   (Q4) cell h = turn h + capacity (release, pairs with Q1): free for the append a lap later.
// Invariants: a slot with pending > 0 is in ready_ring_ (or being appended to it) or held by
//   exactly one consumer: only the RMW that takes pending from 0 schedules it (KY3), and only the
//   holder's (KY5) reschedules or idles it, all RMWs on one word being totally ordered. So each
//   index is in the ring at most once, tail_ - head_ <= slots <= capacity, and an append never
//   finds the ring full: the cell it needs was popped a lap earlier (Q3), at most not yet freed
//   (Q4). ready_ closes once, after every accepted event was released: (KY5)/(KY6) are RMWs on
//   gate_, so exactly the one that reaches closed|0 sees it. Per-key order: the holder's handler
//   calls happen-before its (KY5) (program order), which the next holder's (KY4) reads from,
//   directly or through ready_ring_ (Q2)/(Q3).
// Bounded: blocked producers wait on room_ (core/signal.hpp: the (KY5) RMW is its N1, the
//   predicate "count < capacity or closed" its A3).
#pragma once

#include <concurrentqueue/concurrentqueue.h>

#include <algorithm>
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

#include "pushstage/core/cache_line.hpp"
#include "pushstage/core/queue_core.hpp"
#include "pushstage/core/signal.hpp"
#include "pushstage/core/upstreams.hpp"
#include "pushstage/dispatcher.hpp"
#include "pushstage/dispatcher_options.hpp"
#include "pushstage/observe/listing.hpp"

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

inline constexpr std::size_t kMaxKeyedSlots = 65536;

// Throws std::invalid_argument naming the argument: slots in [1, 65536], a hash, options with
// capacity in [0, 2^31 - 1] and overflow Block or Reject (Reject needs a capacity).
void check_keyed_options(std::size_t slots, bool has_hash, const DispatcherOptions& options);

// The ready slots of a KeyedDispatcher, in order: (Q1)-(Q4) in keyed_dispatcher.hpp's protocol.
// Holds up to `slots` indices (each at most once); never allocates after construction.
class ReadyRing {
 public:
  // Capacity: `slots` rounded up to a power of two (at least 2). Throws std::bad_alloc.
  explicit ReadyRing(std::size_t slots);

  // (Q1)+(Q2). The caller guarantees `index` is not in the ring.
  void push(std::uint32_t index) noexcept {
    std::uint64_t pos = tail_.load(std::memory_order_relaxed);
    for (unsigned spins = 0;;) {
      std::atomic<std::uint64_t>& cell = cells_[pos & mask_];
      const std::uint64_t c = cell.load(std::memory_order_acquire);  // Q1 pairs with Q4
      const std::int64_t lap = turn_minus(c, pos);
      if (lap == 0) {
        // Q1. relaxed: the cell's turn hands the index over (Q2/Q3); a failed CAS reloads pos.
        if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed,
                                        std::memory_order_relaxed)) {
          cell.store(((pos + 1) << kTurnShift) | index, std::memory_order_release);  // Q2 - Q3
          return;
        }
      } else {
        // lap < 0: the pop of this cell one lap earlier is between Q3 and Q4; lap > 0: another
        // producer took pos. Either way read tail_ again.
        if (lap < 0 && ++spins > 64) std::this_thread::yield();
        cpu_relax();
        pos = tail_.load(std::memory_order_relaxed);
      }
    }
  }

  // Whether try_pop() would find an index now (a snapshot: another consumer may take it first).
  [[nodiscard]] bool ready() const noexcept {
    const std::uint64_t pos = head_.load(std::memory_order_relaxed);
    // acquire, as Q3: nothing is read through it, but it keeps the answer as fresh as a pop's.
    return turn_minus(cells_[pos & mask_].load(std::memory_order_acquire), pos + 1) >= 0;
  }

  // (Q3)+(Q4). False: empty, or the append at the head is between Q1 and Q2.
  bool try_pop(std::uint32_t& index) noexcept {
    std::uint64_t pos = head_.load(std::memory_order_relaxed);
    for (;;) {
      std::atomic<std::uint64_t>& cell = cells_[pos & mask_];
      const std::uint64_t c = cell.load(std::memory_order_acquire);  // Q3 pairs with Q2
      const std::int64_t lap = turn_minus(c, pos + 1);
      if (lap < 0) return false;
      if (lap > 0) {  // another consumer took pos
        pos = head_.load(std::memory_order_relaxed);
        continue;
      }
      // Q3. relaxed, as in Q1; a failed CAS reloads pos.
      if (head_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed,
                                      std::memory_order_relaxed)) {
        index = static_cast<std::uint32_t>(c & kIndexMask);
        cell.store((pos + mask_ + 1) << kTurnShift, std::memory_order_release);  // Q4 - Q1
        return true;
      }
    }
  }

 private:
  static constexpr unsigned kTurnShift = 16;
  static constexpr std::uint64_t kIndexMask = (std::uint64_t{1} << kTurnShift) - 1;
  static_assert(kMaxKeyedSlots - 1 <= kIndexMask, "a slot index must fit beside the turn");

  // The cell's turn minus `pos`, in the 48 bits a cell keeps (positions wrap there).
  static std::int64_t turn_minus(std::uint64_t cell, std::uint64_t pos) noexcept {
    return static_cast<std::int64_t>((cell & ~kIndexMask) - (pos << kTurnShift)) >> kTurnShift;
  }

  std::uint64_t mask_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> cells_;
  alignas(kCacheLine) std::atomic<std::uint64_t> tail_{0};
  alignas(kCacheLine) std::atomic<std::uint64_t> head_{0};
};

}  // namespace detail

template <class T>
class KeyedDispatcher : public detail::FanIn<KeyedDispatcher<T>>,
                        public SharedSource<KeyedDispatcher<T>> {
 public:
  using value_type = T;
  // The hash of an event's key: its slot is hash(event) % slots().
  using Hash = std::function<std::size_t(const T&)>;
  using DropHandler = typename Dispatcher<T>::DropHandler;
  class Producer;
  class Consumer;

  // `slots` queues (more slots than consumers: fewer keys share a slot), each allocated by its
  // first push. `options`: capacity (0: unbounded) counts every event accepted and not yet
  // handled; overflow Block or Reject; spin, wake_order and max_spinners apply to consumers
  // waiting for a ready slot. on_drop receives events push() refused (Rejected, Closed). Throws
  // std::invalid_argument, std::bad_alloc.
  KeyedDispatcher(std::size_t slots, Hash hash, DispatcherOptions options = {},
                  DropHandler on_drop = {})
      : hash_((detail::check_keyed_options(slots, static_cast<bool>(hash), options),
               std::move(hash))),
        slot_count_(slots),
        slots_(std::make_unique<std::atomic<Slot*>[]>(slots)),
        ready_ring_(slots),
        ready_(ready_options(options)),
        capacity_(options.capacity),
        reject_(options.overflow == Overflow::Reject),
        on_drop_(std::move(on_drop)),
        listing_(listing_spec(options)) {
    listing_.join();
  }
  KeyedDispatcher(const KeyedDispatcher&) = delete;
  KeyedDispatcher& operator=(const KeyedDispatcher&) = delete;
  // No other thread may use the dispatcher any more; events not yet handled are destroyed (after
  // going to on_drop, if set, as DropReason::Destroyed).
  ~KeyedDispatcher() {
    listing_.leave();
    for (std::size_t i = 0; i < slot_count_; ++i) {
      Slot* s = slots_[i].load(std::memory_order_acquire);  // pairs with install()'s CAS
      if (s == nullptr) continue;
      if (on_drop_ || listing_.observer() != nullptr) {
        std::optional<T> left;
        while (s->queue.try_dequeue(left)) {
          listing_.report(Telemetry::Dropped, DropReason::Destroyed);
          if (on_drop_) on_drop_(std::move(*left), DropReason::Destroyed);
          left.reset();
        }
      }
      delete s;
    }
  }

  // Accepts `event` into its key's slot. Bounded and full: Block waits, Reject returns Rejected.
  // After close(): Closed. A refused event goes to on_drop (else is destroyed). Throws what the
  // hash throws and std::bad_alloc, with nothing accepted.
  PushResult push(T event) {
    const ReadyLease lease(ready_);
    return refused(push_one(event, true, lease.slot), event);
  }
  // Like push() but never waits (full under Block: Rejected); a refused event stays with the
  // caller, and so does the event of a push that throws.
  [[nodiscard]] PushResult try_push(T& event) {
    const ReadyLease lease(ready_);
    return push_one(event, false, lease.slot);
  }

  // (KY6). Refuses further pushes; releases blocked producers. Idempotent; never waits.
  void close() noexcept {
    const std::uint64_t g = gate_.fetch_or(kClosed, std::memory_order_seq_cst);  // KY6
    if ((g & kClosed) != 0) return;
    if (g == 0) ready_.close();
    room_.notify_all();  // N1 was the fetch_or
    listing_.report(Telemetry::Closed);
  }
  // Its name in the Topology (options.name, or the default).
  [[nodiscard]] const std::string& name() const noexcept { return listing_.name(); }
  [[nodiscard]] bool closed() const noexcept {
    return (gate_.load(std::memory_order_acquire) & kClosed) != 0;
  }
  // Closed, and every accepted event has been handled and released.
  [[nodiscard]] bool drained() const noexcept { return ready_.drained(); }
  // Dispatcher::wait_until() and notify(), for this dispatcher's end.
  template <class Pred>
  void wait_until(Pred&& pred) noexcept {
    ready_.wait_until(std::forward<Pred>(pred));
  }
  void notify() noexcept { ready_.notify(); }

  [[nodiscard]] std::size_t slots() const noexcept { return slot_count_; }
  [[nodiscard]] std::size_t slot_of(const T& event) const { return hash_(event) % slot_count_; }

  [[nodiscard]] KeyedStats stats() const {
    KeyedStats s;
    s.slot_pushed.reserve(slot_count_);
    for (std::size_t i = 0; i < slot_count_; ++i) {
      const Slot* slot = slots_[i].load(std::memory_order_acquire);  // pairs with install()
      if (slot == nullptr) {
        s.slot_pushed.push_back(0);
        continue;
      }
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

  // A producer handle: holds its lease of the ready set, so its pushes skip leasing one. Throws
  // std::bad_alloc.
  [[nodiscard]] Producer producer() { return Producer(*this); }
  // A consumer handle, for ConsumerPool (or a hand-written consumer loop). Throws std::bad_alloc.
  [[nodiscard]] Consumer consumer() { return Consumer(*this); }

  class Producer {
   public:
    Producer(Producer&& other) noexcept
        : d_(std::exchange(other.d_, nullptr)), lease_(std::exchange(other.lease_, nullptr)) {}
    Producer& operator=(Producer&&) = delete;
    Producer(const Producer&) = delete;
    Producer& operator=(const Producer&) = delete;
    ~Producer() {
      if (lease_ != nullptr) d_->ready_.return_slot(*lease_);
    }
    PushResult push(T event) { return d_->refused(d_->push_one(event, true, *lease_), event); }
    [[nodiscard]] PushResult try_push(T& event) { return d_->push_one(event, false, *lease_); }

   private:
    friend class KeyedDispatcher;
    explicit Producer(KeyedDispatcher& d) : d_(&d), lease_(&d.ready_.lease_producer_slot()) {}
    KeyedDispatcher* d_;
    detail::ProducerSlot* lease_;
  };

  class Consumer {
   public:
    Consumer(Consumer&& other) noexcept
        : d_(std::exchange(other.d_, nullptr)),
          waiter_(std::exchange(other.waiter_, nullptr)),
          lease_(std::exchange(other.lease_, nullptr)),
          held_(std::exchange(other.held_, std::nullopt)),
          held_count_(std::exchange(other.held_count_, 0)) {}
    Consumer& operator=(Consumer&&) = delete;
    Consumer(const Consumer&) = delete;
    Consumer& operator=(const Consumer&) = delete;
    // Releases a slot still held.
    ~Consumer() {
      if (d_ == nullptr) return;
      release();
      d_->ready_.return_slot(*waiter_);
      d_->ready_.return_slot(*lease_);
    }

    // (KY4): waits until `deadline` (time_point::max(): no limit) for a ready slot, then appends
    // up to `max` (>= 1) of its events to `out`, in push order per producer. Drained: closed and
    // everything handled. The slot stays held until release(). Interruptible (Interrupter).
    // Throws std::bad_alloc (growing `out`) with nothing taken.
    TakeResult take(std::vector<T>& out, std::size_t max,
                    std::chrono::steady_clock::time_point deadline) {
      std::uint32_t id = 0;
      const TakeResult r = d_->pop_ready(*waiter_, id, deadline);
      if (r == TakeResult::Got) hold(id, out, max);
      return r;
    }
    // (KY4) without waiting: takes a ready slot's events if a slot is ready. Returns how many it
    // appended (0: none ready, nothing held). Throws std::bad_alloc like take().
    std::size_t try_take(std::vector<T>& out, std::size_t max) {
      std::uint32_t id = 0;
      if (!d_->try_pop_ready(*waiter_, id)) return 0;
      return hold(id, out, max);
    }
    // Waits until a slot is probably ready, without taking it (see Dispatcher::Consumer).
    TakeResult wait_ready(std::chrono::steady_clock::time_point deadline) {
      return d_->wait_ready(*waiter_, deadline);
    }
    [[nodiscard]] Interrupter interrupter() const noexcept {
      return Interrupter(d_->ready_, *waiter_);
    }
    // The dispatcher's drained() and wait_until(), for a handle's owner (see Source).
    [[nodiscard]] bool drained() const noexcept { return d_->drained(); }
    template <class Pred>
    void wait_until(Pred&& pred) noexcept {
      d_->wait_until(std::forward<Pred>(pred));
    }

    // (KY5): done with the events of the held slot (every handler call for them returned).
    void release() noexcept {
      if (!held_) return;
      Slot& s = d_->slot(*held_);
      s.released.store(s.released.load(std::memory_order_relaxed) + held_count_,
                       std::memory_order_relaxed);  // one holder at a time; statistics
      const std::uint64_t left =
          s.pending.fetch_sub(held_count_, std::memory_order_acq_rel) - held_count_;  // KY5
      if (left != 0) d_->make_ready(*held_, *lease_);
      d_->release_gate(held_count_);
      held_.reset();
      held_count_ = 0;
    }

   private:
    friend class KeyedDispatcher;
    // Holds slot `id` (just taken from the ready set) and appends up to `max` of its events.
    std::size_t hold(std::uint32_t id, std::vector<T>& out, std::size_t max) {
      Slot& s = d_->slot(id);
      const std::uint64_t pending = s.pending.load(std::memory_order_acquire);  // KY4, >= 1
      const std::size_t n = pending < max ? static_cast<std::size_t>(pending) : max;
      const std::size_t first = out.size();
      try {
        // The take's only allocation, before any event moves; geometric, as push_back would be.
        if (out.capacity() - first < n) out.reserve(std::max(first + n, 2 * out.capacity()));
      } catch (...) {
        d_->make_ready(id, *lease_);  // untouched: hand it back as (KY5) would
        throw;
      }
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
    explicit Consumer(KeyedDispatcher& d) : d_(&d), waiter_(&d.ready_.lease_consumer_slot()) {
      try {
        lease_ = &d.ready_.lease_producer_slot();
      } catch (...) {
        d.ready_.return_slot(*waiter_);
        throw;
      }
    }
    KeyedDispatcher* d_;
    detail::ConsumerSlot* waiter_;           // waits in ready_ (W1)-(W2)
    detail::ProducerSlot* lease_ = nullptr;  // hands slots back (KY5)
    std::optional<std::uint32_t> held_;
    std::size_t held_count_ = 0;
  };

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr std::uint64_t kClosed = std::uint64_t{1} << 63;

  // moodycamel allocates through these: through operator new, like the rest of the dispatcher,
  // so a program that replaces operator new (to track or to limit memory) sees the slots' queues.
  struct SlotQueueTraits : moodycamel::ConcurrentQueueDefaultTraits {
    static void* malloc(std::size_t size) noexcept { return ::operator new(size, std::nothrow); }
    static void free(void* p) noexcept { ::operator delete(p); }
  };

  struct Slot {
    alignas(detail::kCacheLine) std::atomic<std::uint64_t> pending{0};  // KY3, KY5
    std::atomic<std::uint64_t> released{0};  // written by the holder only (statistics)
    moodycamel::ConcurrentQueue<T, SlotQueueTraits> queue{0};  // blocks come with pushes
  };

  // A producer lease of ready_ held for one tokenless push (KY1).
  struct ReadyLease {
    explicit ReadyLease(detail::QueueCore& d) : demand(d), slot(d.lease_producer_slot()) {}
    ~ReadyLease() { demand.return_slot(slot); }
    ReadyLease(const ReadyLease&) = delete;
    ReadyLease& operator=(const ReadyLease&) = delete;
    detail::QueueCore& demand;
    detail::ProducerSlot& slot;
  };

  static DispatcherOptions ready_options(DispatcherOptions o) {
    o.capacity = 0;  // the ring holds every slot: never full
    o.overflow = Overflow::Block;
    return o;
  }

  // A slot a ready-ring entry or a held index names: installed before the push that made it
  // ready, which happens-before (Q2/Q3, or the holder's own program order).
  Slot& slot(std::uint32_t index) noexcept {
    return *slots_[index].load(std::memory_order_acquire);  // pairs with install()'s CAS
  }
  // The slot for a push: its queue is allocated by the slot's first push, before (KY1).
  Slot& slot_for_push(std::size_t index) {
    Slot* s = slots_[index].load(std::memory_order_acquire);  // pairs with install()'s CAS
    return s != nullptr ? *s : install(index);
  }
  [[gnu::noinline]] Slot& install(std::size_t index) {
    auto fresh = std::make_unique<Slot>();
    Slot* seen = nullptr;
    // acq_rel: publishes the new slot (release) and, if another producer was first, reads its
    // slot (acquire, from the failure order).
    if (slots_[index].compare_exchange_strong(seen, fresh.get(), std::memory_order_acq_rel,
                                              std::memory_order_acquire)) {
      return *fresh.release();
    }
    return *seen;  // ours is freed
  }

  PushResult push_one(T& event, bool may_wait, detail::ProducerSlot& lease) {
    // The user's hash first, then the slot's allocation: if either throws, nothing is counted.
    const std::size_t index = slot_of(event);
    Slot& s = slot_for_push(index);
    if (const PushResult r = enter(may_wait); r != PushResult::Pushed) return r;  // KY1
    bool ok = false;
    try {
      ok = s.queue.enqueue(std::move(event));  // KY2
    } catch (...) {
      release_gate(1);
      throw;
    }
    if (!ok) {
      release_gate(1);
      throw std::bad_alloc();
    }
    if (s.pending.fetch_add(1, std::memory_order_acq_rel) == 0) {  // KY3 pairs with KY4, KY5
      make_ready(static_cast<std::uint32_t>(index), lease);
    }
    return PushResult::Pushed;
  }
  // push() ends with `result` for `event`: a refused event goes to on_drop.
  PushResult refused(PushResult result, T& event) {
    if (result == PushResult::Rejected || result == PushResult::Closed) {
      const DropReason why =
          result == PushResult::Closed ? DropReason::Closed : DropReason::Rejected;
      listing_.report(Telemetry::Refused, why);
      if (on_drop_) on_drop_(std::move(event), why);
    }
    return result;
  }
  detail::ListingSpec listing_spec(const DispatcherOptions& options) {
    detail::ListingSpec spec =
        detail::dispatcher_spec(ComponentKind::KeyedDispatcher, options, this);
    spec.options.emplace_back("slots", std::to_string(slot_count_));
    spec.fill = [this](ComponentSnapshot& s) {
      const KeyedStats k = stats();
      const DispatcherStats ready = ready_.stats();
      DispatcherStats b;
      b.pushed = k.pushed;
      b.popped = k.handled;
      b.rejected = k.rejected;
      b.refused_closed = k.refused_closed;
      b.buffered = k.buffered;
      b.parked = ready.parked;
      b.spinning = ready.spinning;
      s.buffer = b;
      s.capacity = capacity_;
    };
    return spec;
  }

  // (KY3)/(KY5): appends a slot that has events and no holder to the ready set, on `lease` (the
  // caller's producer lease of ready_). Allocates nothing and cannot fail: the ring has a cell for
  // every slot, and ready_ is open while the slot's events are counted in gate_.
  void make_ready(std::uint32_t index, detail::ProducerSlot& lease) noexcept {
    [[maybe_unused]] const bool open = ready_.begin_push(lease);  // P0; true, see above
    ready_ring_.push(index);                                      // Q1, Q2
    ready_.end_push(lease, 1);  // P2, P4, P3: wakes a parked consumer unless one spins
  }

  // (KY4)'s wait: Dispatcher::Consumer::take's, over ready_ring_ (interruptible).
  TakeResult pop_ready(detail::ConsumerSlot& waiter, std::uint32_t& id,
                       Clock::time_point deadline) {
    if (try_pop_ready(waiter, id)) return TakeResult::Got;
    return detail::take_result(ready_.wait(
        waiter, [&] { return try_pop_ready(waiter, id); }, deadline, true));
  }
  bool try_pop_ready(detail::ConsumerSlot& waiter, std::uint32_t& id) noexcept {
    if (!ready_ring_.try_pop(id)) return false;  // Q3, Q4
    detail::QueueCore::note_popped(waiter, 1);
    return true;
  }
  // Dispatcher::Consumer::wait_ready's, over ready_ring_.
  TakeResult wait_ready(detail::ConsumerSlot& waiter, Clock::time_point deadline) {
    auto ready = [this] { return ready_ring_.ready(); };
    if (ready()) return TakeResult::Got;
    return detail::take_result(ready_.wait(waiter, ready, deadline, true));
  }

  // (KY1). Pushed: the event may be enqueued. Closed or Rejected (full and not waiting): refused,
  // and counted.
  PushResult enter(bool may_wait) {
    if (capacity_ == 0) {
      if ((gate_.fetch_add(1, std::memory_order_seq_cst) & kClosed) == 0) {  // KY1
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
                                      std::memory_order_relaxed)) {  // KY1
        return PushResult::Pushed;
      }
    }
  }
  PushResult refuse_closed() noexcept {
    refused_closed_.fetch_add(1, std::memory_order_relaxed);  // statistics
    return PushResult::Closed;
  }

  // The gate half of (KY5), also the undo of (KY1).
  void release_gate(std::uint64_t n) noexcept {
    const std::uint64_t g = gate_.fetch_sub(n, std::memory_order_seq_cst) - n;  // KY5; N1 of room_
    if (g == kClosed) ready_.close();
    if (capacity_ != 0) room_.notify_all();
  }

  const Hash hash_;
  const std::size_t slot_count_;
  const std::unique_ptr<std::atomic<Slot*>[]> slots_;  // null until the slot's first push
  detail::ReadyRing ready_ring_;                       // slots with events that no consumer holds
  detail::QueueCore ready_;  // counts ready_ring_'s entries; consumers wait for one in it
  const std::uint64_t capacity_;
  const bool reject_;
  const DropHandler on_drop_;
  detail::Listing listing_;  // its Topology entry and observer; leaves first in the destructor
  alignas(detail::kCacheLine) std::atomic<std::uint64_t> gate_{0};
  std::atomic<std::uint64_t> rejected_{0};
  std::atomic<std::uint64_t> refused_closed_{0};
  detail::Signal room_;  // producers blocked for room
};

}  // namespace pushstage
