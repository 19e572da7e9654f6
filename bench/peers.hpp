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
// The implementations that BM_Bulk runs also have:
//   void push_bulk(Producer&, T* first, std::size_t n);       moves n events in, in order
//   std::size_t pop_bulk(Consumer&, T* out, std::size_t max);  waits for one, then takes what is
//                                                              there, up to max (at most kMaxBulk);
//                                                              0 once closed
// close() of the moodycamel, TBB and spinning peers pushes one stop marker per consumer. Markers
// do not queue behind every event (moodycamel has no order across producers), so callers drain
// first (they know how many events they pushed) and close afterwards. pushstage's close() is
// exact at any time, but the harness treats every implementation the same way.
#pragma once

#include <concurrentqueue/blockingconcurrentqueue.h>
#include <concurrentqueue/concurrentqueue.h>
#include <oneapi/tbb/concurrent_queue.h>

#include <array>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <iterator>
#include <mutex>
#include <optional>
#include <utility>

#include "pushstage/core/cache_line.hpp"
#include "pushstage/dispatcher.hpp"

namespace pushstage::bench {

// Most events one pop_bulk() takes (the peers that dequeue std::optional<T> need a scratch array).
inline constexpr std::size_t kMaxBulk = 64;

namespace detail_peers {
// Moves the events among scratch[0, n) to out. A bulk dequeue may take stop markers meant for
// other consumers; they go back to the queue. Returns the events moved (0: closed).
template <class T, class Requeue>
std::size_t unpack(std::optional<T>* scratch, std::size_t n, T* out, Requeue&& requeue) {
  std::size_t events = 0;
  std::size_t markers = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (scratch[i]) {
      out[events++] = std::move(*scratch[i]);
    } else {
      ++markers;
    }
  }
  // With events to return, every marker goes back (we see ours again on a later call); without,
  // we keep one: it is ours, and we report closed.
  for (std::size_t i = events > 0 ? 0 : 1; i < markers; ++i) requeue();
  return events;
}
}  // namespace detail_peers

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
  static void push_bulk(Producer& p, T* first, std::size_t n) {
    (void)p.push_bulk(first, first + n);
  }
  static std::size_t pop_bulk(Consumer& c, T* out, std::size_t max) {
    if (!take(c.pop(), out[0])) return 0;
    return 1 + (max > 1 ? c.try_pop_bulk(out + 1, max - 1) : 0);
  }
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

// pushstage without handles: Dispatcher::push and Dispatcher::pop, for code that keeps no
// Producer or Consumer (each call finds the handles its thread keeps for the dispatcher:
// core/thread_cache.hpp). dispatcher_tokenless_bench runs it.
template <class T>
class PushstageTokenless {
 public:
  static constexpr const char* kName = "pushstage-tokenless";
  struct Producer {};
  struct Consumer {};
  Producer producer() { return {}; }
  Consumer consumer() { return {}; }
  void push(Producer& /*p*/, T v) { (void)d_.push(std::move(v)); }
  bool pop(Consumer& /*c*/, T& out) { return take(d_.pop(), out); }
  bool try_pop(Consumer& /*c*/, T& out) { return take(d_.try_pop(), out); }
  void close(std::size_t /*consumers*/) { d_.close(); }

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
  void push_bulk(Producer& /*p*/, T* first, std::size_t n) {
    {
      const std::lock_guard lock(m_);
      for (std::size_t i = 0; i < n; ++i) q_.push_back(std::move(first[i]));
    }
    if (n == 1) {
      cv_.notify_one();
    } else {
      cv_.notify_all();  // a waiter takes at most its max; others may be needed for the rest
    }
  }
  std::size_t pop_bulk(Consumer& /*c*/, T* out, std::size_t max) {
    std::unique_lock lock(m_);
    cv_.wait(lock, [&] { return !q_.empty() || closed_; });
    std::size_t n = 0;
    for (; n < max && !q_.empty(); ++n) {
      out[n] = std::move(q_.front());
      q_.pop_front();
    }
    return n;
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
    std::array<std::optional<T>, kMaxBulk> scratch;
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
  void push_bulk(Producer& p, T* first, std::size_t n) {
    q_.enqueue_bulk(p.token, std::make_move_iterator(first), n);
  }
  std::size_t pop_bulk(Consumer& c, T* out, std::size_t max) {
    const std::size_t n =
        q_.wait_dequeue_bulk(c.token, c.scratch.data(), max < kMaxBulk ? max : kMaxBulk);
    return detail_peers::unpack(c.scratch.data(), n, out, [&] { q_.enqueue(std::nullopt); });
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
  // TBB has no bulk operations: one at a time.
  void push_bulk(Producer& /*p*/, T* first, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) q_.push(std::optional<T>(std::move(first[i])));
  }
  std::size_t pop_bulk(Consumer& /*c*/, T* out, std::size_t max) {
    std::optional<T> e;
    q_.pop(e);
    if (!e) return 0;
    out[0] = std::move(*e);
    std::size_t n = 1;
    while (n < max && q_.try_pop(e)) {
      if (!e) {
        q_.push(std::nullopt);  // another consumer's stop marker
        break;
      }
      out[n++] = std::move(*e);
    }
    return n;
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
    std::array<std::optional<T>, kMaxBulk> scratch;
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
  void push_bulk(Producer& p, T* first, std::size_t n) {
    q_.enqueue_bulk(p.token, std::make_move_iterator(first), n);
  }
  std::size_t pop_bulk(Consumer& c, T* out, std::size_t max) {
    for (;;) {
      const std::size_t n =
          q_.try_dequeue_bulk(c.token, c.scratch.data(), max < kMaxBulk ? max : kMaxBulk);
      if (n == 0) {
        detail::cpu_relax();
        continue;
      }
      const std::size_t events =
          detail_peers::unpack(c.scratch.data(), n, out, [&] { q_.enqueue(std::nullopt); });
      return events;
    }
  }
  void close(std::size_t consumers) {
    for (std::size_t i = 0; i < consumers; ++i) q_.enqueue(std::nullopt);
  }

 private:
  moodycamel::ConcurrentQueue<std::optional<T>> q_;
};

}  // namespace pushstage::bench
