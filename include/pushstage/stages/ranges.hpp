// pushstage/stages/ranges.hpp: C++20 ranges in and out. from_range() feeds a Pipeline from any
// input range, with backpressure (GenStage.from_enumerable); stream() reads a Source as an input
// range, waiting for each event, until the source is closed and drained (GenStage.stream).
//
// Threading: a RangeFeed pushes from a thread of its own (the range is read there only); a
//            SourceRange and its iterators belong to one thread, like the consumer handle inside.
// Progress:  the feed's pushes wait while the pipeline's input is full (Overflow::Block); an
//            iterator's ++ waits for the next event.
// Ordering:  the feed pushes in the range's order, through one producer handle: processors see
//            the range's order within a partition. stream() yields what its handle takes, in the
//            order the source gives (one producer: push order).
// Close:     the feed closes the pipeline once the range is exhausted (close_at_end, as
//            from_enumerable does), and stops early when the pipeline stops or closes. stream()
//            ends once the source is closed and everything pushed before has been taken.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "pushstage/source.hpp"
#include "pushstage/stages/message.hpp"
#include "pushstage/stages/pipeline.hpp"
#include "pushstage/stages/pipeline_options.hpp"

namespace pushstage {

// Pushes every element of a range into a pipeline, as a Message<T> without an acknowledger.
// kOwned: the feed holds the range (given as an rvalue), else it refers to the caller's. kMove
// (owned, and not a view, whose elements may belong to someone else): it moves the elements out;
// otherwise it copies them. No std::views here: Clang 14 cannot compile libstdc++ 12's ref_view.
template <class T, class Range, bool kOwned, bool kMove>
class RangeFeed final : public PipelineFeed<T> {
  using Held = std::conditional_t<kOwned, Range, Range*>;

 public:
  RangeFeed(Held range, bool close_at_end)
      : range_(std::move(range)), close_at_end_(close_at_end) {}
  ~RangeFeed() override { stop(); }
  RangeFeed(const RangeFeed&) = delete;
  RangeFeed& operator=(const RangeFeed&) = delete;

  void start(Pipeline<T>& into) override {
    thread_ = std::thread([this, &into] { run(into); });
  }
  // Stops after the push in progress (which may wait for room) and joins the thread.
  void stop() noexcept override {
    stop_.store(true, std::memory_order_relaxed);  // a flag; the join orders the rest
    if (thread_.joinable()) thread_.join();
  }
  // What reading the range or making a T threw (the feed then closed the pipeline).
  [[nodiscard]] std::exception_ptr error() const override {
    const std::lock_guard lock(mutex_);
    return error_;
  }

 private:
  Range& range() noexcept {
    if constexpr (kOwned) {
      return range_;
    } else {
      return *range_;
    }
  }
  void run(Pipeline<T>& into) noexcept {
    try {
      auto producer = into.producer();
      for (auto&& element : range()) {
        if (stop_.load(std::memory_order_relaxed)) return;  // a flag, no data behind it
        PushResult r = PushResult::Pushed;
        if constexpr (kMove) {
          r = producer.push(Message<T>(T(std::move(element))));
        } else {
          r = producer.push(Message<T>(T(std::forward<decltype(element)>(element))));
        }
        if (r == PushResult::Closed) return;
      }
    } catch (...) {
      const std::lock_guard lock(mutex_);
      error_ = std::current_exception();
    }
    if (close_at_end_) into.close();
  }

  Held range_;
  const bool close_at_end_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::exception_ptr error_;  // guarded by mutex_
  std::thread thread_;
};

// A feed for Pipeline<range_value_t<R>> (Broadway's producer, GenStage.from_enumerable): pushes
// every element in order, waiting while the input is full; then closes the pipeline when
// close_at_end. An lvalue range must outlive the pipeline's stop(); an rvalue range is owned (a
// container's elements are moved out; a view's are copied).
template <std::ranges::input_range R>
[[nodiscard]] auto from_range(R&& range, bool close_at_end = true) {
  using T = std::ranges::range_value_t<R>;
  using Range = std::remove_reference_t<R>;
  constexpr bool kOwned = !std::is_lvalue_reference_v<R>;
  constexpr bool kMove = kOwned && !std::ranges::view<std::remove_cv_t<Range>>;
  if constexpr (kOwned) {
    return std::make_unique<RangeFeed<T, Range, true, kMove>>(std::move(range), close_at_end);
  } else {
    return std::make_unique<RangeFeed<T, Range, false, false>>(&range, close_at_end);
  }
}

// The events of a Source as an input range (GenStage.stream): each step takes one event through
// a consumer handle of the source, waiting for it; the range ends once the source is closed and
// drained. Movable (a view); one pass.
template <Source S>
class SourceRange : public std::ranges::view_base {
  using Handle = decltype(std::declval<S&>().handle_for(0));

 public:
  using value_type = typename S::value_type;

 private:
  struct State {
    explicit State(Handle&& h) : handle(std::move(h)) {}
    void next() {
      current.reset();
      for (;;) {
        scratch.clear();
        const TakeResult r = handle.take(scratch, 1, std::chrono::steady_clock::time_point::max());
        if (r == TakeResult::Got) {
          current.emplace(std::move(scratch.front()));
          return;
        }
        if (r == TakeResult::Drained) return;  // Interrupted or TimedOut: take again
      }
    }
    Handle handle;
    std::vector<value_type> scratch;
    std::optional<value_type> current;
  };

 public:
  // Reads through consumer `consumer` of the source (a partition or subscriber of a source with
  // fixed consumers; any index of a shared one).
  explicit SourceRange(S& source, std::size_t consumer = 0)
      : state_(std::make_unique<State>(source.handle_for(consumer))) {}

  class iterator {
   public:
    using value_type = SourceRange::value_type;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    value_type& operator*() const { return *state_->current; }
    iterator& operator++() {
      state_->next();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) {
      return !it.state_->current.has_value();
    }

   private:
    friend class SourceRange;
    explicit iterator(State* state) : state_(state) {}
    State* state_ = nullptr;
  };

  // Takes the first event (waits for it). Call once.
  iterator begin() {
    state_->next();
    return iterator(state_.get());
  }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  std::unique_ptr<State> state_;
};

// stream(source): its events as an input range (see SourceRange).
template <Source S>
[[nodiscard]] SourceRange<S> stream(S& source, std::size_t consumer = 0) {
  return SourceRange<S>(source, consumer);
}

}  // namespace pushstage
