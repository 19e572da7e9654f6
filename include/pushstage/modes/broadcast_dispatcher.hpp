// pushstage/modes/broadcast_dispatcher.hpp: GenStage's BroadcastDispatcher: every subscriber gets
// every event (or those its selector accepts), each through a bounded Dispatcher of its own; the
// slowest subscriber sets the pace. A ConsumerPool over it runs one consumer per subscriber; a
// subscriber may also be drained by a pool of its own (subscriber(i) is a Dispatcher).
//
// Threading: every member is safe from any thread; a Producer handle belongs to one thread at a
//            time and must be destroyed before its dispatcher.
// Progress:  push() waits while a subscriber it delivers to is full (Overflow::Block): the slowest
//            subscriber holds back every producer, and nothing is dropped. Each push costs one
//            Dispatcher push per selected subscriber (a copy of the event for all but the last).
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
// Observed:  options.name names it in the Topology (pushes, and buffers summed over
//            subscribers); options.observer receives the refusals and drops of the broadcast and
//            of every subscriber, and its close.
// Memory:    what a producer did before push(e) happens-before each subscriber's handler call
//            for its copy of e.
// Failure:   a push that throws (T's copy constructor, or std::bad_alloc from a subscriber's
//            queue) may have reached some of the subscribers and not the others.
// Not guaranteed: order across producers; that subscribers see events at the same time.
//
// How a push stays all or nothing without a gate of its own: it uses each subscriber's
// Dispatcher::Transaction (see Dispatcher's close protocol, core/queue_core.hpp).
//   (BC1) reserve room in every selected subscriber without waiting. One is full: give back all the
//        room reserved, wait for room in that one (holding nothing, so producers never wait on
//        each other in a cycle), and start again. The wait ends when room frees or that
//        subscriber is closed; closed: the push is Closed if the broadcast is closing, else that
//        subscriber is detached and refuses its copy.
//   (BC2) begin the push in every selected subscriber (P0: from here its close() waits for us). A
//        subscriber that refuses is closed: if the broadcast is closing, undo every begun push
//        and return Closed (nothing was enqueued anywhere); else it is detached.
//   (BC3) commit each (enqueue, count, wake): nothing waits between (BC2) and the last commit.
//   close(): (BC4) closing_ = true (seq_cst), then (BC5) close every subscriber in turn: each
//   close() releases that subscriber's producers waiting for room (they see closing_ at BC1 and
//   return Closed) and waits for pushes between their (BC2) and their commit.
// All or nothing: a push commits only after every selected subscriber accepted its (BC2). A push
//   whose (BC2) in subscriber i came before i's close() commits everywhere (every other close()
//   waits for it too, or came after its BC2); a push that finds a subscriber closed by (BC5)
//   reads closing_ after acquiring that subscriber's closed flag, so it sees (BC4) and undoes.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "pushstage/core/cache_line.hpp"
#include "pushstage/core/signal.hpp"
#include "pushstage/core/upstreams.hpp"
#include "pushstage/dispatcher.hpp"
#include "pushstage/dispatcher_options.hpp"
#include "pushstage/observe/listing.hpp"

namespace pushstage {

struct BroadcastStats {
  std::uint64_t pushed = 0;                  // pushes accepted
  std::uint64_t refused_closed = 0;          // pushes refused because it was closed
  std::vector<DispatcherStats> subscribers;  // each subscriber's Dispatcher
  std::vector<std::uint64_t> filtered;       // per subscriber: events its selector skipped
  std::vector<std::uint64_t> refused;        // per subscriber: copies refused once it was closed
  // The subscriber with the most events buffered: the one setting the pace (the first of equals).
  [[nodiscard]] std::size_t slowest() const noexcept;
};

namespace detail {
// Throws std::invalid_argument naming the argument unless subscribers is in [1, 1024], options
// are bounded under Overflow::Block, and selectors are empty or one per subscriber.
void check_broadcast_options(std::size_t subscribers, const DispatcherOptions& options,
                             std::size_t selectors);
}  // namespace detail

template <class T>
class BroadcastDispatcher : public detail::FanIn<BroadcastDispatcher<T>> {
  struct Leg;  // one subscriber's part of a push (below)

 public:
  using value_type = T;
  // Whether a subscriber receives an event. An empty selector accepts everything.
  using Selector = std::function<bool(const T&)>;
  using DropHandler = typename Dispatcher<T>::DropHandler;
  class Producer;

  // Bounded buffers of 1024 events under Overflow::Block: the default per subscriber.
  [[nodiscard]] static DispatcherOptions default_options() {
    DispatcherOptions o;
    o.capacity = 1024;
    return o;
  }

  // `subscribers` in [1, 1024], each with a Dispatcher made from `options` (capacity per
  // subscriber, > 0; overflow must be Block). `selectors`: empty, or one per subscriber. on_drop
  // receives events pushed after close() and the copies a detached subscriber refuses (both
  // DropReason::Closed), on the pushing thread. Throws std::invalid_argument.
  explicit BroadcastDispatcher(std::size_t subscribers,
                               DispatcherOptions options = default_options(),
                               std::vector<Selector> selectors = {}, DropHandler on_drop = {})
      : listing_(listing_spec(subscribers, options, selectors.size())),
        selectors_(std::move(selectors)),
        on_drop_(std::move(on_drop)) {
    selectors_.resize(subscribers);
    subs_.reserve(subscribers);
    for (std::size_t i = 0; i < subscribers; ++i) {
      subs_.push_back(std::make_unique<Sub>(detail::PartOf{&listing_}, options, forward_refused()));
      listing_.add_alias(&subs_.back()->d);
    }
    listing_.join();
  }
  ~BroadcastDispatcher() { listing_.leave(); }
  BroadcastDispatcher(const BroadcastDispatcher&) = delete;
  BroadcastDispatcher& operator=(const BroadcastDispatcher&) = delete;

  // Delivers `event` to every subscriber whose selector accepts it (maybe none), waiting for room
  // in each. Returns Pushed, or Closed after close() (the event goes to on_drop, else is
  // destroyed).
  PushResult push(T event) {
    std::vector<Leg> legs;
    return deliver(std::move(event), legs, [this](std::size_t i) {
      return typename Dispatcher<T>::Transaction(subs_[i]->d);
    });
  }

  // See Close above. Idempotent; a second concurrent call may return before the first finished.
  void close() noexcept {
    const bool first = !closed();  // telemetry only: two racing first calls both report
    closing_.store(true, std::memory_order_seq_cst);  // BC4
    for (auto& s : subs_) s->d.close();               // BC5
    if (first) listing_.report(Telemetry::Closed);
  }
  // Its name in the Topology (options.name, or the default).
  [[nodiscard]] const std::string& name() const noexcept { return listing_.name(); }
  [[nodiscard]] bool closed() const noexcept { return closing_.load(std::memory_order_acquire); }
  // Every subscriber is drained.
  [[nodiscard]] bool drained() const noexcept {
    for (const auto& s : subs_) {
      if (!s->d.drained()) return false;
    }
    return true;
  }

  [[nodiscard]] std::size_t subscribers() const noexcept { return subs_.size(); }
  // Subscriber i's Dispatcher (i < subscribers()): pop from it, or build a pool on it.
  [[nodiscard]] Dispatcher<T>& subscriber(std::size_t i) noexcept { return subs_[i]->d; }

  // As a Source (pushstage/source.hpp): exactly one consumer per subscriber; consumer i drains
  // subscriber i.
  [[nodiscard]] typename Dispatcher<T>::Consumer handle_for(std::size_t i) {
    return subs_[i]->d.consumer();
  }
  [[nodiscard]] std::size_t fixed_consumers() const noexcept { return subs_.size(); }
  [[nodiscard]] static constexpr const char* consumer_role() noexcept {
    return "subscriber of the BroadcastDispatcher";
  }
  void notify() noexcept {
    for (auto& s : subs_) s->d.notify();
  }

  [[nodiscard]] BroadcastStats stats() const {
    BroadcastStats s;
    s.pushed = pushed_.load(std::memory_order_relaxed);  // statistics: relaxed throughout
    s.refused_closed = refused_closed_.load(std::memory_order_relaxed);
    for (const auto& sub : subs_) {
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
    ~Producer() = default;

    PushResult push(T event) {
      return d_->deliver(std::move(event), legs_, [this](std::size_t i) {
        return typename Dispatcher<T>::Transaction(handle(i));
      });
    }

   private:
    friend class BroadcastDispatcher;
    explicit Producer(BroadcastDispatcher& d) : d_(&d), handles_(d.subs_.size()) {}
    typename Dispatcher<T>::Producer& handle(std::size_t i) {
      if (!handles_[i]) handles_[i].emplace(d_->subs_[i]->d.producer());
      return *handles_[i];
    }
    BroadcastDispatcher* d_;
    std::vector<std::optional<typename Dispatcher<T>::Producer>> handles_;
    std::vector<Leg> legs_;  // reused by every push
  };

 private:
  struct Sub {
    Sub(detail::PartOf part, const DispatcherOptions& o, DropHandler on_refused)
        : d(part, o, std::move(on_refused)) {}
    Dispatcher<T> d;
    alignas(detail::kCacheLine) std::atomic<std::uint64_t> filtered{0};
    std::atomic<std::uint64_t> refused{0};
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

  // One subscriber's part of a push.
  struct Leg {
    std::size_t sub;
    typename Dispatcher<T>::Transaction txn;
    bool detached = false;  // closed by the user: refuses its copy
  };

  // (BC1)..(BC3); `open(i)` makes a Transaction on subscriber i; `legs` is scratch space.
  template <class Open>
  PushResult deliver(T event, std::vector<Leg>& legs, Open&& open) {
    // Here rather than on the class: naming BroadcastDispatcher<T> (a pool's overloads do) must
    // not fail for a move-only T that is never broadcast.
    static_assert(std::is_copy_constructible_v<T>,
                  "BroadcastDispatcher<T> copies each event for every subscriber but the last");
    if (closing_.load(std::memory_order_acquire)) return refuse(std::move(event));
    legs.clear();
    for (std::size_t i = 0; i < subs_.size(); ++i) {
      if (selectors_[i] && !selectors_[i](event)) {
        subs_[i]->filtered.fetch_add(1, std::memory_order_relaxed);  // statistics
        continue;
      }
      legs.push_back(Leg{i, open(i)});
    }
    // (BC1): room everywhere, or wait for the full one holding nothing and start again.
    for (std::size_t k = 0; k < legs.size();) {
      if (legs[k].detached || legs[k].txn.try_reserve()) {
        ++k;
        continue;
      }
      for (std::size_t j = 0; j < k; ++j) legs[j].txn.release_room();
      if (!legs[k].txn.wait_for_room()) {  // that subscriber is closed
        if (closing_.load(std::memory_order_acquire)) return refuse(std::move(event));
        legs[k].detached = true;
      }
      k = 0;
    }
    // (BC2)
    for (Leg& leg : legs) {
      if (leg.detached || leg.txn.begin()) continue;
      // Closed. Acquire its flag, then read closing_: a close() that reached this subscriber set
      // closing_ before (BC4 is sequenced before BC5).
      (void)subs_[leg.sub]->d.closed();
      if (closing_.load(std::memory_order_acquire)) {
        for (Leg& l : legs) l.txn.abort();
        return refuse(std::move(event));
      }
      leg.detached = true;
    }
    // (BC3): a copy for every leg but one; the event itself to the last live leg (else the last).
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
    pushed_.fetch_add(1, std::memory_order_relaxed);  // statistics
    return PushResult::Pushed;
  }
  // Commits `copy` on a live leg; a detached leg's copy goes to on_drop.
  void hand_over(Leg& leg, T&& copy) {
    if (!leg.detached) {
      leg.txn.commit(std::move(copy));
      return;
    }
    subs_[leg.sub]->refused.fetch_add(1, std::memory_order_relaxed);  // statistics
    listing_.report(Telemetry::Refused, DropReason::Closed);
    if (on_drop_) on_drop_(std::move(copy), DropReason::Closed);
  }
  PushResult refuse(T&& event) {
    refused_closed_.fetch_add(1, std::memory_order_relaxed);  // statistics
    listing_.report(Telemetry::Refused, DropReason::Closed);
    if (on_drop_) on_drop_(std::move(event), DropReason::Closed);
    return PushResult::Closed;
  }

  // Validates (before anything is built) and lists the dispatcher.
  detail::ListingSpec listing_spec(std::size_t subscribers, const DispatcherOptions& options,
                                   std::size_t selectors) {
    detail::check_broadcast_options(subscribers, options, selectors);
    detail::ListingSpec spec =
        detail::dispatcher_spec(ComponentKind::BroadcastDispatcher, options, this);
    spec.options.emplace_back("subscribers", std::to_string(subscribers));
    spec.fill = [this, capacity = options.capacity * subscribers](ComponentSnapshot& s) {
      const BroadcastStats b = stats();
      DispatcherStats sum;
      sum.pushed = b.pushed;
      sum.refused_closed = b.refused_closed;
      for (const DispatcherStats& sub : b.subscribers) {
        sum.popped += sub.popped;
        sum.buffered += sub.buffered;
        sum.parked += sub.parked;
        sum.spinning += sub.spinning;
      }
      s.buffer = sum;
      s.capacity = capacity;
    };
    return spec;
  }

  // First: the subscribers report their drops as this dispatcher until they are destroyed.
  detail::Listing listing_;
  std::vector<Selector> selectors_;  // one per subscriber (empty: everything)
  const DropHandler on_drop_;
  std::vector<std::unique_ptr<Sub>> subs_;
  alignas(detail::kCacheLine) std::atomic<bool> closing_{false};  // BC4; read by every push
  std::atomic<std::uint64_t> pushed_{0};
  std::atomic<std::uint64_t> refused_closed_{0};
};

}  // namespace pushstage
