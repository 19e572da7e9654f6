// dispatcher_model_fuzz.cpp: libFuzzer target. A random sequence of Dispatcher<int> calls on one
// thread (push, try_push, push_bulk, pop, pop_for(0), try_pop, Consumer::try_pop_bulk, close,
// stats, handles made and dropped), each result checked against a sequential model.
//
// The model: one FIFO per source (three Producer handles and the tokenless pushes of this thread).
// A pop may return the head of any source; under Overflow::DropOldest a full push drops "some
// producer's oldest" event without saying which, so the model keeps a count of unattributed drops
// and, when a pop returns an event behind others of its source, charges the skipped ones to that
// count (they must have been dropped, and there must have been that many drops). With one thread
// everything is quiescent, so stats() must be exact after every call, and the buffered count
// decides every result: Pushed / Rejected / DroppedOldest / Closed, how many a bulk accepts, and
// whether a pop finds an event. Overflow::Block is never allowed to wait: try_push when full, and
// push_bulk of no more than the free room.
//
// Any mismatch aborts with a message (libFuzzer saves the input). Run: see tests/fuzz/README.md.
#include <fuzzer/FuzzedDataProvider.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iterator>
#include <optional>
#include <vector>

#include "pushstage/dispatcher.hpp"

namespace {

using pushstage::Dispatcher;
using pushstage::DispatcherOptions;
using pushstage::DispatcherStats;
using pushstage::Overflow;
using pushstage::PushResult;

#define MODEL_CHECK(cond)                                                                      \
  do {                                                                                         \
    if (!(cond)) {                                                                             \
      std::fprintf(stderr, "dispatcher_model_fuzz: %s:%d: model check failed: %s\n", __FILE__, \
                   __LINE__, #cond);                                                           \
      std::abort();                                                                            \
    }                                                                                          \
  } while (0)

constexpr int kSources = 4;  // Producer handles 0..2, tokenless pushes 3
constexpr int kTokenless = 3;
constexpr int kConsumers = 2;  // Consumer handles
constexpr int kMaxOps = 4000;

// PUSHSTAGE_FUZZ_TRACE=1 prints every call and its result (to read a saved crash input).
const bool kTrace = std::getenv("PUSHSTAGE_FUZZ_TRACE") != nullptr;
#define TRACE(...)                                 \
  do {                                             \
    if (kTrace) std::fprintf(stderr, __VA_ARGS__); \
  } while (0)

const char* result_name(PushResult r) {
  switch (r) {
    case PushResult::Pushed:
      return "Pushed";
    case PushResult::Rejected:
      return "Rejected";
    case PushResult::DroppedOldest:
      return "DroppedOldest";
    case PushResult::Closed:
      return "Closed";
    case PushResult::Discarded:  // never from a Dispatcher
      return "Discarded";
  }
  return "?";
}

void expect_result(PushResult got, PushResult want) {
  if (got != want) {
    std::fprintf(stderr, "dispatcher_model_fuzz: push returned %s, the model says %s\n",
                 result_name(got), result_name(want));
    std::abort();
  }
}

class Model {
 public:
  Model(std::size_t capacity, Overflow overflow) : capacity_(capacity), overflow_(overflow) {
    for (int i = 0; i < kSources; ++i) handle_dropped(i);
  }

  // Events buffered in the dispatcher: those the model holds minus drops not yet attributed.
  [[nodiscard]] std::uint64_t buffered() const { return held_ - unattributed_drops_; }
  [[nodiscard]] bool bounded() const { return capacity_ != 0; }
  [[nodiscard]] std::uint64_t free_room() const { return capacity_ - buffered(); }
  [[nodiscard]] bool full() const { return bounded() && buffered() == capacity_; }
  [[nodiscard]] bool closed() const { return closed_; }
  [[nodiscard]] Overflow overflow() const { return overflow_; }

  // Values are 0, 1, 2, ... in push order; each remembers the FIFO it went to.
  int next_value(int source) {
    source_of_.push_back(fifo_of_[source]);
    return static_cast<int>(source_of_.size() - 1);
  }
  // Order holds per Producer handle: a new handle in the same place is a new FIFO.
  void handle_dropped(int source) {
    fifo_of_[source] = fifo_.size();
    fifo_.emplace_back();
  }

  // What a single push must return now.
  [[nodiscard]] PushResult expected_push() const {
    if (closed_) return PushResult::Closed;
    if (!full()) return PushResult::Pushed;
    return overflow_ == Overflow::DropOldest ? PushResult::DroppedOldest : PushResult::Rejected;
  }

  void accepted(int value, bool dropped_one) {
    if (dropped_one) {
      MODEL_CHECK(buffered() > 0);
      ++unattributed_drops_;
      ++dropped_;
    }
    fifo_[source_of_[static_cast<std::size_t>(value)]].push_back(value);
    ++held_;
    ++pushed_;
    MODEL_CHECK(!bounded() || buffered() <= capacity_);
  }
  void rejected(std::uint64_t n) { rejected_ += n; }
  void close() { closed_ = true; }

  // A pop returned `value`: it must be buffered, and the events ahead of it in its source's FIFO
  // must be ones that DropOldest dropped.
  void popped(int value) {
    MODEL_CHECK(value >= 0 && static_cast<std::size_t>(value) < source_of_.size());
    std::deque<int>& q = fifo_[source_of_[static_cast<std::size_t>(value)]];
    std::size_t at = 0;
    while (at < q.size() && q[at] != value) ++at;
    MODEL_CHECK(at < q.size());  // never pushed, already popped, or dropped
    MODEL_CHECK(at <= unattributed_drops_);
    unattributed_drops_ -= at;
    held_ -= at;
    q.erase(q.begin(), q.begin() + static_cast<std::ptrdiff_t>(at) + 1);
    --held_;
    ++popped_;
  }

  void check_stats(const DispatcherStats& s) const {
    MODEL_CHECK(s.pushed == pushed_);
    MODEL_CHECK(s.popped == popped_);
    MODEL_CHECK(s.rejected == rejected_);
    MODEL_CHECK(s.dropped == dropped_);
    MODEL_CHECK(s.buffered == buffered());
    MODEL_CHECK(s.parked == 0);
    MODEL_CHECK(s.spinning == 0);
  }

  // Closed and drained: every event still held must be one of the drops.
  void check_drained() const {
    MODEL_CHECK(closed_);
    MODEL_CHECK(held_ == unattributed_drops_);
  }

 private:
  std::size_t capacity_;
  Overflow overflow_;
  bool closed_ = false;
  std::vector<std::deque<int>> fifo_;  // one per Producer handle made, and one for tokenless pushes
  std::size_t fifo_of_[kSources] = {};  // the FIFO of each handle's place (3: tokenless)
  std::vector<std::size_t> source_of_;  // value -> FIFO
  std::uint64_t held_ = 0;
  std::uint64_t unattributed_drops_ = 0;
  std::uint64_t pushed_ = 0, popped_ = 0, rejected_ = 0, dropped_ = 0;
};

struct Harness {
  Dispatcher<int>& d;
  Model& m;
  std::optional<Dispatcher<int>::Producer> producers[kTokenless];
  std::optional<Dispatcher<int>::Consumer> consumers[kConsumers];

  Dispatcher<int>::Producer* producer(int source) {
    if (source == kTokenless) return nullptr;
    if (!producers[source]) producers[source].emplace(d.producer());
    return &*producers[source];
  }
  Dispatcher<int>::Consumer& consumer(int c) {
    if (!consumers[c]) consumers[c].emplace(d.consumer());
    return *consumers[c];
  }

  void push(int source, bool try_only) {
    const PushResult want = m.expected_push();
    // Block never waits here: when the model says full, only try_push (which says Rejected).
    if (want == PushResult::Rejected && m.overflow() == Overflow::Block) try_only = true;
    int value = m.next_value(source);
    Dispatcher<int>::Producer* p = producer(source);
    PushResult got;
    if (try_only) {
      got = p != nullptr ? p->try_push(value) : d.try_push(value);
    } else {
      got = p != nullptr ? p->push(value) : d.push(value);
    }
    TRACE("%s%s source %d value %d -> %s\n", try_only ? "try_push" : "push",
          p != nullptr ? "" : " (tokenless)", source, value, result_name(got));
    expect_result(got, want);
    if (got == PushResult::Pushed || got == PushResult::DroppedOldest) {
      m.accepted(value, got == PushResult::DroppedOldest);
    } else if (got == PushResult::Rejected) {
      m.rejected(1);
    }
  }

  void push_bulk(int source, std::size_t k) {
    if (m.bounded() && m.overflow() == Overflow::Block && !m.closed()) {
      k = k < m.free_room() ? k : static_cast<std::size_t>(m.free_room());  // never wait
    }
    std::vector<int> values(k);
    for (int& v : values) v = m.next_value(source);
    Dispatcher<int>::Producer* p = producer(source);
    const std::size_t got = p != nullptr ? p->push_bulk(values.begin(), values.end())
                                         : d.push_bulk(values.begin(), values.end());
    TRACE("push_bulk source %d of %zu (first %d) -> %zu\n", source, k, k ? values[0] : -1, got);
    if (m.closed()) {
      MODEL_CHECK(got == 0);
      return;
    }
    std::size_t want = k;
    if (m.bounded() && m.overflow() == Overflow::Reject) {
      want = k < m.free_room() ? k : static_cast<std::size_t>(m.free_room());
    }
    MODEL_CHECK(got == want);
    for (std::size_t i = 0; i < got; ++i) m.accepted(values[i], m.full());
    if (got < k) m.rejected(k - got);
  }

  void expect_pop(const std::optional<int>& got) {
    TRACE("pop -> %d (model buffered %llu)\n", got ? *got : -1,
          static_cast<unsigned long long>(m.buffered()));
    if (m.buffered() > 0) {
      MODEL_CHECK(got.has_value());
      m.popped(*got);
    } else {
      MODEL_CHECK(!got.has_value());
    }
  }

  void pop_bulk(int c, std::size_t max) {
    std::vector<int> out;
    const std::size_t n = consumer(c).try_pop_bulk(std::back_inserter(out), max);
    MODEL_CHECK(n == out.size());
    TRACE("try_pop_bulk consumer %d max %zu -> %zu:", c, max, n);
    for (const int v : out) TRACE(" %d", v);
    TRACE("\n");
    const std::uint64_t buffered = m.buffered();
    MODEL_CHECK(n == (max < buffered ? max : buffered));
    for (const int v : out) m.popped(v);  // per-source order within the batch, too
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  DispatcherOptions o;
  const int policy = in.ConsumeIntegralInRange<int>(0, 3);  // unbounded, Block, Reject, DropOldest
  o.capacity = policy == 0 ? 0 : in.ConsumeIntegralInRange<std::size_t>(1, 40);
  o.overflow = policy <= 1   ? Overflow::Block
               : policy == 2 ? Overflow::Reject
                             : Overflow::DropOldest;
  o.wake_order = in.ConsumeBool() ? pushstage::WakeOrder::Fifo : pushstage::WakeOrder::Lifo;
  o.spin = in.ConsumeBool() ? std::chrono::nanoseconds(0) : std::chrono::nanoseconds(200);
  if (in.ConsumeBool()) o.max_spinners = 0;

  TRACE("capacity %zu overflow %d spin %lld\n", o.capacity, static_cast<int>(o.overflow),
        static_cast<long long>(o.spin.count()));
  Dispatcher<int> d(o);
  Model m(o.capacity, o.overflow);
  {
    Harness h{d, m, {}, {}};
    for (int ops = 0; ops < kMaxOps && in.remaining_bytes() > 0; ++ops) {
      const int source = in.ConsumeIntegralInRange<int>(0, kSources - 1);
      const int c = in.ConsumeIntegralInRange<int>(0, kConsumers - 1);
      switch (in.ConsumeIntegralInRange<int>(0, 13)) {
        case 0:
        case 1:
          h.push(source, false);
          break;
        case 2:
          h.push(source, true);
          break;
        case 3:
          h.push_bulk(source, in.ConsumeIntegralInRange<std::size_t>(0, 12));
          break;
        case 4:
          h.expect_pop(d.try_pop());
          break;
        case 5:
          h.expect_pop(d.pop_for(std::chrono::nanoseconds(0)));
          break;
        case 6:
          h.expect_pop(h.consumer(c).try_pop());
          break;
        case 7:
          h.expect_pop(h.consumer(c).pop_for(std::chrono::nanoseconds(0)));
          break;
        case 8:
          h.pop_bulk(c, in.ConsumeIntegralInRange<std::size_t>(1, 12));
          break;
        case 9:  // pop() waits only when nothing is buffered and the dispatcher is open
          if (m.buffered() > 0 || m.closed()) {
            h.expect_pop(source == kTokenless ? d.pop() : h.consumer(c).pop());
          }
          break;
        case 10:
          if (in.ConsumeIntegralInRange<int>(0, 7) == 0) {  // rare: most inputs stay open longer
            TRACE("close\n");
            d.close();
            m.close();
          }
          break;
        case 11:
          m.check_stats(d.stats());
          break;
        case 12:  // drop a handle; the next use leases a slot and a token again
          TRACE("drop producer handle %d, consumer handle %d\n", source, c);
          if (source != kTokenless && h.producers[source]) {
            h.producers[source].reset();
            m.handle_dropped(source);
          }
          h.consumers[c].reset();
          break;
        case 13:
          MODEL_CHECK(d.closed() == m.closed());
          break;
      }
      m.check_stats(d.stats());
    }
    d.close();
    m.close();
    while (std::optional<int> e = d.pop()) m.popped(*e);
    m.check_drained();
    m.check_stats(d.stats());
    MODEL_CHECK(!d.try_pop().has_value());
    MODEL_CHECK(!d.pop_for(std::chrono::nanoseconds(0)).has_value());
    MODEL_CHECK(!h.consumer(0).pop().has_value());
    int late = 0;
    MODEL_CHECK(d.try_push(late) == PushResult::Closed);
    MODEL_CHECK(h.producer(0)->push(1) == PushResult::Closed);
  }  // handles go before the dispatcher
  return 0;
}
