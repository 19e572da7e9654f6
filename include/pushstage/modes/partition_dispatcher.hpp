// pushstage/modes/partition_dispatcher.hpp: GenStage's PartitionDispatcher: a hash of each event's
// key picks one of N partitions; each partition is a Dispatcher of its own, drained by exactly one
// consumer (a ConsumerPool built over the PartitionDispatcher has one consumer per partition).
// Instead of a hash, a router may name each event's partition or discard the event (GenStage's
// hash returning :none), and partitions may have names (GenStage's `partitions: [:odd, :even]`).
//
// Threading: every member is safe from any thread; a Producer handle belongs to one thread at a
//            time and must be destroyed before its dispatcher.
// Progress:  as Dispatcher: push() into an unbounded partition is lock-free; a full partition
//            under Overflow::Block makes the push wait (only that partition's producers wait).
// Ordering:  events with equal hashes go to the same partition, so the events of one key pushed
//            by one producer (handle, or thread without a handle) are handled in push order by the
//            one consumer of that partition. Nothing across partitions.
// Memory:    what a producer did before push(e) happens-before the handler's call for e.
// Skew:      a hot key makes a hot partition that only one consumer drains; stats() shows it
//            (pushed and buffered per partition, hottest(), skew()). KeyedDispatcher keeps the
//            order per key without tying a partition to one consumer.
// Close:     close() closes every partition (see Dispatcher: nothing accepted is lost).
// Discard:   an event the router discards goes to on_drop (DropReason::Discarded; try_push leaves
//            it with the caller), push returns PushResult::Discarded, and stats().discarded counts
//            it.
// Consumers: one per partition, for good: a pool over the whole PartitionDispatcher cannot resize
//            (a second consumer on a partition would break its order; retiring one would strand
//            its events). A partition's consumer may change: a pool over partition(i) alone (a
//            Dispatcher) may be destroyed and another started; the events it did not take wait in
//            the partition, in order, for the next (GenStage's partition that buffers events
//            until a consumer subscribes). At most one such pool per partition at a time keeps the
//            order.
// Not guaranteed: order across producers; balance across partitions.
#pragma once

#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "pushstage/core/upstreams.hpp"
#include "pushstage/dispatcher.hpp"
#include "pushstage/dispatcher_options.hpp"

namespace pushstage {

// Per-partition counters of a PartitionDispatcher (each as Dispatcher::stats()).
struct PartitionStats {
  std::vector<DispatcherStats> partitions;
  std::uint64_t discarded = 0;  // events the router discarded (in no partition)
  // The sum over partitions (waiting() included).
  [[nodiscard]] DispatcherStats total() const noexcept;
  // The partition with the most events pushed (the first of equals); 0 when there are none.
  [[nodiscard]] std::size_t hottest() const noexcept;
  // Most pushed into one partition over the mean per partition: 1 is perfectly even, N means all
  // into one of N partitions; 1 when nothing was pushed.
  [[nodiscard]] double skew() const noexcept;
};

// Where a PartitionDispatcher's router sends an event: to one partition, or nowhere.
class PartitionRoute {
 public:
  // Partition `partition` (< partitions(); a named partition's index: index_of()).
  [[nodiscard]] static constexpr PartitionRoute to(std::size_t partition) noexcept {
    return PartitionRoute(partition);
  }
  // Nowhere: the event is discarded (GenStage's :none).
  [[nodiscard]] static constexpr PartitionRoute discard() noexcept {
    return PartitionRoute(kNowhere);
  }
  [[nodiscard]] constexpr bool discarded() const noexcept { return partition_ == kNowhere; }
  [[nodiscard]] constexpr std::size_t partition() const noexcept { return partition_; }

 private:
  static constexpr std::size_t kNowhere = ~std::size_t{0};
  explicit constexpr PartitionRoute(std::size_t partition) noexcept : partition_(partition) {}
  std::size_t partition_;
};

namespace detail {
// Throws std::invalid_argument unless partitions is in [1, 65536] and the hash (or router, as
// `what` names it) is not empty.
void check_partition_options(std::size_t partitions, bool has_hash, const char* what = "hash");
// Throws std::invalid_argument unless the names are not empty and distinct.
void check_partition_names(const std::vector<std::string>& names);
// Throws std::out_of_range: a router sent an event to a partition that does not exist.
[[noreturn]] void throw_no_such_partition(std::size_t partition, std::size_t partitions);
// Throws std::invalid_argument: no partition has that name.
[[noreturn]] void throw_no_partition_named(std::string_view name,
                                           const std::vector<std::string>& names);
}  // namespace detail

template <class T>
class PartitionDispatcher : public detail::FanIn<PartitionDispatcher<T>> {
 public:
  using value_type = T;
  // The hash of an event's key: the partition is hash(event) % partitions().
  using Hash = std::function<std::size_t(const T&)>;
  // GenStage's hash that may return :none: the event's partition, or PartitionRoute::discard().
  using Router = std::function<PartitionRoute(const T&)>;
  using DropHandler = typename Dispatcher<T>::DropHandler;
  class Producer;

  // `partitions` Dispatchers, each with `options` (capacity is per partition) and on_drop.
  // Throws std::invalid_argument for partitions outside [1, 65536], an empty hash, or options
  // out of range.
  PartitionDispatcher(std::size_t partitions, Hash hash, DispatcherOptions options = {},
                      DropHandler on_drop = {})
      : hash_(std::move(hash)), on_drop_(on_drop) {
    detail::check_partition_options(partitions, static_cast<bool>(hash_));
    make_partitions(partitions, options, on_drop);
  }
  // The same with a router (any callable taking const T& and returning a PartitionRoute): it
  // names each event's partition (< partitions), or discards the event. on_drop also receives the
  // discarded events (DropReason::Discarded). Throws std::invalid_argument as above (an empty
  // router too).
  template <class R>
  requires std::is_invocable_r_v<PartitionRoute, R&, const T&> PartitionDispatcher(
      std::size_t partitions, R router, DispatcherOptions options = {}, DropHandler on_drop = {})
      : route_(std::move(router)), on_drop_(on_drop) {
    detail::check_partition_options(partitions, static_cast<bool>(route_), "router");
    make_partitions(partitions, options, on_drop);
  }
  // Named partitions, one per name, in order (GenStage's `partitions: [:odd, :even]`); the router
  // routes by index (index_of(name) gives it). Throws std::invalid_argument for no names, an
  // empty or repeated name, more than 65536, an empty router, or options out of range.
  template <class R>
  requires std::is_invocable_r_v<PartitionRoute, R&, const T&> PartitionDispatcher(
      std::vector<std::string> names, R router, DispatcherOptions options = {},
      DropHandler on_drop = {})
      : route_(std::move(router)), on_drop_(on_drop), names_(std::move(names)) {
    detail::check_partition_options(names_.size(), static_cast<bool>(route_), "router");
    detail::check_partition_names(names_);
    make_partitions(names_.size(), options, on_drop);
  }
  PartitionDispatcher(const PartitionDispatcher&) = delete;
  PartitionDispatcher& operator=(const PartitionDispatcher&) = delete;

  // Dispatcher::push() into the event's partition. Discarded by the router: on_drop receives it
  // and the result is Discarded. Throws std::out_of_range if the router names a partition that
  // does not exist (the event is destroyed).
  PushResult push(T event) {
    const PartitionRoute r = route_of(event);
    if (r.discarded()) [[unlikely]]
      return discard(std::move(event));
    return parts_[r.partition()]->push(std::move(event));
  }
  // Dispatcher::try_push() into the event's partition; a discarded event stays with the caller
  // (counted; the result is Discarded).
  [[nodiscard]] PushResult try_push(T& event) {
    const PartitionRoute r = route_of(event);
    if (r.discarded()) [[unlikely]]
      return count_discarded();
    return parts_[r.partition()]->try_push(event);
  }

  // Closes every partition, in order. Idempotent.
  void close() noexcept {
    for (auto& p : parts_) p->close();
  }
  [[nodiscard]] bool closed() const noexcept { return parts_.front()->closed(); }
  // Every partition is drained.
  [[nodiscard]] bool drained() const noexcept {
    for (const auto& p : parts_) {
      if (!p->drained()) return false;
    }
    return true;
  }

  [[nodiscard]] std::size_t partitions() const noexcept { return parts_.size(); }
  // Where `event` goes: its partition, or discard() (a router's verdict). Throws std::out_of_range
  // if the router names a partition that does not exist.
  [[nodiscard]] PartitionRoute route_of(const T& event) const {
    if (hash_) return PartitionRoute::to(hash_(event) % parts_.size());
    const PartitionRoute r = route_(event);
    if (!r.discarded() && r.partition() >= parts_.size()) [[unlikely]]
      detail::throw_no_such_partition(r.partition(), parts_.size());
    return r;
  }
  // The event's partition; partitions() when the router discards it.
  [[nodiscard]] std::size_t partition_of(const T& event) const {
    const PartitionRoute r = route_of(event);
    return r.discarded() ? parts_.size() : r.partition();
  }
  // Partition i (i < partitions()), e.g. to inspect it, or to run a pool of its own over it.
  [[nodiscard]] Dispatcher<T>& partition(std::size_t i) noexcept { return *parts_[i]; }
  // Named partitions: the index of the one called `name`. Throws std::invalid_argument naming
  // the partitions when none is (always, for unnamed partitions).
  [[nodiscard]] std::size_t index_of(std::string_view name) const {
    for (std::size_t i = 0; i < names_.size(); ++i) {
      if (names_[i] == name) return i;
    }
    detail::throw_no_partition_named(name, names_);
  }
  // Partition i's name (i < partitions()); empty for unnamed partitions.
  [[nodiscard]] std::string_view name(std::size_t i) const noexcept {
    return names_.empty() ? std::string_view{} : std::string_view{names_[i]};
  }

  // As a Source (pushstage/source.hpp): exactly one consumer per partition; consumer i drains
  // partition i.
  [[nodiscard]] typename Dispatcher<T>::Consumer handle_for(std::size_t i) {
    return parts_[i]->consumer();
  }
  [[nodiscard]] std::size_t fixed_consumers() const noexcept { return parts_.size(); }
  [[nodiscard]] static constexpr const char* consumer_role() noexcept {
    return "partition of the PartitionDispatcher";
  }
  void notify() noexcept {
    for (auto& p : parts_) p->notify();
  }

  [[nodiscard]] PartitionStats stats() const {
    PartitionStats s;
    s.partitions.reserve(parts_.size());
    for (const auto& p : parts_) s.partitions.push_back(p->stats());
    s.discarded = discarded_.load(std::memory_order_relaxed);  // a statistic
    return s;
  }

  // A producer handle: one Dispatcher::Producer per partition, made on first use.
  [[nodiscard]] Producer producer() { return Producer(*this); }

  class Producer {
   public:
    Producer(Producer&&) noexcept = default;
    Producer& operator=(Producer&&) = delete;
    Producer(const Producer&) = delete;
    Producer& operator=(const Producer&) = delete;
    ~Producer() = default;

    PushResult push(T event) {
      const PartitionRoute r = d_->route_of(event);
      if (r.discarded()) [[unlikely]]
        return d_->discard(std::move(event));
      return handle(r.partition()).push(std::move(event));
    }
    [[nodiscard]] PushResult try_push(T& event) {
      const PartitionRoute r = d_->route_of(event);
      if (r.discarded()) [[unlikely]]
        return d_->count_discarded();
      return handle(r.partition()).try_push(event);
    }

   private:
    friend class PartitionDispatcher;
    explicit Producer(PartitionDispatcher& d) : d_(&d), handles_(d.parts_.size()) {}
    typename Dispatcher<T>::Producer& handle(std::size_t i) {
      if (!handles_[i]) handles_[i].emplace(d_->parts_[i]->producer());
      return *handles_[i];
    }
    PartitionDispatcher* d_;
    std::vector<std::optional<typename Dispatcher<T>::Producer>> handles_;
  };

 private:
  void make_partitions(std::size_t n, const DispatcherOptions& options,
                       const DropHandler& on_drop) {
    parts_.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      parts_.push_back(std::make_unique<Dispatcher<T>>(options, on_drop));
    }
  }
  PushResult count_discarded() noexcept {
    discarded_.fetch_add(1, std::memory_order_relaxed);  // a statistic
    return PushResult::Discarded;
  }
  PushResult discard(T&& event) noexcept {
    if (on_drop_) on_drop_(std::move(event), DropReason::Discarded);  // a throw terminates
    return count_discarded();
  }

  Hash hash_;     // set, or route_ is
  Router route_;  // read-only after construction, as the rest
  const DropHandler on_drop_;
  std::vector<std::string> names_;  // empty: unnamed partitions
  std::vector<std::unique_ptr<Dispatcher<T>>> parts_;
  std::atomic<std::uint64_t> discarded_{0};
};

}  // namespace pushstage
