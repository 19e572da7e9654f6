// pushstage/modes/broadcast_dispatcher.hpp: GenStage's BroadcastDispatcher: every subscriber gets
// every event (or those its selector accepts), each through a bounded Dispatcher of its own; the
// slowest subscriber sets the pace. A ConsumerPool over it runs one consumer per subscriber made
// at construction; a subscriber may also be drained by a pool of its own (subscriber(i) is a
// Dispatcher). Subscribers may come and go while it runs: subscribe() joins one (a Subscription,
// itself a Source for a pool or a stage), leave() or the Subscription's destructor takes it out.
//
// Threading: every member is safe from any thread; a Producer handle belongs to one thread at a
//            time; Producer handles and Subscriptions must be destroyed before their dispatcher.
// Progress:  push() waits while a subscriber it delivers to is full (Overflow::Block): the slowest
//            subscriber holds back every producer, and nothing is dropped. Each push costs one
//            Dispatcher push per selected subscriber (a copy of the event for all but the last).
//            subscribe() and leave() never wait for a consumer or for a push that waits for room.
// Ordering:  each subscriber receives the events of one producer in push order.
// Close:     all or nothing. Every push that returned Pushed reached every subscriber that
//            selected it (and was not detached, below); a push that returned Closed reached none
//            (the event goes to on_drop, else is destroyed; counted in stats().refused_closed).
//            close() refuses new pushes, releases producers waiting for room, waits only for
//            pushes that are past their wait (microseconds), then every subscriber is closed. It
//            never waits for a consumer, so it may be called from a subscriber's handler.
// Detach:    closing one subscriber's own Dispatcher (subscriber(i).close()) detaches it: pushes
//            go on to the others (and still return Pushed), and each copy it refuses goes to
//            on_drop as DropReason::Closed (else is destroyed) and is counted in
//            BroadcastStats::refused. Nothing is lost unseen.
// Join:      a subscriber that subscribe() returned receives every event of every push that
//            starts after that (pushes in flight may miss it). Subscribing to a closed broadcast
//            gives a subscription that is closed and drained at once.
// Leave:     leave() takes the subscriber out: pushes stop waiting for it (also those waiting for
//            its room now), the events buffered for it go to on_drop as DropReason::Cancelled
//            (else are destroyed; counted in stats().cancelled) unless its consumers take them
//            first, and its consumers then see it drained. finish() takes it out the same way but
//            leaves what it buffered to its consumers. Either way every other subscriber's events
//            are untouched: none lost, none twice. GenStage's cancel modes decide what a leave
//            that leaves no subscriber does to the broadcast (SubscriberOptions::cancel):
//            Temporary (the default) keeps it open, Permanent closes it, Transient closes it when
//            the reason was not LeaveReason::Normal. An open broadcast without subscribers
//            discards what is pushed: push returns Discarded and the event goes to on_drop as
//            DropReason::Discarded (counted in stats().discarded).
// Memory:    what a producer did before push(e) happens-before each subscriber's handler call
//            for its copy of e.
// Failure:   a push that throws (T's copy constructor, or std::bad_alloc from a subscriber's
//            queue) may have reached some of the subscribers and not the others. A selector may
//            be called more than once for one event (when a subscriber leaves during the push).
// Not guaranteed: order across producers; that subscribers see events at the same time.
//
// How a push stays all or nothing without a gate of its own: it uses each subscriber's
// Dispatcher::Transaction (see Dispatcher's close protocol, core/queue_core.hpp).
//   (BC1) reserve room in every selected subscriber without waiting. One is full: give back all the
//        room reserved, wait for room in that one (holding nothing, so producers never wait on
//        each other in a cycle), and start again. The wait ends when room frees or that
//        subscriber is closed; closed: the push is Closed if the broadcast is closing, starts
//        again if that subscriber left (BC7), else that subscriber is detached and refuses its
//        copy.
//   (BC2) begin the push in every selected subscriber (P0: from here its close() waits for us). A
//        subscriber that refuses is closed: if the broadcast is closing, undo every begun push
//        and return Closed (nothing was enqueued anywhere); if it left, undo and start again
//        (BC7); else it is detached.
//   (BC3) commit each (enqueue, count, wake): nothing waits between (BC2) and the last commit.
//   close(): (BC4) closing_ = true (seq_cst), then (BC5) close every subscriber in turn: each
//   close() releases that subscriber's producers waiting for room (they see closing_ at BC1 and
//   return Closed) and waits for pushes between their (BC2) and their commit.
// All or nothing: a push commits only after every selected subscriber accepted its (BC2). A push
//   whose (BC2) in subscriber i came before i's close() commits everywhere (every other close()
//   waits for it too, or came after its BC2); a push that finds a subscriber closed by (BC5)
//   reads closing_ after acquiring that subscriber's closed flag, so it sees (BC4) and undoes.
// Subscribers that come and go: the subscribers are a roster, an immutable list replaced whole
//   under roster_mutex_ (copy on write) and shared by the pushes that read it (shared_ptr), with
//   a generation count bumped at every change.
//   (BC6) leave(s): under the mutex, replace the roster by one without s and bump generation_;
//        then s.left = true (seq_cst); then close s's Dispatcher (K1-K5: it releases pushes
//        waiting for its room and waits for pushes between their BC2 in s and their commit);
//        then drain s's buffer to on_drop (leave) or leave it to s's consumers (finish).
//   (BC7) a push that finds a subscriber closed at BC1 or BC2 acquires its closed flag and reads
//        left: set means the subscriber left (its left = true precedes its close: BC6), so the
//        push undoes what it reserved and began (nothing is committed before BC3), reads the
//        roster again under the mutex (BC6's change happens-before: it unlocked before the close
//        the push observed) and starts again without it.
//   (BC8) subscribe(): under the mutex, add the new subscriber to the roster, bump generation_,
//        then read closing_; set: close the new subscriber. close() (BC5) takes the roster under
//        the mutex after BC4, so a subscriber added after that snapshot sees closing_ here.
//   (BC9) a Producer handle keeps the roster it last read and a Dispatcher::Producer per
//        subscriber of it; before each push it reads generation_ and, if it changed, reads the
//        roster again under the mutex (keeping the handles of the subscribers still there). A
//        tokenless push() reads the roster under the mutex each time.
// Join and leave are safe against pushes in flight: a push either began in s before s's close()
//   (it commits there; the copy is drained by BC6 or taken by s's consumers) or finds s closed
//   and starts again without it (BC7), before committing anywhere: every other subscriber gets
//   its copy exactly once. A push that read the roster before a join misses the new subscriber,
//   which is why Join promises only pushes that start after subscribe() returned. A left
//   subscriber's memory is freed once no roster, Subscription or Producer handle holds it (a
//   Producer handle lets go at its next push).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "pushstage/core/cache_line.hpp"
#include "pushstage/core/signal.hpp"
#include "pushstage/core/upstreams.hpp"
#include "pushstage/dispatcher.hpp"
#include "pushstage/dispatcher_options.hpp"

namespace pushstage {

struct BroadcastStats {
  std::uint64_t pushed = 0;                  // pushes accepted
  std::uint64_t refused_closed = 0;          // pushes refused because it was closed
  std::uint64_t discarded = 0;               // pushes that found no subscriber (open, none left)
  std::uint64_t left = 0;                    // subscriptions that left (leave() or finish())
  std::uint64_t cancelled = 0;               // copies buffered for a subscription when it left
  std::vector<DispatcherStats> subscribers;  // each subscriber's Dispatcher, in join order
  std::vector<std::uint64_t> filtered;       // per subscriber: events its selector skipped
  std::vector<std::uint64_t> refused;        // per subscriber: copies refused once it was closed
  // The subscriber with the most events buffered: the one setting the pace (the first of equals).
  [[nodiscard]] std::size_t slowest() const noexcept;
};

// GenStage's cancel modes, seen from the source: what a subscription that leaves the broadcast
// with no subscriber does to it.
enum class CancelMode {
  Temporary,  // nothing: it stays open (pushes without subscribers are discarded, counted)
  Transient,  // close it, unless the subscription left with LeaveReason::Normal
  Permanent,  // close it
};

// Why a subscription leaves (for CancelMode::Transient).
enum class LeaveReason {
  Normal,  // done
  Failed,  // its consumer failed
};

namespace detail {
// Throws std::invalid_argument naming the argument unless subscribers is in [0, 1024], options
// are bounded under Overflow::Block, and selectors are empty or one per subscriber.
void check_broadcast_options(std::size_t subscribers, const DispatcherOptions& options,
                             std::size_t selectors);
// The same for a subscription's buffer (SubscriberOptions::buffer).
void check_subscriber_options(const DispatcherOptions& buffer);
// Throws std::length_error when the broadcast already has the most subscribers (1024).
void check_subscriber_count(std::size_t subscribers_now);
}  // namespace detail

template <class T>
class BroadcastDispatcher : public detail::FanIn<BroadcastDispatcher<T>> {
  struct Sub;
  struct Roster;
  struct Leg;  // one subscriber's part of a push (below)

 public:
  using value_type = T;
  // Whether a subscriber receives an event. An empty selector accepts everything.
  using Selector = std::function<bool(const T&)>;
  using DropHandler = typename Dispatcher<T>::DropHandler;
  class Producer;
  class Subscription;

  // Bounded buffers of 1024 events under Overflow::Block: the default per subscriber.
  [[nodiscard]] static DispatcherOptions default_options() {
    DispatcherOptions o;
    o.capacity = 1024;
    return o;
  }

  // A subscription's own terms (GenStage's subscribe options).
  struct SubscriberOptions {
    // Its buffer: how far the broadcast may run ahead of it (capacity > 0, Overflow::Block).
    DispatcherOptions buffer = default_options();
    // The events it receives; empty: all.
    Selector selector;
    // What its leaving does to the broadcast when no subscriber is left (see Leave).
    CancelMode cancel = CancelMode::Temporary;
  };

  // `subscribers` in [0, 1024], each with a Dispatcher made from `options` (capacity per
  // subscriber, > 0; overflow must be Block). `selectors`: empty, or one per subscriber. on_drop
  // receives events pushed after close() and the copies a detached subscriber refuses (both
  // DropReason::Closed), events pushed while there is no subscriber (Discarded), and the copies a
  // subscription left behind (Cancelled), on the thread that dropped them. With no subscribers,
  // the dispatcher is not a source for one pool (its handles are drained at once): subscribe() and
  // run a pool over each subscription. Throws std::invalid_argument.
  explicit BroadcastDispatcher(std::size_t subscribers,
                               DispatcherOptions options = default_options(),
                               std::vector<Selector> selectors = {}, DropHandler on_drop = {})
      : on_drop_(std::move(on_drop)) {
    detail::check_broadcast_options(subscribers, options, selectors.size());
    selectors.resize(subscribers);
    auto roster = std::make_shared<Roster>();
    for (std::size_t i = 0; i < subscribers; ++i) {
      fixed_.push_back(std::make_shared<Sub>(options, forward_refused(), std::move(selectors[i])));
    }
    roster->subs = fixed_;
    roster_ = std::move(roster);
    if (subscribers == 0) {
      none_ = std::make_unique<Dispatcher<T>>();
      none_->close();
    }
  }
  BroadcastDispatcher(const BroadcastDispatcher&) = delete;
  BroadcastDispatcher& operator=(const BroadcastDispatcher&) = delete;

  // Delivers `event` to every subscriber whose selector accepts it (maybe none), waiting for room
  // in each. Returns Pushed; Closed after close(); Discarded when there is no subscriber (the
  // event goes to on_drop, else is destroyed).
  PushResult push(T event) {
    Tokenless view{*this, current_roster()};
    std::vector<Leg> legs;
    return deliver(std::move(event), legs, view);
  }

  // See Close above. Idempotent; a second concurrent call may return before the first finished.
  void close() noexcept {
    closing_.store(true, std::memory_order_seq_cst);            // BC4
    for (const auto& s : current_roster()->subs) s->d.close();  // BC5 (the roster after BC4: BC8)
  }
  [[nodiscard]] bool closed() const noexcept { return closing_.load(std::memory_order_acquire); }
  // Every subscriber is drained.
  [[nodiscard]] bool drained() const noexcept {
    for (const auto& s : current_roster()->subs) {
      if (!s->d.drained()) return false;
    }
    return true;
  }

  // Subscribers now: those made at construction and the subscriptions that have not left.
  [[nodiscard]] std::size_t subscribers() const noexcept { return current_roster()->subs.size(); }
  // Subscriber i made at construction (i < the constructor's `subscribers`): pop from it, or build
  // a pool on it.
  [[nodiscard]] Dispatcher<T>& subscriber(std::size_t i) noexcept { return fixed_[i]->d; }

  // Joins a new subscriber (GenStage's subscribe): it receives the events of every push that
  // starts after this returns, through a buffer of its own. Throws std::invalid_argument for
  // options out of range, std::length_error when there are already 1024 subscribers.
  [[nodiscard]] Subscription subscribe() { return subscribe(SubscriberOptions{}); }
  [[nodiscard]] Subscription subscribe(SubscriberOptions options) {
    detail::check_subscriber_options(options.buffer);
    auto sub = std::make_shared<Sub>(options.buffer, forward_refused(), std::move(options.selector),
                                     options.cancel);
    const std::lock_guard lock(roster_mutex_);
    detail::check_subscriber_count(roster_->subs.size());
    auto next = std::make_shared<Roster>(*roster_);  // BC8
    next->subs.push_back(sub);
    roster_ = std::move(next);
    // relaxed: written only under roster_mutex_; a push that happens after this returns reads it
    // or a later value (coherence) and takes the roster under the mutex (BC9).
    generation_.store(generation_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (closing_.load(std::memory_order_seq_cst)) sub->d.close();  // BC8: close() took its roster
    return Subscription(*this, std::move(sub));
  }

  // As a Source (pushstage/source.hpp): exactly one consumer per subscriber made at construction;
  // consumer i drains subscriber i. Subscriptions are sources of their own.
  [[nodiscard]] typename Dispatcher<T>::Consumer handle_for(std::size_t i) {
    return i < fixed_.size() ? fixed_[i]->d.consumer() : none_->consumer();
  }
  [[nodiscard]] std::size_t fixed_consumers() const noexcept { return fixed_.size(); }
  [[nodiscard]] static constexpr const char* consumer_role() noexcept {
    return "subscriber of the BroadcastDispatcher";
  }
  void notify() noexcept {
    for (auto& s : fixed_) s->d.notify();
  }

  [[nodiscard]] BroadcastStats stats() const {
    BroadcastStats s;
    s.pushed = pushed_.load(std::memory_order_relaxed);  // statistics: relaxed throughout
    s.refused_closed = refused_closed_.load(std::memory_order_relaxed);
    s.discarded = discarded_.load(std::memory_order_relaxed);
    s.left = left_.load(std::memory_order_relaxed);
    s.cancelled = cancelled_.load(std::memory_order_relaxed);
    for (const auto& sub : current_roster()->subs) {
      s.subscribers.push_back(sub->d.stats());
      s.filtered.push_back(sub->filtered.load(std::memory_order_relaxed));
      s.refused.push_back(sub->refused.load(std::memory_order_relaxed));
    }
    return s;
  }

  // A producer handle: one Dispatcher::Producer per subscriber, made on first use.
  [[nodiscard]] Producer producer() { return Producer(*this); }

  class Producer {
   public:
    Producer(Producer&&) noexcept = default;
    Producer& operator=(Producer&&) = delete;
    Producer(const Producer&) = delete;
    Producer& operator=(const Producer&) = delete;
    ~Producer() {
      handles_.clear();  // before the roster that keeps their Dispatchers alive
    }

    PushResult push(T event) { return d_->deliver(std::move(event), legs_, *this); }

   private:
    friend class BroadcastDispatcher;
    explicit Producer(BroadcastDispatcher& d) : d_(&d) { refresh(); }

    // The roster to push through (BC9).
    const Roster& roster() {
      // relaxed: a change is only noticed here; refresh() reads the roster under the mutex.
      if (d_->generation_.load(std::memory_order_relaxed) != generation_) refresh();
      return *roster_;
    }
    typename Dispatcher<T>::Transaction open(std::size_t i) {
      if (!handles_[i]) handles_[i].emplace(roster_->subs[i]->d.producer());
      return typename Dispatcher<T>::Transaction(*handles_[i]);
    }
    // Reads the roster again; keeps the handles of subscribers still in it.
    void refresh() {
      std::shared_ptr<const Roster> next;
      std::uint64_t generation = 0;
      {
        const std::lock_guard lock(d_->roster_mutex_);
        next = d_->roster_;
        generation = d_->generation_.load(std::memory_order_relaxed);  // written under the lock
      }
      std::vector<std::optional<typename Dispatcher<T>::Producer>> handles(next->subs.size());
      for (std::size_t i = 0; roster_ != nullptr && i < next->subs.size(); ++i) {
        for (std::size_t j = 0; j < roster_->subs.size(); ++j) {
          if (roster_->subs[j] == next->subs[i] && handles_[j]) {
            handles[i].emplace(std::move(*handles_[j]));
            handles_[j].reset();
            break;
          }
        }
      }
      handles_ = std::move(handles);  // the handles of subscribers that left go first
      roster_ = std::move(next);
      generation_ = generation;
    }

    BroadcastDispatcher* d_;
    std::shared_ptr<const Roster> roster_;
    std::uint64_t generation_ = 0;
    std::vector<std::optional<typename Dispatcher<T>::Producer>> handles_;  // per roster_->subs
    std::vector<Leg> legs_;                                                 // reused by every push
  };

  // A subscriber that joined with subscribe(): its own buffer, a Source for a pool or a stage
  // (any number of consumers share it; pools over it are destroyed before it). Leaves on
  // destruction (leave()). Move-only; must not outlive its BroadcastDispatcher.
  class Subscription {
   public:
    using value_type = T;
    Subscription(Subscription&& other) noexcept
        : b_(std::exchange(other.b_, nullptr)), sub_(std::move(other.sub_)) {}
    Subscription& operator=(Subscription&&) = delete;
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;
    // Leaves (leave()) if it has not; what its consumers left of a finish() goes to on_drop.
    ~Subscription() {
      if (b_ != nullptr) leave();
    }

    // Takes it out of the broadcast (BC6): no push delivers to it any more, and what is buffered
    // for it goes to on_drop (DropReason::Cancelled) unless its consumers take it first; its
    // consumers then see it drained. `why`: for CancelMode::Transient (the first leave() or
    // finish() decides). Idempotent; a concurrent second call may return before the first ends.
    void leave(LeaveReason why = LeaveReason::Normal) noexcept { b_->leave(*sub_, why, true); }
    // The same, but its consumers take what is buffered for it (a pool over it joins after).
    void finish(LeaveReason why = LeaveReason::Normal) noexcept { b_->leave(*sub_, why, false); }
    // It left (or finished); pushes no longer reach it.
    [[nodiscard]] bool left() const noexcept {
      return sub_->left.load(std::memory_order_acquire);  // a snapshot
    }
    // Its buffer: pop from it, or read its stats().
    [[nodiscard]] Dispatcher<T>& dispatcher() noexcept { return sub_->d; }

    // As a Source (pushstage/source.hpp): any number of consumers share its buffer.
    [[nodiscard]] typename Dispatcher<T>::Consumer handle_for(std::size_t /*consumer*/) {
      return sub_->d.consumer();
    }
    [[nodiscard]] static constexpr std::size_t fixed_consumers() noexcept { return 0; }
    [[nodiscard]] static constexpr const char* consumer_role() noexcept {
      return "consumer of the BroadcastDispatcher subscription";
    }
    void notify() noexcept { sub_->d.notify(); }

   private:
    friend class BroadcastDispatcher;
    Subscription(BroadcastDispatcher& b, std::shared_ptr<Sub> sub) : b_(&b), sub_(std::move(sub)) {}
    BroadcastDispatcher* b_;
    std::shared_ptr<Sub> sub_;
  };

 private:
  struct Sub {
    Sub(const DispatcherOptions& o, DropHandler on_refused, Selector s,
        CancelMode c = CancelMode::Temporary)
        : d(o, std::move(on_refused)), selector(std::move(s)), cancel(c) {}
    Dispatcher<T> d;
    const Selector selector;  // empty: everything
    const CancelMode cancel;  // a subscription's
    alignas(detail::kCacheLine) std::atomic<std::uint64_t> filtered{0};
    std::atomic<std::uint64_t> refused{0};
    std::atomic<bool> left{false};     // BC6; read by pushes that find it closed (BC7)
    std::atomic<bool> leaving{false};  // the first leave() or finish() takes it out
  };
  struct Roster {
    std::vector<std::shared_ptr<Sub>> subs;  // in join order
  };

  std::shared_ptr<const Roster> current_roster() const {
    const std::lock_guard lock(roster_mutex_);
    return roster_;
  }

  // A tokenless push's view of the roster (BC9): read under the mutex for each push.
  struct Tokenless {
    BroadcastDispatcher& d;
    std::shared_ptr<const Roster> r;
    const Roster& roster() const noexcept { return *r; }
    typename Dispatcher<T>::Transaction open(std::size_t i) {
      return typename Dispatcher<T>::Transaction(r->subs[i]->d);
    }
    void refresh() { r = d.current_roster(); }
  };

  // A subscriber's Dispatcher hands the event of a push it refuses (closed) to its on_drop; this
  // one passes it on to ours (someone pushed into subscriber(i) directly). Events left in it at
  // destruction are not ours to report (DropReason::Destroyed: destroyed, as without on_drop).
  DropHandler forward_refused() {
    if (!on_drop_) return {};
    return [this](T&& event, DropReason why) {
      if (why == DropReason::Closed) on_drop_(std::move(event), why);
    };
  }

  // (BC6): the first call takes `s` out; `drop`: drain its buffer to on_drop (leave) or leave it
  // to its consumers (finish).
  void leave(Sub& s, LeaveReason why, bool drop) noexcept {
    // relaxed: only picks the one caller that takes it out; the roster mutex orders the rest.
    if (!s.leaving.exchange(true, std::memory_order_relaxed)) take_out(s, why);
    if (drop) drop_buffered(s);
  }
  void take_out(Sub& s, LeaveReason why) noexcept {
    bool none_left = false;
    {
      const std::lock_guard lock(roster_mutex_);
      auto next = std::make_shared<Roster>();
      next->subs.reserve(roster_->subs.size());
      for (const auto& other : roster_->subs) {
        if (other.get() != &s) next->subs.push_back(other);
      }
      none_left = next->subs.empty();
      roster_ = std::move(next);
      generation_.store(generation_.load(std::memory_order_relaxed) + 1,
                        std::memory_order_relaxed);  // as in subscribe()
    }
    s.left.store(true, std::memory_order_seq_cst);  // BC6: before the close a push observes (BC7)
    s.d.close();                                    // K1-K5
    left_.fetch_add(1, std::memory_order_relaxed);  // statistics
    if (none_left && (s.cancel == CancelMode::Permanent ||
                      (s.cancel == CancelMode::Transient && why != LeaveReason::Normal))) {
      close();
    }
  }

  // A left subscriber's buffer, to on_drop (after a concurrent take_out() closed it: drained()
  // is false until then).
  void drop_buffered(Sub& s) noexcept {
    while (!s.d.drained()) {
      std::optional<T> e = s.d.try_pop();
      if (!e) {
        std::this_thread::yield();  // closing, or a consumer is between its dequeue and its count
        continue;
      }
      cancelled_.fetch_add(1, std::memory_order_relaxed);  // statistics
      if (on_drop_) on_drop_(std::move(*e), DropReason::Cancelled);
    }
  }

  // One subscriber's part of a push.
  struct Leg {
    Sub* sub;
    typename Dispatcher<T>::Transaction txn;
    bool detached = false;  // closed by the user: refuses its copy
  };
  enum class Verdict { kReady, kClosed, kLeft };

  // (BC1)..(BC3) through `view` (a Producer or Tokenless: roster(), open(i), refresh());
  // `legs` is scratch space.
  template <class View>
  PushResult deliver(T event, std::vector<Leg>& legs, View& view) {
    // Here rather than on the class: naming BroadcastDispatcher<T> (a pool's overloads do) must
    // not fail for a move-only T that is never broadcast.
    static_assert(std::is_copy_constructible_v<T>,
                  "BroadcastDispatcher<T> copies each event for every subscriber but the last");
    for (;;) {
      legs.clear();  // undoes a previous round, before refresh() replaces the handles it used
      if (closing_.load(std::memory_order_acquire)) return refuse(std::move(event));
      const Roster& roster = view.roster();
      if (roster.subs.empty()) return discard(std::move(event));
      for (std::size_t i = 0; i < roster.subs.size(); ++i) {
        Sub& sub = *roster.subs[i];
        if (!sub.selector || sub.selector(event)) legs.push_back(Leg{&sub, view.open(i)});
      }
      const Verdict v = reserve_and_begin(legs);
      if (v == Verdict::kClosed) return refuse(std::move(event));
      if (v == Verdict::kLeft) {
        legs.clear();
        view.refresh();  // BC7
        continue;
      }
      count_filtered(roster, legs);
      commit(std::move(event), legs);
      pushed_.fetch_add(1, std::memory_order_relaxed);  // statistics
      return PushResult::Pushed;
    }
  }
  // Counted once the push is certain to go on (a push that starts again selects again). Legs are
  // in roster order.
  static void count_filtered(const Roster& roster, const std::vector<Leg>& legs) noexcept {
    std::size_t j = 0;
    for (const auto& s : roster.subs) {
      if (j < legs.size() && legs[j].sub == s.get()) {
        ++j;
      } else {
        s->filtered.fetch_add(1, std::memory_order_relaxed);  // statistics
      }
    }
  }
  // Closed: acquire its flag, then read closing_ (BC4 is sequenced before BC5) and left (BC6
  // sets it before the close).
  Verdict why_closed(Leg& leg) const noexcept {
    (void)leg.sub->d.closed();
    if (closing_.load(std::memory_order_acquire)) return Verdict::kClosed;
    if (leg.sub->left.load(std::memory_order_acquire)) return Verdict::kLeft;
    leg.detached = true;
    return Verdict::kReady;
  }
  // (BC1) and (BC2).
  Verdict reserve_and_begin(std::vector<Leg>& legs) {
    // (BC1): room everywhere, or wait for the full one holding nothing and start again.
    for (std::size_t k = 0; k < legs.size();) {
      if (legs[k].detached || legs[k].txn.try_reserve()) {
        ++k;
        continue;
      }
      for (std::size_t j = 0; j < k; ++j) legs[j].txn.release_room();
      if (!legs[k].txn.wait_for_room()) {  // that subscriber is closed
        const Verdict v = why_closed(legs[k]);
        if (v != Verdict::kReady) return v;
      }
      k = 0;
    }
    // (BC2)
    for (Leg& leg : legs) {
      if (leg.detached || leg.txn.begin()) continue;
      const Verdict v = why_closed(leg);
      if (v != Verdict::kReady) {
        for (Leg& l : legs) l.txn.abort();
        return v;
      }
    }
    return Verdict::kReady;
  }
  // (BC3): a copy for every leg but one; the event itself to the last live leg (else the last).
  void commit(T&& event, std::vector<Leg>& legs) {
    std::size_t last = legs.size();
    for (std::size_t k = legs.size(); k-- > 0;) {
      if (!legs[k].detached) {
        last = k;
        break;
      }
    }
    if (last == legs.size() && !legs.empty()) last = legs.size() - 1;
    try {
      for (std::size_t k = 0; k < legs.size(); ++k) {
        if (k != last) hand_over(legs[k], T(event));
      }
      if (last != legs.size()) hand_over(legs[last], std::move(event));
    } catch (...) {
      for (Leg& l : legs) l.txn.abort();
      throw;
    }
  }
  // Commits `copy` on a live leg; a detached leg's copy goes to on_drop.
  void hand_over(Leg& leg, T&& copy) {
    if (!leg.detached) {
      leg.txn.commit(std::move(copy));
      return;
    }
    leg.sub->refused.fetch_add(1, std::memory_order_relaxed);  // statistics
    if (on_drop_) on_drop_(std::move(copy), DropReason::Closed);
  }
  PushResult refuse(T&& event) {
    refused_closed_.fetch_add(1, std::memory_order_relaxed);  // statistics
    if (on_drop_) on_drop_(std::move(event), DropReason::Closed);
    return PushResult::Closed;
  }
  PushResult discard(T&& event) {
    discarded_.fetch_add(1, std::memory_order_relaxed);  // statistics
    if (on_drop_) on_drop_(std::move(event), DropReason::Discarded);
    return PushResult::Discarded;
  }

  const DropHandler on_drop_;
  std::vector<std::shared_ptr<Sub>> fixed_;  // the constructor's subscribers, by index
  std::unique_ptr<Dispatcher<T>> none_;      // made with no subscribers: a closed, empty source
  mutable std::mutex roster_mutex_;          // guards roster_ and the writes of generation_
  std::shared_ptr<const Roster> roster_;     // every subscriber now, in join order
  alignas(detail::kCacheLine) std::atomic<std::uint64_t> generation_{0};  // BC9; read by pushes
  std::atomic<bool> closing_{false};                                      // BC4; read by pushes
  alignas(detail::kCacheLine) std::atomic<std::uint64_t> pushed_{0};
  std::atomic<std::uint64_t> refused_closed_{0};
  std::atomic<std::uint64_t> discarded_{0};
  std::atomic<std::uint64_t> left_{0};
  std::atomic<std::uint64_t> cancelled_{0};
};

}  // namespace pushstage
