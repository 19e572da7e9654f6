// registry.cpp: the process-wide list of live components behind Listing and Topology::capture().
// One mutex guards the list; components join and leave under it, and capture() reads every
// component's stats under it, so a component that has left is never read.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "pushstage/observe/listing.hpp"
#include "pushstage/observe/topology.hpp"

namespace pushstage {

std::string_view to_string(ComponentKind kind) noexcept {
  switch (kind) {
    case ComponentKind::Dispatcher:
      return "dispatcher";
    case ComponentKind::PartitionDispatcher:
      return "partition_dispatcher";
    case ComponentKind::BroadcastDispatcher:
      return "broadcast_dispatcher";
    case ComponentKind::KeyedDispatcher:
      return "keyed_dispatcher";
    case ComponentKind::ConsumerPool:
      return "consumer_pool";
    case ComponentKind::Stage:
      return "stage";
    case ComponentKind::Batcher:
      return "batcher";
  }
  return "component";
}

std::string_view to_string(Telemetry what) noexcept {
  switch (what) {
    case Telemetry::HandlerStart:
      return "handler_start";
    case Telemetry::HandlerStop:
      return "handler_stop";
    case Telemetry::HandlerException:
      return "handler_exception";
    case Telemetry::BatchStart:
      return "batch_start";
    case Telemetry::BatchStop:
      return "batch_stop";
    case Telemetry::Dropped:
      return "dropped";
    case Telemetry::Refused:
      return "refused";
    case Telemetry::Retry:
      return "retry";
    case Telemetry::DeadLetter:
      return "dead_letter";
    case Telemetry::Paused:
      return "paused";
    case Telemetry::Resumed:
      return "resumed";
    case Telemetry::Resized:
      return "resized";
    case Telemetry::Closed:
      return "closed";
    case Telemetry::Drained:
      return "drained";
  }
  return "event";
}

namespace detail {

struct ListingEntry {
  ComponentInfo info;
  std::shared_ptr<Observer> observer;
  std::vector<const void*> identities;
  const void* source = nullptr;
  const void* sink = nullptr;
  std::vector<std::pair<std::string, std::string>> options;
  std::function<void(ComponentSnapshot&)> fill;
  bool listed = false;  // guarded by the registry's mutex
  bool joined = false;  // join() was called: capture() reads it (guarded by the mutex)
};

namespace {

constexpr std::size_t kMaxName = 128;
constexpr std::size_t kKinds = static_cast<std::size_t>(ComponentKind::Batcher) + 1;

struct Registry {
  std::mutex mutex;
  // The listed ones, in construction order: their names are taken; capture() reads the joined.
  std::vector<ListingEntry*> entries;
  std::uint64_t next_id = 1;
  std::array<std::uint64_t, kKinds> unnamed{};  // default names handed out, per kind
};

// Never destroyed: a component with static storage duration may leave after main() returns.
Registry& registry() {
  static Registry* const r = new Registry;  // NOLINT(cppcoreguidelines-owning-memory)
  return *r;
}

bool taken(const Registry& r, const std::string& name) {
  for (const ListingEntry* e : r.entries) {
    if (e->info.name == name) return true;
  }
  return false;
}

// Under r.mutex: the name as asked, or the default, made unique among live components.
std::string unique_name(Registry& r, ComponentKind kind, const std::string& asked) {
  std::string base = asked;
  if (base.empty()) {
    base = std::string(to_string(kind)) + "-" +
           std::to_string(++r.unnamed[static_cast<std::size_t>(kind)]);
  }
  if (!taken(r, base)) return base;
  for (std::uint64_t k = 2;; ++k) {
    std::string candidate = base + "#" + std::to_string(k);
    if (!taken(r, candidate)) return candidate;
  }
}

}  // namespace

Listing::Listing(ListingSpec spec) : entry_(std::make_unique<ListingEntry>()) {
  if (spec.name.size() > kMaxName) {
    throw std::invalid_argument(std::string(spec.name_field) + " must be at most " +
                                std::to_string(kMaxName) + " bytes; got " +
                                std::to_string(spec.name.size()));
  }
  ListingEntry& e = *entry_;
  e.info.kind = spec.kind;
  e.observer = std::move(spec.observer);
  e.identities.push_back(spec.identity);
  e.source = spec.source;
  e.sink = spec.sink;
  e.options = std::move(spec.options);
  e.fill = std::move(spec.fill);
  {
    Registry& r = registry();
    const std::lock_guard lock(r.mutex);
    e.info.id = r.next_id++;
    e.info.name = unique_name(r, spec.kind, spec.name);
    r.entries.push_back(&e);
    e.listed = true;
  }
  info_ = &e.info;
  observer_ = e.observer.get();
  if (observer_ != nullptr) e.info.observer_state = observer_->attached(e.info);
}

Listing::Listing(PartOf part) noexcept
    : info_(&part.parent->info()), observer_(part.observed ? part.parent->observer() : nullptr) {}

Listing::~Listing() {
  if (!entry_) return;
  leave();
  if (observer_ != nullptr) observer_->detached(entry_->info);
}

void Listing::leave() noexcept {
  if (!entry_) return;
  Registry& r = registry();
  const std::lock_guard lock(r.mutex);
  if (!entry_->listed) return;
  std::erase(r.entries, entry_.get());
  entry_->listed = false;
}

void Listing::join() noexcept {
  if (!entry_) return;
  const std::lock_guard lock(registry().mutex);
  entry_->joined = true;
}

void Listing::add_alias(const void* identity) {
  if (!entry_) return;
  const std::lock_guard lock(registry().mutex);
  entry_->identities.push_back(identity);
}

}  // namespace detail

Topology Topology::capture() {
  Topology t;
  detail::Registry& r = detail::registry();
  const std::lock_guard lock(r.mutex);
  t.captured_at = std::chrono::steady_clock::now();
  std::unordered_map<const void*, std::uint64_t> ids;
  std::vector<const detail::ListingEntry*> joined;
  for (const detail::ListingEntry* e : r.entries) {
    if (e->joined) joined.push_back(e);  // the others are still being built
  }
  t.components.reserve(joined.size());
  for (const detail::ListingEntry* e : joined) {
    ComponentSnapshot s;
    s.id = e->info.id;
    s.name = e->info.name;
    s.kind = e->info.kind;
    s.options = e->options;
    if (e->fill) e->fill(s);
    t.components.push_back(std::move(s));
    for (const void* identity : e->identities) ids.emplace(identity, e->info.id);
  }
  for (std::size_t i = 0; i < joined.size(); ++i) {
    const detail::ListingEntry* e = joined[i];
    ComponentSnapshot& s = t.components[i];
    if (e->source != nullptr) {
      if (auto it = ids.find(e->source); it != ids.end()) {
        s.sources.push_back(it->second);
        t.edges.push_back({it->second, s.id});
      }
    }
    if (e->sink != nullptr) {
      if (auto it = ids.find(e->sink); it != ids.end()) {
        s.sinks.push_back(it->second);
        t.edges.push_back({s.id, it->second});
      }
    }
  }
  // A source lists what takes from it as a sink of its own: the graph reads both ways.
  for (const TopologyEdge& edge : t.edges) {
    for (ComponentSnapshot& s : t.components) {
      if (s.id == edge.from && std::find(s.sinks.begin(), s.sinks.end(), edge.to) == s.sinks.end())
        s.sinks.push_back(edge.to);
      if (s.id == edge.to &&
          std::find(s.sources.begin(), s.sources.end(), edge.from) == s.sources.end())
        s.sources.push_back(edge.from);
    }
  }
  return t;
}

const ComponentSnapshot* Topology::find(std::string_view name) const noexcept {
  for (const ComponentSnapshot& s : components) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

}  // namespace pushstage
