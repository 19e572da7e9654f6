// pushstage/broadcast_dispatcher.hpp: GenStage's BroadcastDispatcher: every subscriber gets every
// event (or those its selector accepts), each through a bounded Dispatcher of its own; the
// slowest subscriber sets the pace. A ConsumerPool over it runs one consumer per subscriber; a
// subscriber may also be drained by a pool of its own (subscriber(i) is a Dispatcher).
//
// Threading: every member is safe from any thread; a Producer handle belongs to one thread at a
//            time and must be destroyed before its dispatcher.
// Progress:  push() waits while a subscriber it delivers to is full (Overflow::Block): the slowest
//            subscriber holds back every producer, and nothing is dropped. Each push costs two
//            read-modify-writes on one shared word (the close gate below) plus one Dispatcher push
//            per selected subscriber (a copy of the event for all but the last).
// Ordering:  each subscriber receives the events of one producer in push order.
// Close:     all or nothing. Every push that returned Pushed reached every subscriber that
//            selected it (and was not detached, below); a push that returned Closed reached none.
//            close() refuses new pushes, waits for pushes in progress (a push waiting for room
//            holds close() until the slow subscriber is drained), then closes every subscriber.
// Detach:    closing one subscriber's own Dispatcher (subscriber(i).close()) detaches it: pushes
//            go on to the others (and still return Pushed), and each copy it refuses goes to
//            on_drop as DropReason::Closed (else is destroyed) and is counted in
//            BroadcastStats::refused. Nothing is lost unseen.
// Memory:    what a producer did before push(e) happens-before each subscriber's handler call
//            for its copy of e.
// Not guaranteed: order across producers; that subscribers see events at the same time.
//
// Close gate: gate_ = | closed: 1 bit | pushes in progress: 63 bits |.
//   (G1) a push: gate_ += 1 (seq_cst); if the closed bit was set, (G2) and return Closed.
//   (G2) a push that entered: deliver, then gate_ -= 1 (seq_cst); if that left the closed bit
//        alone (count 0), notify signal_ (N1 is this RMW).
//   (G3) close(): gate_ |= closed (seq_cst), then wait on signal_ until the count reads 0 (A3),
//        then close every subscriber.
//   All RMWs on one word are totally ordered: a push whose (G1) precedes (G3) is counted until its
//   (G2), so (G3) closes subscribers only after its deliveries; a push whose (G1) follows (G3)
//   sees the bit and delivers nothing.
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

#include "pushstage/detail/cache_line.hpp"
#include "pushstage/detail/signal.hpp"
#include "pushstage/dispatcher.hpp"
#include "pushstage/dispatcher_options.hpp"

namespace pushstage {

struct BroadcastStats {
  std::uint64_t pushed = 0;                  // pushes accepted
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
class BroadcastDispatcher {
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
      : selectors_(std::move(selectors)), on_drop_(std::move(on_drop)) {
    detail::check_broadcast_options(subscribers, options, selectors_.size());
    selectors_.resize(subscribers);
    subs_.reserve(subscribers);
    for (std::size_t i = 0; i < subscribers; ++i) {
      subs_.push_back(std::make_unique<Sub>(options, forward_refused()));
    }
  }
  BroadcastDispatcher(const BroadcastDispatcher&) = delete;
  BroadcastDispatcher& operator=(const BroadcastDispatcher&) = delete;

  // Delivers `event` to every subscriber whose selector accepts it (maybe none), waiting for room
  // in each. Returns Pushed, or Closed after close() (the event goes to on_drop, else is
  // destroyed).
  PushResult push(T event) {
    return deliver(std::move(event),
                   [this](std::size_t i, T&& e) { return subs_[i]->d.push(std::move(e)); });
  }

  // See Close above. Idempotent; a second concurrent call may return before the first finished.
  void close() noexcept {
    const std::uint64_t g = gate_.fetch_or(kClosed, std::memory_order_seq_cst);  // G3
    if ((g & kClosed) != 0) return;
    signal_.wait_for([this] { return (gate_.load(std::memory_order_seq_cst) & ~kClosed) == 0; },
                     std::chrono::nanoseconds::max());  // A3 pairs with G2
    for (auto& s : subs_) s->d.close();
  }
  [[nodiscard]] bool closed() const noexcept {
    return (gate_.load(std::memory_order_acquire) & kClosed) != 0;
  }
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

  [[nodiscard]] BroadcastStats stats() const {
    BroadcastStats s;
    s.pushed = pushed_.load(std::memory_order_relaxed);  // statistics: relaxed throughout
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
      return d_->deliver(std::move(event),
                         [this](std::size_t i, T&& e) { return handle(i).push(std::move(e)); });
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
  };

 private:
  static constexpr std::uint64_t kClosed = std::uint64_t{1} << 63;

  struct Sub {
    Sub(const DispatcherOptions& o, DropHandler on_refused) : d(o, std::move(on_refused)) {}
    Dispatcher<T> d;
    alignas(detail::kCacheLine) std::atomic<std::uint64_t> filtered{0};
    std::atomic<std::uint64_t> refused{0};
  };

  // A subscriber's Dispatcher hands the event of a push it refuses (closed: detached) to its
  // on_drop; this one passes it on to ours. Events left in it at destruction are not ours to
  // report (DropReason::Destroyed: destroyed, as without on_drop).
  DropHandler forward_refused() {
    if (!on_drop_) return {};
    return [this](T&& event, DropReason why) {
      if (why == DropReason::Closed) on_drop_(std::move(event), why);
    };
  }

  // (G1) .. (G2) around the deliveries; `push_to(i, event)` pushes into subscriber i.
  template <class PushTo>
  PushResult deliver(T event, PushTo&& push_to) {
    // Here rather than on the class: naming BroadcastDispatcher<T> (a pool's overloads do) must
    // not fail for a move-only T that is never broadcast.
    static_assert(std::is_copy_constructible_v<T>,
                  "BroadcastDispatcher<T> copies each event for every subscriber but the last");
    if ((gate_.fetch_add(1, std::memory_order_seq_cst) & kClosed) != 0) {  // G1 pairs with G3
      leave();
      if (on_drop_) on_drop_(std::move(event), DropReason::Closed);
      return PushResult::Closed;
    }
    try {
      // Copy to every selecting subscriber but the last, move into the last. Our gate keeps
      // every subscriber open until (G2), unless the user closed one (detached): its Dispatcher
      // then refuses the copy and hands it to on_drop (forward_refused); we count it.
      auto offer = [&](std::size_t i, T&& e) {
        if (push_to(i, std::move(e)) != PushResult::Pushed) {
          subs_[i]->refused.fetch_add(1, std::memory_order_relaxed);  // statistics
        }
      };
      std::size_t last = subs_.size();
      for (std::size_t i = 0; i < subs_.size(); ++i) {
        if (selectors_[i] && !selectors_[i](event)) {
          subs_[i]->filtered.fetch_add(1, std::memory_order_relaxed);  // statistics
          continue;
        }
        if (last != subs_.size()) offer(last, T(event));
        last = i;
      }
      if (last != subs_.size()) offer(last, std::move(event));
    } catch (...) {
      leave();
      throw;
    }
    pushed_.fetch_add(1, std::memory_order_relaxed);  // statistics
    leave();
    return PushResult::Pushed;
  }
  // (G2).
  void leave() noexcept {
    const std::uint64_t g = gate_.fetch_sub(1, std::memory_order_seq_cst);  // G2 pairs with G3
    if (g == (kClosed | 1)) signal_.notify_all();                           // the last one out
  }

  std::vector<Selector> selectors_;  // one per subscriber (empty: everything)
  const DropHandler on_drop_;
  std::vector<std::unique_ptr<Sub>> subs_;
  alignas(detail::kCacheLine) std::atomic<std::uint64_t> gate_{0};
  std::atomic<std::uint64_t> pushed_{0};
  detail::Signal signal_;  // close() waits on it for the pushes in progress
};

}  // namespace pushstage
