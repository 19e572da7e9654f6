// pushstage/observe/listing.hpp (internal): how a component joins the Topology and holds its
// Observer. Each component owns one Listing, built in its constructor and destroyed with it.
//
// Threading: the constructor, join() and leave() take the registry's lock (so does
//            Topology::capture(), which calls the components' fill functions under it). The
//            constructor takes the name; capture() reads the component only from join() (the end
//            of its constructor, once all that fill reads is built) until leave(). observer() and
//            emit() are safe from any thread.
// Order:     a component calls leave() before anything that fill reads is destroyed (at the start
//            of its destructor, or by declaring its Listing last, so that it is destroyed first);
//            the Listing's destructor calls the observer's detached() and must come after the
//            component's last event (its threads joined, its buffered events dropped).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "pushstage/observe/observer.hpp"
#include "pushstage/observe/topology.hpp"

namespace pushstage::detail {

class Listing;
struct ListingEntry;  // src/observe/registry.cpp

struct ListingSpec {
  ComponentKind kind = ComponentKind::Dispatcher;
  std::string name;                    // empty: a default name (topology.hpp)
  const char* name_field = "name";     // the option that set it, for errors
  std::shared_ptr<Observer> observer;  // may be null
  const void* identity = nullptr;      // the component's address: what sources and sinks name
  const void* source = nullptr;        // what it takes events from (pools), else null
  const void* sink = nullptr;          // what it emits into (stages), else null
  std::vector<std::pair<std::string, std::string>> options;
  std::function<void(ComponentSnapshot&)> fill;  // its stats; runs under the registry's lock
};

// A part of a listed component (a mode's partition or subscriber, a Batcher's buffers): not
// listed itself; its events are reported as the parent's, when `observed`.
struct PartOf {
  const Listing* parent = nullptr;
  bool observed = true;
};

class Listing {
 public:
  // Lists the component. Throws std::invalid_argument when the name is longer than 128 bytes
  // (naming spec.name_field), std::bad_alloc. Calls the observer's attached().
  explicit Listing(ListingSpec spec);
  explicit Listing(PartOf part) noexcept;
  Listing(const Listing&) = delete;
  Listing& operator=(const Listing&) = delete;
  // leave(), then the observer's detached().
  ~Listing();

  // The component is built: capture() may read it from now on. Call it last in the constructor.
  void join() noexcept;
  // Leaves the Topology: when it returns, no capture() reads the component any more.
  // Idempotent.
  void leave() noexcept;
  // Another address under which sources and sinks may name this component (a part's).
  void add_alias(const void* identity);

  // A part (PartOf): it reports drops as its parent's; the parent reports its own close.
  [[nodiscard]] bool is_part() const noexcept { return !entry_; }
  [[nodiscard]] const ComponentInfo& info() const noexcept { return *info_; }
  [[nodiscard]] const std::string& name() const noexcept { return info_->name; }
  // Null when the component has no observer (the one branch of every hook).
  [[nodiscard]] Observer* observer() const noexcept { return observer_; }
  // observer() must not be null.
  void emit(const TelemetryEvent& event) const noexcept { observer_->on_event(event); }
  // Builds an event about this component, for emit().
  [[nodiscard]] TelemetryEvent event(Telemetry what) const noexcept { return {what, *info_}; }
  // With an observer, reports `what`: Dropped and Refused as one event for `why`; others bare.
  void report(Telemetry what, DropReason why = DropReason::Oldest) const noexcept {
    if (observer_ == nullptr) return;
    TelemetryEvent e = event(what);
    if (what == Telemetry::Dropped || what == Telemetry::Refused) {
      e.count = 1;
      e.reason = why;
    }
    emit(e);
  }

 private:
  std::unique_ptr<ListingEntry> entry_;  // null for a part
  const ComponentInfo* info_;
  Observer* observer_;
};

// The spec of a component set up by DispatcherOptions (a dispatcher, a mode): its kind, name,
// observer and options; the caller adds its fill and any further options.
ListingSpec dispatcher_spec(ComponentKind kind, const DispatcherOptions& options,
                            const void* identity);
// Options as a Topology lists them (field name, value), for each kind of options.
std::vector<std::pair<std::string, std::string>> describe(const DispatcherOptions& options);
std::vector<std::pair<std::string, std::string>> describe(const PoolOptions& options);
// A pool's consumers summed (consumers and paused, manual, demand are the caller's to set).
PoolSnapshot sum_consumers(const std::vector<ConsumerStats>& consumers);

}  // namespace pushstage::detail
