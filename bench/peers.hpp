// bench/peers.hpp: pushstage and the queues people would otherwise use, behind one interface, so
// the microbenchmarks and pushstage-bench drive every implementation the same way.
//
// Each Impl<T> has:
//   Impl::Producer producer();  Impl::Consumer consumer();     per-thread handles (tokens)
//   void push(Producer&, T);                                   never fails (all are unbounded)
//   bool pop(Consumer&, T& out);                               waits; false once closed
//   bool try_pop(Consumer&, T& out);                           never waits
//   void close(std::size_t consumers);                         after the last push
//   static constexpr const char* kName;
// close() of the moodycamel, TBB and spinning peers pushes one stop marker per consumer. Markers
// do not queue behind every event (moodycamel has no order across producers), so callers drain
// first (they know how many events they pushed) and close afterwards. pushstage's close() is
// exact at any time, but the harness treats every implementation the same way.
#pragma once

#include <concurrentqueue/blockingconcurrentqueue.h>
#include <concurrentqueue/concurrentqueue.h>
#include <oneapi/tbb/concurrent_queue.h>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <utility>

#include "pushstage/detail/cache_line.hpp"
#include "pushstage/dispatcher.hpp"

namespace pushstage::bench {

template <class T>
class PushstageQueue {
 public:
  static constexpr const char* kName = "pushstage";
  using Producer = typename Dispatcher<T>::Producer;
  using Consumer = typename Dispatcher<T>::Consumer;
  explicit PushstageQueue(DispatcherOptions options = {}) : d_(options) {}
  Producer producer() { return d_.producer(); }
  Consumer consumer() { return d_.consumer(); }
  static void push(Producer& p, T v) { (void)p.push(std::move(v)); }
  static bool pop(Consumer& c, T& out) { return take(c.pop(), out); }
  static bool try_pop(Consumer& c, T& out) { return take(c.try_pop(), out); }
  void close(std::size_t /*consumers*/) { d_.close(); }
  Dispatcher<T>& dispatcher() { return d_; }

 private:
  static bool take(std::optional<T>&& e, T& out) {
    if (!e) return false;
    out = std::move(*e);
    return true;
  }
  Dispatcher<T> d_;
};

// std::mutex + std::condition_variable + std::deque: what most code starts with.
template <class T>
class MutexQueue {
 public:
  static constexpr const char* kName = "mutex+condvar";
  struct Producer {};
  struct Consumer {};
  Producer producer() { return {}; }
  Consumer consumer() { return {}; }
  void push(Producer& /*p*/, T v) {
    {
      const std::lock_guard lock(m_);
      q_.push_back(std::move(v));
    }
    cv_.notify_one();
  }
  bool pop(Consumer& /*c*/, T& out) {
    std::unique_lock lock(m_);
    cv_.wait(lock, [&] { return !q_.empty() || closed_; });
    if (q_.empty()) return false;
    out = std::move(q_.front());
    q_.pop_front();
    return true;
  }
  bool try_pop(Consumer& /*c*/, T& out) {
    const std::lock_guard lock(m_);
    if (q_.empty()) return false;
    out = std::move(q_.front());
    q_.pop_front();
    return true;
  }
  void close(std::size_t /*consumers*/) {
    {
      const std::lock_guard lock(m_);
      closed_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<T> q_;
  bool closed_ = false;
};

// moodycamel::BlockingConcurrentQueue with tokens: a semaphore counts every event.
template <class T>
class BlockingQueue {
 public:
  static constexpr const char* kName = "moodycamel-blocking";
  struct Producer {
    explicit Producer(moodycamel::BlockingConcurrentQueue<std::optional<T>>& q) : token(q) {}
    moodycamel::ProducerToken token;
  };
  struct Consumer {
    explicit Consumer(moodycamel::BlockingConcurrentQueue<std::optional<T>>& q) : token(q) {}
    moodycamel::ConsumerToken token;
  };
  Producer producer() { return Producer(q_); }
  Consumer consumer() { return Consumer(q_); }
  void push(Producer& p, T v) { q_.enqueue(p.token, std::optional<T>(std::move(v))); }
  bool pop(Consumer& c, T& out) {
    std::optional<T> e;
    q_.wait_dequeue(c.token, e);
    if (!e) return false;
    out = std::move(*e);
    return true;
  }
  bool try_pop(Consumer& c, T& out) {
    std::optional<T> e;
    if (!q_.try_dequeue(c.token, e) || !e) return false;
    out = std::move(*e);
    return true;
  }
  void close(std::size_t consumers) {
    for (std::size_t i = 0; i < consumers; ++i) q_.enqueue(std::nullopt);
  }

 private:
  moodycamel::BlockingConcurrentQueue<std::optional<T>> q_;
};

// BlockingConcurrentQueue whose consumers dequeue without a ConsumerToken: moodycamel then takes
// from the fullest of the first few non-empty producer sub-queues, so a light producer can starve
// behind a heavy one (moodycamel issues 103, 344, 424). For the fairness scenario of
// pushstage-bench; producers keep their tokens.
template <class T>
class BlockingQueueNoToken {
 public:
  static constexpr const char* kName = "moodycamel-blocking-notoken";
  struct Producer {
    explicit Producer(moodycamel::BlockingConcurrentQueue<std::optional<T>>& q) : token(q) {}
    moodycamel::ProducerToken token;
  };
  struct Consumer {};
  Producer producer() { return Producer(q_); }
  Consumer consumer() { return {}; }
  void push(Producer& p, T v) { q_.enqueue(p.token, std::optional<T>(std::move(v))); }
  bool pop(Consumer& /*c*/, T& out) {
    std::optional<T> e;
    q_.wait_dequeue(e);
    if (!e) return false;
    out = std::move(*e);
    return true;
  }
  bool try_pop(Consumer& /*c*/, T& out) {
    std::optional<T> e;
    if (!q_.try_dequeue(e) || !e) return false;
    out = std::move(*e);
    return true;
  }
  void close(std::size_t consumers) {
    for (std::size_t i = 0; i < consumers; ++i) q_.enqueue(std::nullopt);
  }

 private:
  moodycamel::BlockingConcurrentQueue<std::optional<T>> q_;
};

// oneTBB concurrent_bounded_queue (unbounded capacity): blocking pop on TBB's own waiters.
template <class T>
class TbbQueue {
 public:
  static constexpr const char* kName = "tbb-bounded";
  struct Producer {};
  struct Consumer {};
  Producer producer() { return {}; }
  Consumer consumer() { return {}; }
  void push(Producer& /*p*/, T v) { q_.push(std::optional<T>(std::move(v))); }
  bool pop(Consumer& /*c*/, T& out) {
    std::optional<T> e;
    q_.pop(e);
    if (!e) return false;
    out = std::move(*e);
    return true;
  }
  bool try_pop(Consumer& /*c*/, T& out) {
    std::optional<T> e;
    if (!q_.try_pop(e) || !e) return false;
    out = std::move(*e);
    return true;
  }
  void close(std::size_t consumers) {
    for (std::size_t i = 0; i < consumers; ++i) q_.push(std::nullopt);
  }

 private:
  tbb::concurrent_bounded_queue<std::optional<T>> q_;
};

// Raw moodycamel::ConcurrentQueue with tokens and consumers that spin (pause) until an event
// arrives: the hot-handoff floor of this design, at the price of a core per idle consumer.
template <class T>
class SpinningQueue {
 public:
  static constexpr const char* kName = "moodycamel-spin";
  struct Producer {
    explicit Producer(moodycamel::ConcurrentQueue<std::optional<T>>& q) : token(q) {}
    moodycamel::ProducerToken token;
  };
  struct Consumer {
    explicit Consumer(moodycamel::ConcurrentQueue<std::optional<T>>& q) : token(q) {}
    moodycamel::ConsumerToken token;
  };
  Producer producer() { return Producer(q_); }
  Consumer consumer() { return Consumer(q_); }
  void push(Producer& p, T v) { q_.enqueue(p.token, std::optional<T>(std::move(v))); }
  bool pop(Consumer& c, T& out) {
    std::optional<T> e;
    while (!q_.try_dequeue(c.token, e)) detail::cpu_relax();
    if (!e) return false;
    out = std::move(*e);
    return true;
  }
  bool try_pop(Consumer& c, T& out) {
    std::optional<T> e;
    if (!q_.try_dequeue(c.token, e) || !e) return false;
    out = std::move(*e);
    return true;
  }
  void close(std::size_t consumers) {
    for (std::size_t i = 0; i < consumers; ++i) q_.enqueue(std::nullopt);
  }

 private:
  moodycamel::ConcurrentQueue<std::optional<T>> q_;
};

}  // namespace pushstage::bench
