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
// Memory use: until its first push a slot costs a pointer (8 bytes), whatever sizeof(T). A slot's
//            first push allocates its queue (at most 1 KiB), and each thread's first push into a
//            slot its record there with a block of 32 events (at most 1.5 KiB + 32 x sizeof(T)); a
//            thread's backlog in a slot grows by such blocks. Nothing is returned before the
//            dispatcher is destroyed. tests/fault/keyed_alloc_test checks these bounds.
// Close:     every push that returned Pushed is handled; close() never waits for consumers.
// Failure:   a hash that throws: push() and try_push() throw it before accepting the event
//            (nothing counted; try_push leaves the event with the caller). std::bad_alloc from the
//            slot's queue (allocated by the slot's first push, before K1, or growing in K2): push()
//            throws it, the event not accepted. Making a slot ready also may allocate (ready_
//            grows a block when a thread first makes a slot ready, or fills its block): if that
//            fails after the event was accepted (push()) or while a consumer hands a slot back
//            (release()), std::terminate is called, since a slot with events that is not ready
//            would never be served and join() would hang.
// Not guaranteed: order across keys or producers; which consumer serves a slot.
//
// Protocol. gate_ = | closed: 1 bit | events accepted and not yet released: 63 bits |;
// slot.pending = events of the slot accepted and not yet released.
//   (K1) push, once the hash picked the slot (a throwing hash leaves nothing to undo) and the
//        slot's queue exists (the slot's first push installs it by CAS): gate_ += 1
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
#include "pushstage/dispatcher.hpp"
#include "pushstage/dispatcher_options.hpp"

namespace pushstage {

struct KeyedStats {
  std::uint64_t pushed = 0;                // events accepted
  std::uint64_t handled = 0;               // events released by consumers after their handler calls
  std::uint64_t rejected = 0;              // events refused because the dispatcher was full
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
        ready_(ready_options(options)),
        capacity_(options.capacity),
        reject_(options.overflow == Overflow::Reject),
        on_drop_(std::move(on_drop)) {}
  KeyedDispatcher(const KeyedDispatcher&) = delete;
  KeyedDispatcher& operator=(const KeyedDispatcher&) = delete;
  // No other thread may use the dispatcher any more; events not yet handled are destroyed (after
  // going to on_drop, if set, as DropReason::Destroyed).
  ~KeyedDispatcher() {
    for (std::size_t i = 0; i < slot_count_; ++i) {
      Slot* s = slots_[i].load(std::memory_order_acquire);  // pairs with install()'s CAS
      if (s == nullptr) continue;
      if (on_drop_) {
        std::optional<T> left;
        while (s->queue.try_dequeue(left)) {
          on_drop_(std::move(*left), DropReason::Destroyed);
          left.reset();
        }
      }
      delete s;
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

  enum class TakeResult { kGot, kTimedOut, kDrained };

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

    // (K4): waits up to `timeout` for a ready slot, then appends up to `max` (>= 1) of its events
    // to `out`, in push order per producer. kDrained: closed and everything handled. The slot
    // stays held until release().
    TakeResult take(std::vector<T>& out, std::size_t max, std::chrono::nanoseconds timeout) {
      std::optional<std::uint32_t> id = ready_.try_pop();
      if (!id) id = ready_.pop_for(timeout);
      if (!id) return d_->ready_.drained() ? TakeResult::kDrained : TakeResult::kTimedOut;
      Slot& s = d_->slot(*id);
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
      held_ = *id;
      held_count_ = n;
      return TakeResult::kGot;
    }

    // (K5): done with the events of the held slot (every handler call for them returned).
    void release() noexcept {
      if (!held_) return;
      Slot& s = d_->slot(*held_);
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
    KeyedDispatcher* d_;
    typename Dispatcher<std::uint32_t>::Consumer ready_;
    typename Dispatcher<std::uint32_t>::Producer reschedule_;
    std::optional<std::uint32_t> held_;
    std::size_t held_count_ = 0;
  };

 private:
  static constexpr std::uint64_t kClosed = std::uint64_t{1} << 63;

  // moodycamel allocates through these: through operator new, like the rest of the dispatcher,
  // so a program that replaces operator new (to track or to limit memory) sees the slots' queues.
  struct SlotQueueTraits : moodycamel::ConcurrentQueueDefaultTraits {
    static void* malloc(std::size_t size) noexcept { return ::operator new(size, std::nothrow); }
    static void free(void* p) noexcept { ::operator delete(p); }
  };

  struct Slot {
    alignas(detail::kCacheLine) std::atomic<std::uint64_t> pending{0};  // K3, K5
    std::atomic<std::uint64_t> released{0};  // written by the holder only (statistics)
    moodycamel::ConcurrentQueue<T, SlotQueueTraits> queue{0};  // blocks come with pushes
  };

  static DispatcherOptions ready_options(DispatcherOptions o) {
    o.capacity = 0;  // at most slots() entries: never full
    o.overflow = Overflow::Block;
    return o;
  }

  // A slot a ready-queue entry or a held index names: installed before the push that made it
  // ready, which happens-before (through ready_, or the holder's own program order).
  Slot& slot(std::uint32_t index) noexcept {
    return *slots_[index].load(std::memory_order_acquire);  // pairs with install()'s CAS
  }
  // The slot for a push: its queue is allocated by the slot's first push, before (K1).
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

  PushResult push_one(T& event, bool may_wait) {
    // The user's hash first, then the slot's allocation: if either throws, nothing is counted.
    const std::size_t index = slot_of(event);
    Slot& s = slot_for_push(index);
    if (!enter(may_wait)) {  // K1
      return closed() ? PushResult::Closed : PushResult::Rejected;
    }
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

  // (K1). False: closed, or full (counted as rejected) and not waiting.
  bool enter(bool may_wait) {
    if (capacity_ == 0) {
      if ((gate_.fetch_add(1, std::memory_order_seq_cst) & kClosed) == 0) return true;  // K1
      release_gate(1);
      return false;
    }
    std::uint64_t g = gate_.load(std::memory_order_relaxed);
    for (;;) {
      if ((g & kClosed) != 0) return false;
      if ((g & ~kClosed) >= capacity_) {
        if (reject_ || !may_wait) {
          rejected_.fetch_add(1, std::memory_order_relaxed);  // statistics
          return false;
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
        return true;
      }
    }
  }

  // The gate half of (K5), also the undo of (K1).
  void release_gate(std::uint64_t n) noexcept {
    const std::uint64_t g = gate_.fetch_sub(n, std::memory_order_seq_cst) - n;  // K5; N1 of room_
    if (g == kClosed) ready_.close();
    if (capacity_ != 0) room_.notify_all();
  }

  const Hash hash_;
  const std::size_t slot_count_;
  const std::unique_ptr<std::atomic<Slot*>[]> slots_;  // null until the slot's first push
  Dispatcher<std::uint32_t> ready_;                    // slots with events that no consumer holds
  const std::uint64_t capacity_;
  const bool reject_;
  const DropHandler on_drop_;
  alignas(detail::kCacheLine) std::atomic<std::uint64_t> gate_{0};
  std::atomic<std::uint64_t> rejected_{0};
  detail::Signal room_;  // producers blocked for room
};

}  // namespace pushstage
