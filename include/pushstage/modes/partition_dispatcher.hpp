// pushstage/modes/partition_dispatcher.hpp: GenStage's PartitionDispatcher: a hash of each event's
// key picks one of N partitions; each partition is a Dispatcher of its own, drained by exactly one
// consumer (a ConsumerPool built over the PartitionDispatcher has one consumer per partition).
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
// Observed:  options.name names it in the Topology (stats summed over partitions);
//            options.observer receives every partition's drops and refusals, and its close.
// Not guaranteed: order across producers; balance across partitions.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "pushstage/core/upstreams.hpp"
#include "pushstage/dispatcher.hpp"
#include "pushstage/dispatcher_options.hpp"
#include "pushstage/observe/listing.hpp"

namespace pushstage {

// Per-partition counters of a PartitionDispatcher (each as Dispatcher::stats()).
struct PartitionStats {
  std::vector<DispatcherStats> partitions;
  // The sum over partitions (waiting() included).
  [[nodiscard]] DispatcherStats total() const noexcept;
  // The partition with the most events pushed (the first of equals); 0 when there are none.
  [[nodiscard]] std::size_t hottest() const noexcept;
  // Most pushed into one partition over the mean per partition: 1 is perfectly even, N means all
  // into one of N partitions; 1 when nothing was pushed.
  [[nodiscard]] double skew() const noexcept;
};

namespace detail {
// Throws std::invalid_argument unless partitions is in [1, 65536] and hash is not empty.
void check_partition_options(std::size_t partitions, bool has_hash);
}  // namespace detail

template <class T>
class PartitionDispatcher : public detail::FanIn<PartitionDispatcher<T>> {
 public:
  using value_type = T;
  // The hash of an event's key: the partition is hash(event) % partitions().
  using Hash = std::function<std::size_t(const T&)>;
  using DropHandler = typename Dispatcher<T>::DropHandler;
  class Producer;

  // `partitions` Dispatchers, each with `options` (capacity is per partition) and on_drop.
  // Throws std::invalid_argument for partitions outside [1, 65536], an empty hash, or options
  // out of range.
  PartitionDispatcher(std::size_t partitions, Hash hash, DispatcherOptions options = {},
                      DropHandler on_drop = {})
      : listing_(listing_spec(partitions, static_cast<bool>(hash), options)),
        hash_(std::move(hash)) {
    parts_.reserve(partitions);
    for (std::size_t i = 0; i < partitions; ++i) {
      parts_.push_back(
          std::make_unique<Dispatcher<T>>(detail::PartOf{&listing_}, options, on_drop));
      listing_.add_alias(parts_.back().get());
    }
    listing_.join();
  }
  ~PartitionDispatcher() { listing_.leave(); }
  PartitionDispatcher(const PartitionDispatcher&) = delete;
  PartitionDispatcher& operator=(const PartitionDispatcher&) = delete;

  // Dispatcher::push() into the event's partition.
  PushResult push(T event) { return parts_[partition_of(event)]->push(std::move(event)); }
  // Dispatcher::try_push() into the event's partition.
  [[nodiscard]] PushResult try_push(T& event) {
    return parts_[partition_of(event)]->try_push(event);
  }

  // Closes every partition, in order. Idempotent.
  void close() noexcept {
    const bool first = !closed();  // telemetry only: two racing first calls both report
    for (auto& p : parts_) p->close();
    if (first) listing_.report(Telemetry::Closed);
  }
  // Its name in the Topology (options.name, or the default).
  [[nodiscard]] const std::string& name() const noexcept { return listing_.name(); }
  [[nodiscard]] bool closed() const noexcept { return parts_.front()->closed(); }
  // Every partition is drained.
  [[nodiscard]] bool drained() const noexcept {
    for (const auto& p : parts_) {
      if (!p->drained()) return false;
    }
    return true;
  }

  [[nodiscard]] std::size_t partitions() const noexcept { return parts_.size(); }
  [[nodiscard]] std::size_t partition_of(const T& event) const {
    return hash_(event) % parts_.size();
  }
  // Partition i (i < partitions()), e.g. to inspect it.
  [[nodiscard]] Dispatcher<T>& partition(std::size_t i) noexcept { return *parts_[i]; }

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

    PushResult push(T event) { return handle(d_->partition_of(event)).push(std::move(event)); }
    [[nodiscard]] PushResult try_push(T& event) {
      return handle(d_->partition_of(event)).try_push(event);
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
  // Validates (before anything is built) and lists the dispatcher.
  detail::ListingSpec listing_spec(std::size_t partitions, bool has_hash,
                                   const DispatcherOptions& options) {
    detail::check_partition_options(partitions, has_hash);
    detail::ListingSpec spec =
        detail::dispatcher_spec(ComponentKind::PartitionDispatcher, options, this);
    spec.options.emplace_back("partitions", std::to_string(partitions));
    spec.fill = [this, capacity = options.capacity * partitions](ComponentSnapshot& s) {
      s.buffer = stats().total();
      s.capacity = capacity;
    };
    return spec;
  }

  // First: the partitions report their drops as this dispatcher until they are destroyed.
  detail::Listing listing_;
  Hash hash_;
  std::vector<std::unique_ptr<Dispatcher<T>>> parts_;
};

}  // namespace pushstage
