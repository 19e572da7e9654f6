// pushstage/modes/demand_source.hpp: GenStage's producer with handle_demand: a source that makes
// events only when its consumers want them (read a file, page through a database, poll an API).
// A generator callback runs on a thread of the source's own and is asked for exactly as many
// events as consumers are waiting for and have not been given; when it says the stream has ended,
// the source closes. A Source (pushstage/source.hpp): a ConsumerPool or a Stage takes it as it
// takes a Dispatcher (and a Batcher through a Stage), with any number of consumers.
//
// Threading: every member is safe from any thread; a Handle belongs to one consumer thread (its
//            interrupter() to any). The generator runs on the source's thread only, one call at a
//            time, so it may keep state (a file position) without locks.
// Demand:    a consumer that waits (a take() that finds nothing buffered) asks for up to `max`
//            events (a pool: its max_demand); the generator is asked for the sum of what waiting
//            consumers asked for, minus what is buffered: GenStage's pending demand. Events taken
//            without waiting (try_take, a pool topping up) come from what is buffered and ask for
//            nothing. A consumer whose wait ends without all it asked for (it got fewer, timed out
//            or was interrupted) withdraws the rest; what was made for it meanwhile stays
//            buffered for the next. So at most the demand of the waiting consumers is ever made
//            ahead of them, plus what the generator makes beyond what it was asked for.
// Progress:  the generator may block (a read, a query); consumers wait in the source's Dispatcher
//            as they would in any (spin, then park). A generator call that appends nothing but
//            says the stream goes on is made again after kIdlePause (a generator with nothing yet
//            had better wait for it itself).
// Ordering:  events are taken in the order the generator made them (one producer: the thread).
// Close:     the generator's end of stream (false), its throw (kept: error()), close() or the
//            destructor close the source: consumers take what is buffered, then see Drained.
//            After close() no generator call starts; close() never waits for the call in
//            progress, the destructor does. What that call makes goes to on_drop
//            (DropReason::Closed). What a throwing call appended before its throw is delivered.
// Memory:    what the generator did before appending e happens-before the handler's call for e.
// Not guaranteed: how the generator's calls split the demand (one call may serve several
//            consumers; a consumer may get events made for another).
//
// How demand is counted, without a lock (tags DS1-DS4):
//   asked_ (atomic) is the events consumers have taken plus the demand of those now waiting;
//   generated_ (written by the source thread only) is the events made. need = asked_ - generated_
//   is what waiting consumers asked for and is not buffered.
//   (DS1) a consumer about to wait: asked_ += max (seq_cst; the N1 of signal_), then reads
//        generated_ and notifies signal_ if need may be positive. A stale generated_ is smaller
//        than the true one (it only grows), so a skipped notify means the need really was <= 0.
//   (DS2) its wait ended with `got` events: asked_ -= max - got (the demand it withdraws). Relaxed:
//        a withdrawal the thread has not seen yet only makes surplus, buffered for the next wait,
//        as a withdrawal just after its read would.
//   (DS3) a consumer takes k events without waiting: asked_ += k (seq_cst), then as DS1. Those
//        events may have been made for a waiting consumer, whose demand is still counted: the
//        thread makes them again.
//   (DS4) the thread waits on signal_ (A1-A3: its predicate reads stop_ and asked_ seq_cst) until
//        need > 0 or stop_; then calls the generator for `need`, pushes what it made (one
//        push_bulk) and adds it to generated_.
// Invariant: need = (demand of waiting consumers) - (events buffered), read by the thread after
//   every change that raises it (DS1, DS3 notify after their seq_cst write: Signal's Dekker pair).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "pushstage/core/cache_line.hpp"
#include "pushstage/core/signal.hpp"
#include "pushstage/dispatcher.hpp"
#include "pushstage/dispatcher_options.hpp"
#include "pushstage/source.hpp"

namespace pushstage {

namespace detail {
// Throws std::invalid_argument: a DemandSource needs a generator.
[[noreturn]] void throw_empty_demand_generator();
// `options` if a DemandSource's buffer may use them (overflow Block); else throws
// std::invalid_argument.
const DispatcherOptions& checked_demand_options(const DispatcherOptions& options);
}  // namespace detail

struct DemandSourceStats {
  std::uint64_t calls = 0;      // generator calls
  std::uint64_t generated = 0;  // events the generator made
  std::uint64_t asked = 0;      // events consumers took, plus the demand of those now waiting
  bool ended = false;           // the generator will not be called again
  DispatcherStats buffer;       // the buffer between the generator and the consumers
};

template <class T>
class DemandSource : public SharedSource<DemandSource<T>> {
  using Clock = std::chrono::steady_clock;

 public:
  using value_type = T;
  // Appends events to `out` (empty on entry), ideally `demand` of them: fewer is fine (it is asked
  // again for the rest), more are buffered for later demand. Returns false once the stream has
  // ended (what it appended in that call is still delivered). Runs on the source's thread and may
  // block; a throw ends the stream (error() keeps it).
  using Generator = std::function<bool(std::size_t demand, std::vector<T>& out)>;
  using DropHandler = typename Dispatcher<T>::DropHandler;
  class Handle;

  // The pause before asking again a generator that made nothing but did not end the stream.
  static constexpr std::chrono::milliseconds kIdlePause{1};
  // The most one wait asks for (a Handle's take() with a larger max asks for this many).
  static constexpr std::size_t kMaxAsk = std::size_t{1} << 30;

  // Starts the source's thread (it calls the generator only once a consumer waits). `options`:
  // the buffer's (spin, wake order; a capacity makes the thread wait for room when the generator
  // makes more than was asked). Its overflow must be Block: an event made and then dropped would
  // count as buffered for ever, and the consumers it was made for would wait for it. on_drop: as
  // Dispatcher's. Throws std::invalid_argument for an empty generator or options out of range,
  // std::system_error if the thread cannot start.
  explicit DemandSource(Generator generate, DispatcherOptions options = {},
                        DropHandler on_drop = {})
      : generate_(std::move(generate)),
        on_drop_(on_drop),
        buffer_(detail::checked_demand_options(options), std::move(on_drop)) {
    if (!generate_) detail::throw_empty_demand_generator();
    thread_ = std::thread([this] { run(); });
  }
  // close(), then waits for the generator's call in progress, if any, and the thread. Handles and
  // the pools over the source must be gone.
  ~DemandSource() {
    close();
    thread_.join();
  }
  DemandSource(const DemandSource&) = delete;
  DemandSource& operator=(const DemandSource&) = delete;

  // Ends the stream now: no generator call after the one in progress; consumers take what is
  // buffered, then see Drained. Idempotent; never waits for a consumer or for the generator.
  void close() noexcept {
    stop_.store(true, std::memory_order_seq_cst);  // N1 of signal_ (DS4's predicate)
    signal_.notify_all();
    buffer_.close();
  }
  [[nodiscard]] bool closed() const noexcept { return buffer_.closed(); }
  // Closed and every event made has been taken: final.
  [[nodiscard]] bool drained() const noexcept { return buffer_.drained(); }
  // The generator's exception, once a throw ended the stream; else null.
  [[nodiscard]] std::exception_ptr error() const {
    const std::lock_guard lock(error_mutex_);
    return error_;
  }

  [[nodiscard]] DemandSourceStats stats() const noexcept {
    DemandSourceStats s;
    s.calls = calls_.load(std::memory_order_relaxed);  // statistics: relaxed throughout
    s.generated = generated_.load(std::memory_order_relaxed);
    const std::int64_t asked = asked_.load(std::memory_order_relaxed);
    s.asked = asked > 0 ? static_cast<std::uint64_t>(asked) : 0;
    s.ended = ended_.load(std::memory_order_relaxed);
    s.buffer = buffer_.stats();
    return s;
  }

  // A consumer's handle (also what handle_for() gives a pool's consumer).
  [[nodiscard]] Handle consumer() { return Handle(*this); }
  // As a Source: wakes handles waiting in wait_until() (manual demand).
  void notify() noexcept { buffer_.notify(); }
  [[nodiscard]] static constexpr const char* consumer_role() noexcept {
    return "consumer of the DemandSource";
  }

  class Handle {
   public:
    Handle(Handle&&) noexcept = default;
    Handle& operator=(Handle&&) = delete;
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle() = default;

    // The next event, asking for one; waits. nullopt only once the source is drained.
    std::optional<T> pop() {
      std::optional<T> out;
      (void)take(out, Clock::time_point::max());
      return out;
    }
    // Waits until `deadline` for events, asking for up to `max` (>= 1) if none is buffered, and
    // appends between 1 and `max` of them to `out`: Got; else TimedOut, Drained or Interrupted.
    // (A wait asks for at most kMaxAsk.)
    TakeResult take(std::vector<T>& out, std::size_t max, Clock::time_point deadline) {
      const std::size_t before = out.size();
      if (const std::size_t k = consumer_.try_take(out, max); k != 0) {
        s_->took(k);  // DS3
        return TakeResult::Got;
      }
      const std::size_t asked = max < kMaxAsk ? max : kMaxAsk;
      s_->ask(asked);  // DS1
      const TakeResult r = consumer_.take(out, max, deadline);
      const std::size_t got = out.size() - before;
      s_->withdraw(got < asked ? asked - got : 0);  // DS2
      return r;
    }
    // take() for one event, into `out` (empty).
    TakeResult take(std::optional<T>& out, Clock::time_point deadline) {
      if (std::optional<T> e = consumer_.try_pop()) {
        out.emplace(std::move(*e));
        s_->took(1);  // DS3
        return TakeResult::Got;
      }
      s_->ask(1);  // DS1
      const TakeResult r = consumer_.take(out, deadline);
      s_->withdraw(out ? 0 : 1);  // DS2
      return r;
    }
    // Appends up to `max` buffered events to `out`; never waits and asks for nothing.
    std::size_t try_take(std::vector<T>& out, std::size_t max) {
      const std::size_t k = consumer_.try_take(out, max);
      if (k != 0) s_->took(k);  // DS3
      return k;
    }
    [[nodiscard]] Interrupter interrupter() const noexcept { return consumer_.interrupter(); }
    // Waits until an event is probably buffered, asking for one meanwhile (manual demand: the
    // event it made stays buffered for the take that follows).
    TakeResult wait_ready(Clock::time_point deadline) {
      s_->ask(1);  // DS1
      const TakeResult r = consumer_.wait_ready(deadline);
      s_->withdraw(1);  // DS2: it took nothing
      return r;
    }
    [[nodiscard]] bool drained() const noexcept { return consumer_.drained(); }
    template <class Pred>
    void wait_until(Pred&& pred) noexcept {
      consumer_.wait_until(std::forward<Pred>(pred));
    }

   private:
    friend class DemandSource;
    explicit Handle(DemandSource& s) : s_(&s), consumer_(s.buffer_.consumer()) {}
    DemandSource* s_;
    typename Dispatcher<T>::Consumer consumer_;
  };

 private:
  // (DS1) and (DS3): n more events asked for (or taken); wakes the thread if it may have to make
  // some.
  void ask(std::size_t n) noexcept {
    const std::int64_t asked =
        asked_.fetch_add(static_cast<std::int64_t>(n), std::memory_order_seq_cst) +  // N1
        static_cast<std::int64_t>(n);
    // relaxed: a stale value is smaller (it only grows), so it never skips a needed notify.
    if (asked > static_cast<std::int64_t>(generated_.load(std::memory_order_relaxed))) {
      signal_.notify_all();  // N2, N3
    }
  }
  void took(std::size_t n) noexcept { ask(n); }
  // (DS2)
  void withdraw(std::size_t n) noexcept {
    // relaxed: see DS2 in the header block.
    if (n != 0) asked_.fetch_sub(static_cast<std::int64_t>(n), std::memory_order_relaxed);
  }

  // (DS4): the source's thread.
  void run() noexcept {
    std::vector<T> made;
    std::uint64_t generated = 0;  // generated_'s value: this thread is its only writer
    for (;;) {
      std::int64_t need = 0;
      auto demand_or_stop = [&] {  // A3: pairs with the N1 of ask() and close()
        need = asked_.load(std::memory_order_seq_cst) - static_cast<std::int64_t>(generated);
        return need > 0 || stop_.load(std::memory_order_seq_cst);
      };
      (void)signal_.wait_for(demand_or_stop, std::chrono::nanoseconds::max());
      if (stop_.load(std::memory_order_seq_cst)) break;
      made.clear();
      bool more = false;
      try {
        more = generate_(static_cast<std::size_t>(need), made);
      } catch (...) {
        const std::lock_guard lock(error_mutex_);
        error_ = std::current_exception();
      }
      calls_.store(calls_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      const std::size_t pushed = buffer_.push_bulk(made.begin(), made.end());
      for (std::size_t i = pushed; i < made.size(); ++i) {  // refused: closed meanwhile
        if (on_drop_) on_drop_(std::move(made[i]), DropReason::Closed);
      }
      generated += pushed;
      // relaxed: read by ask() only as a bound (see there) and by stats().
      generated_.store(generated, std::memory_order_relaxed);
      if (!more) break;
      if (made.empty()) {  // nothing yet: ask again after a pause, unless stopped
        (void)signal_.wait_for([this] { return stop_.load(std::memory_order_seq_cst); },
                               kIdlePause);
      }
    }
    ended_.store(true, std::memory_order_relaxed);  // statistics
    buffer_.close();                                // end of stream: consumers drain
  }

  const Generator generate_;
  const DropHandler on_drop_;
  Dispatcher<T> buffer_;
  // Written by every consumer that waits or takes: a line of its own.
  alignas(detail::kCacheLine) std::atomic<std::int64_t> asked_{0};
  // Written by the source's thread only.
  alignas(detail::kCacheLine) std::atomic<std::uint64_t> generated_{0};
  std::atomic<std::uint64_t> calls_{0};
  std::atomic<bool> ended_{false};
  std::atomic<bool> stop_{false};
  detail::Signal signal_;  // the source's thread waits on it for demand (DS4)
  mutable std::mutex error_mutex_;
  std::exception_ptr error_;
  std::thread thread_;  // last: starts once everything above is made
};

}  // namespace pushstage
