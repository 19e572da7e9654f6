// bench/bounded_peers.hpp: a bounded pushstage dispatcher and bounded yardsticks behind one
// interface, each under the three overflow policies, for the microbenchmarks.
//
// Each Impl<T> has:
//   explicit Impl(std::size_t capacity, Overflow overflow);
//   Impl::Producer producer();  Impl::Consumer consumer();
//   PushResult push(Producer&, T);   Pushed, Rejected or DroppedOldest, as the policy says:
//                                    Block waits for room, Reject refuses, DropOldest drops one
//                                    buffered event to make room
//   bool pop(Consumer&, T& out);     waits; false once closed
//   void close(std::size_t consumers);   after the last push
//   static constexpr const char* kName;
// The yardsticks are what people build by hand: a deque under a mutex with two condition
// variables, oneTBB's concurrent_bounded_queue (its own capacity), and moodycamel's
// BlockingConcurrentQueue with a LightweightSemaphore counting free room (moodycamel has no bound
// of its own). close() pushes one stop marker per consumer, except for the mutex queue.
#pragma once

#include <concurrentqueue/blockingconcurrentqueue.h>
#include <concurrentqueue/lightweightsemaphore.h>
#include <oneapi/tbb/concurrent_queue.h>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <utility>

#include "pushstage/dispatcher.hpp"

namespace pushstage::bench {

template <class T>
class BoundedPushstage {
 public:
  static constexpr const char* kName = "pushstage";
  using Producer = typename Dispatcher<T>::Producer;
  using Consumer = typename Dispatcher<T>::Consumer;
  BoundedPushstage(std::size_t capacity, Overflow overflow) : d_(options(capacity, overflow)) {}
  Producer producer() { return d_.producer(); }
  Consumer consumer() { return d_.consumer(); }
  static PushResult push(Producer& p, T v) { return p.push(std::move(v)); }
  static bool pop(Consumer& c, T& out) {
    std::optional<T> e = c.pop();
    if (!e) return false;
    out = std::move(*e);
    return true;
  }
  void close(std::size_t /*consumers*/) { d_.close(); }

 private:
  static DispatcherOptions options(std::size_t capacity, Overflow overflow) {
    DispatcherOptions o;
    o.capacity = capacity;
    o.overflow = overflow;
    return o;
  }
  Dispatcher<T> d_;
};

// std::deque under a std::mutex, with one condition variable for events and one for room.
template <class T>
class BoundedMutexQueue {
 public:
  static constexpr const char* kName = "mutex+condvar";
  struct Producer {};
  struct Consumer {};
  BoundedMutexQueue(std::size_t capacity, Overflow overflow)
      : capacity_(capacity), overflow_(overflow) {}
  Producer producer() { return {}; }
  Consumer consumer() { return {}; }
  PushResult push(Producer& /*p*/, T v) {
    PushResult result = PushResult::Pushed;
    {
      std::unique_lock lock(m_);
      if (q_.size() >= capacity_) {
        switch (overflow_) {
          case Overflow::Block:
            room_.wait(lock, [&] { return q_.size() < capacity_; });
            break;
          case Overflow::Reject:
            return PushResult::Rejected;
          case Overflow::DropOldest:
            q_.pop_front();
            result = PushResult::DroppedOldest;
            break;
        }
      }
      q_.push_back(std::move(v));
    }
    events_.notify_one();
    return result;
  }
  bool pop(Consumer& /*c*/, T& out) {
    {
      std::unique_lock lock(m_);
      events_.wait(lock, [&] { return !q_.empty() || closed_; });
      if (q_.empty()) return false;
      out = std::move(q_.front());
      q_.pop_front();
    }
    if (overflow_ == Overflow::Block) room_.notify_one();
    return true;
  }
  void close(std::size_t /*consumers*/) {
    {
      const std::lock_guard lock(m_);
      closed_ = true;
    }
    events_.notify_all();
  }

 private:
  std::mutex m_;
  std::condition_variable events_;
  std::condition_variable room_;
  std::deque<T> q_;
  std::size_t capacity_;
  Overflow overflow_;
  bool closed_ = false;
};

// oneTBB concurrent_bounded_queue with its capacity set: push() blocks, try_push() refuses.
template <class T>
class BoundedTbbQueue {
 public:
  static constexpr const char* kName = "tbb-bounded";
  struct Producer {};
  struct Consumer {};
  BoundedTbbQueue(std::size_t capacity, Overflow overflow) : overflow_(overflow) {
    q_.set_capacity(static_cast<std::ptrdiff_t>(capacity));
  }
  Producer producer() { return {}; }
  Consumer consumer() { return {}; }
  PushResult push(Producer& /*p*/, T v) {
    std::optional<T> e(std::move(v));
    switch (overflow_) {
      case Overflow::Block:
        q_.push(std::move(e));
        return PushResult::Pushed;
      case Overflow::Reject:
        return q_.try_push(std::move(e)) ? PushResult::Pushed : PushResult::Rejected;
      case Overflow::DropOldest:
        break;
    }
    PushResult result = PushResult::Pushed;
    while (!q_.try_push(e)) {
      std::optional<T> victim;
      if (q_.try_pop(victim)) result = PushResult::DroppedOldest;
    }
    return result;
  }
  bool pop(Consumer& /*c*/, T& out) {
    std::optional<T> e;
    q_.pop(e);
    if (!e) return false;
    out = std::move(*e);
    return true;
  }
  void close(std::size_t consumers) {
    for (std::size_t i = 0; i < consumers; ++i) q_.push(std::nullopt);  // waits for room
  }

 private:
  tbb::concurrent_bounded_queue<std::optional<T>> q_;
  Overflow overflow_;
};

// moodycamel::BlockingConcurrentQueue with tokens, bounded by a LightweightSemaphore of free room:
// a producer takes a unit of room before it enqueues, a consumer gives one back after it dequeues.
template <class T>
class BoundedBlockingQueue {
  using Queue = moodycamel::BlockingConcurrentQueue<std::optional<T>>;

 public:
  static constexpr const char* kName = "moodycamel-blocking";
  struct Producer {
    explicit Producer(Queue& q) : token(q) {}
    moodycamel::ProducerToken token;
  };
  struct Consumer {
    explicit Consumer(Queue& q) : token(q) {}
    moodycamel::ConsumerToken token;
  };
  BoundedBlockingQueue(std::size_t capacity, Overflow overflow)
      : q_(capacity),
        room_(static_cast<moodycamel::LightweightSemaphore::ssize_t>(capacity)),
        overflow_(overflow) {}
  Producer producer() { return Producer(q_); }
  Consumer consumer() { return Consumer(q_); }
  PushResult push(Producer& p, T v) {
    PushResult result = PushResult::Pushed;
    switch (overflow_) {
      case Overflow::Block:
        room_.wait();
        break;
      case Overflow::Reject:
        if (!room_.tryWait()) return PushResult::Rejected;
        break;
      case Overflow::DropOldest:
        while (!room_.tryWait()) {
          std::optional<T> victim;
          if (q_.try_dequeue(victim)) {  // its unit of room is ours now
            result = PushResult::DroppedOldest;
            break;
          }
        }
        break;
    }
    q_.enqueue(p.token, std::optional<T>(std::move(v)));
    return result;
  }
  bool pop(Consumer& c, T& out) {
    std::optional<T> e;
    q_.wait_dequeue(c.token, e);
    if (!e) return false;
    room_.signal();
    out = std::move(*e);
    return true;
  }
  void close(std::size_t consumers) {
    for (std::size_t i = 0; i < consumers; ++i) q_.enqueue(std::nullopt);
  }

 private:
  Queue q_;
  moodycamel::LightweightSemaphore room_;
  Overflow overflow_;
};

}  // namespace pushstage::bench
