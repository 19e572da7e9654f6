// pushstage/consumer_pool.hpp: N consumer threads, each pinned to a CPU, that drain a Dispatcher
// and call a handler for every event.
//
// Threading: the constructor starts the threads; join() and stats() are safe from any thread.
//            The handler runs on the pool's threads, concurrently with itself.
// Demand:    each consumer takes at most max_demand events at a time (default 1) and asks for more
//            only after its handler returned for all of them, so with max_demand 1 a slow event
//            never holds back a second one: irregular work spreads over idle consumers.
// Close:     after source.close(), join() returns once every event pushed before close() has been
//            handled exactly once. Destroying a pool without join() closes its source and joins.
// Failure:   a handler that throws counts as failed; on_error receives the exception and the
//            consumer goes on. on_error must not throw (std::terminate if it does).
// Memory:    what the producer did before pushing e happens-before the handler's call for e.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "pushstage/cpus.hpp"
#include "pushstage/detail/cache_line.hpp"
#include "pushstage/dispatcher.hpp"

namespace pushstage {

struct PoolOptions {
  // Consumer threads, in [1, 65536].
  std::size_t consumers = 1;
  // Pin each consumer thread to one CPU.
  bool pin = true;
  // CPUs to pin to, used round-robin; each must be one this process may use. Empty: round-robin
  // over allowed_cpus(). Must be empty when pin is false.
  std::vector<int> cpus;
  // Events a consumer takes at a time, in [1, 65536].
  std::size_t max_demand = 1;
  // Called on the consumer's thread when the handler throws; the consumer goes on.
  std::function<void(std::exception_ptr)> on_error;
};

struct ConsumerStats {
  int cpu = -1;                      // the CPU it is pinned to; -1 when not pinned
  std::uint64_t handled = 0;         // handler calls that returned normally
  std::uint64_t failed = 0;          // handler calls that threw
  std::chrono::nanoseconds busy{0};  // time spent inside the handler
};

namespace detail {
// Validates `options` (std::invalid_argument naming the field and its range) and returns the CPU
// of each consumer (-1: not pinned).
std::vector<int> plan_consumer_cpus(const PoolOptions& options);
}  // namespace detail

template <class T>
class ConsumerPool {
 public:
  using Handler = std::function<void(T&)>;

  // Starts options.consumers threads draining `source`, which must outlive the pool.
  // Throws std::invalid_argument for invalid options or an empty handler, before starting any.
  ConsumerPool(Dispatcher<T>& source, PoolOptions options, Handler handler)
      : source_(source),
        cpus_(detail::plan_consumer_cpus(options)),
        max_demand_(options.max_demand),
        handler_(std::move(handler)),
        on_error_(std::move(options.on_error)),
        state_(std::make_unique<State[]>(cpus_.size())) {
    if (!handler_) throw std::invalid_argument("ConsumerPool: handler must not be empty");
    threads_.reserve(cpus_.size());
    try {
      for (std::size_t i = 0; i < cpus_.size(); ++i) threads_.emplace_back([this, i] { run(i); });
    } catch (...) {
      source_.close();  // the threads already started exit once the source drains
      join();
      throw;
    }
  }

  // Closes the source and waits for every consumer to finish (see join()).
  ~ConsumerPool() {
    source_.close();
    join();
  }
  ConsumerPool(const ConsumerPool&) = delete;
  ConsumerPool& operator=(const ConsumerPool&) = delete;

  // Waits until the source is closed and drained and every handler call has returned. Does not
  // close the source itself. Safe to call more than once and from several threads.
  void join() {
    const std::lock_guard lock(join_mutex_);
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

  [[nodiscard]] std::size_t size() const noexcept { return cpus_.size(); }

  // Per consumer, in start order. Recent values while the pool runs; exact after join().
  [[nodiscard]] std::vector<ConsumerStats> stats() const {
    std::vector<ConsumerStats> out(cpus_.size());
    for (std::size_t i = 0; i < cpus_.size(); ++i) {
      const State& s = state_[i];
      out[i].cpu = s.cpu.load(std::memory_order_relaxed);  // statistics: relaxed throughout
      out[i].handled = s.handled.load(std::memory_order_relaxed);
      out[i].failed = s.failed.load(std::memory_order_relaxed);
      out[i].busy = std::chrono::nanoseconds(s.busy_ns.load(std::memory_order_relaxed));
    }
    return out;
  }

 private:
  // One consumer's counters, written only by its thread, on its own cache lines.
  struct alignas(detail::kCacheLine) State {
    std::atomic<int> cpu{-1};
    std::atomic<std::uint64_t> handled{0};
    std::atomic<std::uint64_t> failed{0};
    std::atomic<std::int64_t> busy_ns{0};
  };

  static void bump(std::atomic<std::uint64_t>& counter) noexcept {
    counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  void run(std::size_t index) noexcept {
    State& state = state_[index];
    if (cpus_[index] >= 0 && pin_this_thread(cpus_[index])) {
      state.cpu.store(cpus_[index], std::memory_order_relaxed);
    }
    typename Dispatcher<T>::Consumer consumer = source_.consumer();
    std::vector<T> batch;
    if (max_demand_ > 1) batch.reserve(max_demand_);
    for (;;) {
      std::optional<T> first = consumer.pop();
      if (!first) break;  // closed and drained
      if (max_demand_ == 1) {
        handle(state, *first);
        continue;
      }
      batch.clear();
      batch.push_back(std::move(*first));
      first.reset();
      consumer.try_pop_bulk(std::back_inserter(batch), max_demand_ - 1);
      for (T& event : batch) handle(state, event);
    }
  }

  void handle(State& state, T& event) noexcept {
    const auto start = std::chrono::steady_clock::now();
    try {
      handler_(event);
      bump(state.handled);
    } catch (...) {
      bump(state.failed);
      if (on_error_) on_error_(std::current_exception());  // noexcept context: throw terminates
    }
    const auto spent = std::chrono::steady_clock::now() - start;
    state.busy_ns.store(state.busy_ns.load(std::memory_order_relaxed) +
                            std::chrono::duration_cast<std::chrono::nanoseconds>(spent).count(),
                        std::memory_order_relaxed);
  }

  Dispatcher<T>& source_;
  std::vector<int> cpus_;
  std::size_t max_demand_;
  Handler handler_;
  std::function<void(std::exception_ptr)> on_error_;
  std::unique_ptr<State[]> state_;
  std::vector<std::thread> threads_;
  std::mutex join_mutex_;
};

}  // namespace pushstage
