// pushstage/pool/source_ref.hpp: a pool's view of its Source (pushstage/source.hpp), with the type
// of the source erased, so that ConsumerPool<T> and Stage<T, Sink> take any Source of T: the
// dispatchers of this library and dispatch modes users write. One virtual call per take; the
// optional members of the contract get their fallbacks here.
//
// Threading: as the source's and its handles' own members (source.hpp).
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "pushstage/source.hpp"

namespace pushstage::detail {

// A callable reference for wait_until() across the erased boundary (no allocation).
class PredicateRef {
 public:
  template <class F>
  explicit PredicateRef(F& f) noexcept
      : object_(&f), call_([](void* o) { return static_cast<bool>((*static_cast<F*>(o))()); }) {}
  bool operator()() const { return call_(object_); }

 private:
  void* object_;
  bool (*call_)(void*);
};

// One consumer's handle, as the pool uses it. Waits have no deadline: the pool interrupts them.
template <class T>
class PoolHandle {
 public:
  using Clock = std::chrono::steady_clock;
  virtual ~PoolHandle() = default;
  virtual TakeResult take_one(std::optional<T>& out) = 0;
  // One event if one is there now; never waits.
  virtual bool try_take_one(std::optional<T>& out) = 0;
  virtual TakeResult take(std::vector<T>& out, std::size_t max) = 0;
  virtual std::size_t try_take(std::vector<T>& out, std::size_t max) = 0;
  // More events for a consumer that still holds some, without waiting: none from a handle that
  // hands its events back as a whole (one with release()).
  virtual std::size_t try_top_up(std::vector<T>& out, std::size_t max) = 0;
  virtual void release() noexcept = 0;
  [[nodiscard]] virtual Interrupter interrupter() const = 0;
  // DemandMode::Manual only (SourceRef::manual_ready() says whether the handle has them).
  virtual TakeResult wait_ready() = 0;
  [[nodiscard]] virtual bool drained() const = 0;
  virtual void wait_until(PredicateRef pred) = 0;
};

template <class H, class T>
concept ManualReadyHandle = requires(H& h, const H& ch, std::chrono::steady_clock::time_point d) {
  { h.wait_ready(d) } -> std::same_as<TakeResult>;
  { ch.drained() } -> std::convertible_to<bool>;
  h.wait_until([] { return true; });
};

template <class T, class H>
class PoolHandleOf final : public PoolHandle<T> {
  using Clock = typename PoolHandle<T>::Clock;
  static constexpr bool kReleases = requires(H & h) { h.release(); };

 public:
  explicit PoolHandleOf(H&& h) : h_(std::move(h)) {}

  TakeResult take_one(std::optional<T>& out) override {
    if constexpr (requires { h_.take(out, Clock::time_point::max()); }) {
      return h_.take(out, Clock::time_point::max());
    } else {
      scratch_.clear();
      const TakeResult r = h_.take(scratch_, 1, Clock::time_point::max());
      if (r == TakeResult::Got) out.emplace(std::move(scratch_.front()));
      return r;
    }
  }
  bool try_take_one(std::optional<T>& out) override {
    if constexpr (requires { h_.try_pop(); }) {
      out = h_.try_pop();
      return out.has_value();
    } else {
      scratch_.clear();
      if (h_.try_take(scratch_, 1) == 0) return false;
      out.emplace(std::move(scratch_.front()));
      return true;
    }
  }
  TakeResult take(std::vector<T>& out, std::size_t max) override {
    return h_.take(out, max, Clock::time_point::max());
  }
  std::size_t try_take(std::vector<T>& out, std::size_t max) override {
    return h_.try_take(out, max);
  }
  std::size_t try_top_up(std::vector<T>& out, std::size_t max) override {
    if constexpr (kReleases) {
      return 0;
    } else {
      return h_.try_take(out, max);
    }
  }
  void release() noexcept override {
    if constexpr (kReleases) h_.release();
  }
  [[nodiscard]] Interrupter interrupter() const override { return h_.interrupter(); }
  TakeResult wait_ready() override {
    if constexpr (ManualReadyHandle<H, T>) {
      return h_.wait_ready(Clock::time_point::max());
    } else {
      return TakeResult::Drained;  // unreachable: the pool refuses Manual for such a source
    }
  }
  [[nodiscard]] bool drained() const override {
    if constexpr (ManualReadyHandle<H, T>) {
      return h_.drained();
    } else {
      return true;
    }
  }
  void wait_until(PredicateRef pred) override {
    if constexpr (ManualReadyHandle<H, T>) h_.wait_until(pred);
  }

 private:
  H h_;
  std::vector<T> scratch_;  // take_one() through a handle that only takes into vectors
};

// A reference to a Source of T, its type erased. Copyable; the source must outlive it.
template <class T>
class SourceRef {
 public:
  template <Source S>
  requires std::same_as<typename S::value_type, T> SourceRef(
      S& source)  // NOLINT(google-explicit-constructor): pools take any Source
      : source_(&source),
        fixed_(static_cast<std::size_t>(source.fixed_consumers())),
        make_(&make<S>),
        notify_(&notify_of<S>),
        manual_ready_(ManualReadyHandle<decltype(source.handle_for(0)), T> &&
                      requires { source.notify(); }) {
    if constexpr (requires { source.consumer_role(); }) role_ = source.consumer_role();
  }

  // The handle consumer `index` takes through; call it on that consumer's thread.
  [[nodiscard]] std::unique_ptr<PoolHandle<T>> handle_for(std::size_t index) const {
    return make_(source_, index);
  }
  // 0: any number of consumers; n: exactly n.
  [[nodiscard]] std::size_t fixed_consumers() const noexcept { return fixed_; }
  // What each fixed consumer owns, for messages.
  [[nodiscard]] const char* consumer_role() const noexcept { return role_; }
  // Whether DemandMode::Manual can work: the handles wait for readiness and the source notifies.
  [[nodiscard]] bool manual_ready() const noexcept { return manual_ready_; }
  void notify() const noexcept { notify_(source_); }
  // The source's address: how the Topology knows what feeds a pool.
  [[nodiscard]] const void* identity() const noexcept { return source_; }

 private:
  template <class S>
  static std::unique_ptr<PoolHandle<T>> make(void* source, std::size_t index) {
    auto h = static_cast<S*>(source)->handle_for(index);
    return std::make_unique<PoolHandleOf<T, decltype(h)>>(std::move(h));
  }
  template <class S>
  static void notify_of(void* source) noexcept {
    if constexpr (requires(S & s) { s.notify(); }) static_cast<S*>(source)->notify();
  }

  void* source_;
  std::size_t fixed_;
  std::unique_ptr<PoolHandle<T>> (*make_)(void*, std::size_t);
  void (*notify_)(void*) noexcept;
  bool manual_ready_;
  const char* role_ = "consumer of the source";
};

}  // namespace pushstage::detail
