// soak_test.cpp: a long stress run in rounds. Each round builds a fresh Dispatcher under one of the
// four buffer policies (unbounded, bounded Block, Reject, DropOldest; they take turns), starts
// ConsumerPools over it, and sends bursts from new producer threads (Producer handles and tokenless
// calls; push, try_push, push_bulk) separated by idle gaps in which every consumer parks. Rounds
// end by destroying the pools without join() (new pools then take what they left), by close()
// then join(), by closing while producers still push, or with a pool that starts only after the
// dispatcher was filled and closed.
// Alongside, one long-lived bounded dispatcher (Block, capacity kBackboneCapacity) is fed by the
// same producer threads for the whole run and drained by one consumer thread.
//
// Checked after every round: each accepted event (Pushed or DroppedOldest) handled at most once,
// the accepted events that were not handled are exactly the dropped ones, no rejected or closed
// event handled, per-producer order at each consumer, and the dispatcher's stats equal to the
// producers' own counts. At the end: resident memory (VmRSS) after warm-up has not grown by more
// than kRssGrowthLimitKib (skipped under sanitizers, whose allocators keep memory differently).
//
// Size: PUSHSTAGE_SOAK_ROUNDS rounds (default kDefaultRounds: seconds, what CI runs), or
// PUSHSTAGE_SOAK_SECONDS: keep starting rounds until that long has passed (a developer's soak):
//   PUSHSTAGE_SOAK_SECONDS=600 build/dev/tests/soak_test
// The run prints what it did (rounds, events, RSS) at the end.
#include <gtest/gtest.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "pushstage/dispatcher.hpp"
#include "pushstage/pool/consumer_pool.hpp"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PUSHSTAGE_SOAK_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define PUSHSTAGE_SOAK_SANITIZED 1
#endif
#endif
#ifndef PUSHSTAGE_SOAK_SANITIZED
#define PUSHSTAGE_SOAK_SANITIZED 0
#endif

namespace pushstage {
namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t kDefaultRounds = 1000;
// Most events one producer thread pushes in one burst.
constexpr std::uint32_t kBurstMax = 3000 / PUSHSTAGE_TEST_SCALE;
constexpr std::size_t kBackboneCapacity = 256;
// Rounds before the RSS baseline is taken (every policy twice, allocator pools warmed).
constexpr std::uint64_t kWarmupRounds = 8;
constexpr long kRssGrowthLimitKib = 32 * 1024;

std::uint64_t env_u64(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtoull(v, nullptr, 10);
}

long rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

struct Event {
  std::uint32_t source;  // the producer (one thread, one way of pushing) within its round
  std::uint32_t seq;     // its position in that producer's pushes
};

enum class Mode { kHandlePush, kHandleTryPush, kHandleBulk, kTokenlessPush, kTokenlessBulk };
constexpr int kModes = 5;

// One producer of a round: what it pushed and what happened to each event.
struct Source {
  Mode mode = Mode::kHandlePush;
  std::uint32_t planned = 0;
  std::vector<std::uint8_t> accepted;                    // 1: Pushed or DroppedOldest
  std::unique_ptr<std::atomic<std::uint8_t>[]> handled;  // handler calls per seq
  std::uint64_t rejected = 0;
  std::uint64_t closed = 0;
  std::uint32_t backbone = 0;  // events it pushed to the long-lived dispatcher
};

// What a round's producers may count on the dispatcher meanwhile.
struct Totals {
  std::uint64_t pushed = 0, handled = 0, rejected = 0, dropped = 0, closed = 0;
  std::uint64_t backbone = 0;
};

// The long-lived bounded dispatcher and its consumer: it checks order and counts per source.
class Backbone {
 public:
  Backbone() : d_(options()), consumer_([this] { drain(); }) {}
  ~Backbone() {
    d_.close();
    consumer_.join();
  }
  Dispatcher<Event>& dispatcher() { return d_; }
  // Waits until every event pushed so far has been popped, then checks that source s delivered
  // exactly want[s] events (in order), and forgets the round.
  void check_round(const std::vector<std::uint32_t>& want) {
    while (popped_.load(std::memory_order_acquire) < d_.stats().pushed) std::this_thread::yield();
    const std::lock_guard lock(mutex_);
    for (std::uint32_t s = 0; s < want.size(); ++s) {
      const auto it = next_.find(s);
      const std::uint32_t got = it == next_.end() ? 0 : it->second;
      EXPECT_EQ(got, want[s]) << "backbone source " << s;
    }
    EXPECT_EQ(next_.size(), static_cast<std::size_t>(std::count_if(
                                want.begin(), want.end(), [](std::uint32_t n) { return n != 0; })));
    EXPECT_TRUE(order_ok_);
    next_.clear();
  }

 private:
  static DispatcherOptions options() {
    DispatcherOptions o;
    o.capacity = kBackboneCapacity;
    o.overflow = Overflow::Block;
    return o;
  }
  void drain() {
    auto consumer = d_.consumer();
    while (std::optional<Event> e = consumer.pop()) {
      {
        const std::lock_guard lock(mutex_);
        std::uint32_t& next = next_[e->source];  // exactly once and in order: seq == next
        if (e->seq != next) order_ok_ = false;
        next = e->seq + 1;
      }
      popped_.fetch_add(1, std::memory_order_release);
    }
  }
  Dispatcher<Event> d_;
  std::mutex mutex_;
  std::unordered_map<std::uint32_t, std::uint32_t> next_;
  bool order_ok_ = true;
  std::atomic<std::uint64_t> popped_{0};
  std::thread consumer_;
};

thread_local volatile std::uint32_t g_sink = 0;  // busy work the optimizer keeps

// Per consumer thread: the last seq it handled of each source in the current round.
struct OrderLog {
  std::uint64_t round = ~std::uint64_t{0};
  std::vector<std::int64_t> last;
};
thread_local OrderLog t_order;

enum class Ending { kDestroyPools, kCloseThenJoin, kCloseWhilePushing, kPoolAfterClose };

class Round {
 public:
  Round(std::uint64_t index, std::mt19937_64& rng, Backbone& backbone)
      : index_(index), rng_(rng), backbone_(backbone) {
    policy_ = static_cast<int>(index % 4);  // unbounded, Block, Reject, DropOldest
    DispatcherOptions o;
    if (policy_ != 0) o.capacity = pick(8, 512);
    o.overflow = policy_ <= 1   ? Overflow::Block
                 : policy_ == 2 ? Overflow::Reject
                                : Overflow::DropOldest;
    o.wake_order = pick(0, 1) == 0 ? WakeOrder::Fifo : WakeOrder::Lifo;
    o.spin = pick(0, 2) == 0 ? 0ns : 20us;
    capacity_ = o.capacity;
    d_ = std::make_unique<Dispatcher<Event>>(o);
    ending_ = static_cast<Ending>(pick(0, 3));
    sources_.reserve(64);
  }

  void run(Totals& totals) {
    if (ending_ == Ending::kPoolAfterClose) {
      // Events wait in a closed dispatcher until a pool starts: it must drain them all. Under
      // Block nothing may wait for room, so that burst fits the capacity.
      burst(pick(1, 3), policy_ == 1 ? static_cast<std::uint32_t>(capacity_ / 4) : kBurstMax);
      d_->close();
      start_pools();
    } else {
      start_pools();
      const std::uint64_t bursts = pick(2, 4);
      for (std::uint64_t b = 0; b < bursts; ++b) {
        burst(pick(1, 4), kBurstMax);
        idle_gap();
      }
      if (ending_ == Ending::kCloseWhilePushing) {
        late_burst();
      } else if (ending_ == Ending::kCloseThenJoin) {
        d_->close();
        for (auto& pool : pools_) pool->join();
      }
    }
    for (auto& pool : pools_) {
      if (ending_ != Ending::kDestroyPools) pool->join();  // closed: they drain it
      for (const ConsumerStats& s : pool->stats()) EXPECT_EQ(s.failed, 0U);
    }
    pools_.clear();  // kDestroyPools: the consumers end here; the rest stays in the dispatcher
    if (ending_ == Ending::kDestroyPools) {
      EXPECT_FALSE(d_->closed()) << "round " << index_ << ": a pool closed its source";
      d_->close();
      start_pools();  // the next pools take what the destroyed ones left
      for (auto& pool : pools_) pool->join();
      pools_.clear();
    }
    check(totals);
  }

 private:
  std::uint64_t pick(std::uint64_t lo, std::uint64_t hi) {
    return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng_);
  }

  void start_pools() {
    const std::uint64_t n = pick(1, 2);  // two pools share the dispatcher at times
    for (std::uint64_t i = 0; i < n; ++i) {
      PoolOptions po;
      po.consumers = pick(1, 3);
      po.max_demand = pick(0, 1) == 0 ? 1 : pick(2, 16);
      po.pin = pick(0, 1) == 0;
      consumers_ += static_cast<std::uint32_t>(po.consumers);
      pools_.push_back(
          std::make_unique<ConsumerPool<Event>>(*d_, po, [this](Event& e) { handle(e); }));
    }
  }

  void handle(const Event& e) {
    Source& s = sources_[e.source];
    s.handled[e.seq].fetch_add(1, std::memory_order_relaxed);
    if (t_order.round != index_) {
      t_order.round = index_;
      t_order.last.clear();
    }
    if (t_order.last.size() <= e.source) t_order.last.resize(e.source + 1, -1);
    if (static_cast<std::int64_t>(e.seq) <= t_order.last[e.source]) {
      order_ok_.store(false, std::memory_order_relaxed);
    }
    t_order.last[e.source] = e.seq;
    if (e.seq % 16 == 0) {  // some slow events, so that bounded buffers fill up
      for (std::uint32_t i = 0; i < 2000; ++i) g_sink = i;
    }
    handled_.fetch_add(1, std::memory_order_release);
  }

  // New threads, started together, each push up to `max` events in one way and then exit.
  void burst(std::uint64_t producers, std::uint32_t max) {
    const std::size_t first = sources_.size();
    for (std::uint64_t p = 0; p < producers; ++p) {
      Source& s = sources_.emplace_back();
      s.mode = static_cast<Mode>(pick(0, kModes - 1));
      s.planned = static_cast<std::uint32_t>(pick(1, std::max<std::uint32_t>(1, max)));
      s.accepted.assign(s.planned, 0);
      s.handled = std::make_unique<std::atomic<std::uint8_t>[]>(s.planned);
    }
    std::latch start(static_cast<std::ptrdiff_t>(producers));
    std::vector<std::thread> threads;
    for (std::size_t i = first; i < sources_.size(); ++i) {
      threads.emplace_back([this, i, &start] {
        start.arrive_and_wait();
        produce(static_cast<std::uint32_t>(i));
      });
    }
    for (auto& t : threads) t.join();
  }

  void produce(std::uint32_t index) {
    Source& s = sources_[index];
    std::optional<Dispatcher<Event>::Producer> handle;
    if (s.mode <= Mode::kHandleBulk) handle.emplace(d_->producer());
    // Every eighth event of each producer also goes to the long-lived dispatcher, from this
    // same short-lived thread (its own handle, or tokenless like the round's pushes).
    std::optional<Dispatcher<Event>::Producer> backbone_handle;
    if (handle) backbone_handle.emplace(backbone_.dispatcher().producer());
    std::uint32_t backbone_seq = 0;
    auto record = [&](std::uint32_t seq, PushResult r) {
      if (r == PushResult::Pushed || r == PushResult::DroppedOldest) {
        s.accepted[seq] = 1;
      } else if (r == PushResult::Rejected) {
        ++s.rejected;
      } else {
        ++s.closed;
      }
    };
    std::uint32_t seq = 0;
    while (seq < s.planned) {
      if (seq % 8 == 0) {
        const Event b{index, backbone_seq++};
        const PushResult r =
            backbone_handle ? backbone_handle->push(b) : backbone_.dispatcher().push(b);
        EXPECT_EQ(r, PushResult::Pushed);
      }
      switch (s.mode) {
        case Mode::kHandlePush:
          record(seq, handle->push(Event{index, seq}));
          ++seq;
          break;
        case Mode::kHandleTryPush: {
          Event e{index, seq};
          record(seq, handle->try_push(e));
          ++seq;
          break;
        }
        case Mode::kTokenlessPush:
          record(seq, d_->push(Event{index, seq}));
          ++seq;
          break;
        case Mode::kHandleBulk:
        case Mode::kTokenlessBulk: {
          const auto n =
              static_cast<std::uint32_t>(std::min<std::uint64_t>(s.planned - seq, 1 + seq % 37));
          std::vector<Event> chunk;
          for (std::uint32_t i = 0; i < n; ++i) chunk.push_back(Event{index, seq + i});
          const std::size_t got = s.mode == Mode::kHandleBulk
                                      ? handle->push_bulk(chunk.begin(), chunk.end())
                                      : d_->push_bulk(chunk.begin(), chunk.end());
          for (std::uint32_t i = 0; i < got; ++i) s.accepted[seq + i] = 1;
          // Bulk pushes here never race close(): the rest of a chunk was rejected.
          s.rejected += n - got;
          seq += n;
          break;
        }
      }
    }
    s.backbone = backbone_seq;
  }

  // Waits (by condition, not by time) until every accepted event is handled or dropped and every
  // consumer of the round is parked: the next burst starts against sleeping consumers.
  void idle_gap() {
    for (;;) {
      const DispatcherStats st = d_->stats();
      if (st.buffered == 0 && handled_.load(std::memory_order_acquire) == st.popped &&
          st.parked == consumers_) {
        return;
      }
      std::this_thread::sleep_for(50us);
    }
  }

  // Producers push single events while this thread closes the dispatcher: each push either
  // lands (and is handled) or returns Closed (and is not).
  void late_burst() {
    const std::size_t first = sources_.size();
    for (int p = 0; p < 2; ++p) {
      Source& s = sources_.emplace_back();
      s.mode = p == 0 ? Mode::kHandlePush : Mode::kTokenlessPush;
      s.planned = kBurstMax;
      s.accepted.assign(s.planned, 0);
      s.handled = std::make_unique<std::atomic<std::uint8_t>[]>(s.planned);
    }
    std::latch start(3);
    std::vector<std::thread> threads;
    for (std::size_t i = first; i < sources_.size(); ++i) {
      threads.emplace_back([this, i, &start] {
        start.arrive_and_wait();
        produce(static_cast<std::uint32_t>(i));
      });
    }
    start.arrive_and_wait();
    // Close once some of the late events are in (or at once, if the producers are slow).
    for (int spins = 0; spins < 1000 && d_->stats().pushed == 0; ++spins) std::this_thread::yield();
    d_->close();
    for (auto& t : threads) t.join();
  }

  void check(Totals& totals) {
    const DispatcherStats st = d_->stats();
    std::uint64_t accepted = 0, handled = 0, lost = 0, rejected = 0, closed = 0;
    for (std::uint32_t i = 0; i < sources_.size(); ++i) {
      const Source& s = sources_[i];
      rejected += s.rejected;
      closed += s.closed;
      for (std::uint32_t seq = 0; seq < s.planned; ++seq) {
        const unsigned h = s.handled[seq].load(std::memory_order_relaxed);
        accepted += s.accepted[seq];
        handled += h;
        if (s.accepted[seq] != 0) {
          ASSERT_LE(h, 1U) << "round " << index_ << ": event " << i << "/" << seq << " ran twice";
          if (h == 0) ++lost;
        } else {
          ASSERT_EQ(h, 0U) << "round " << index_ << ": refused event " << i << "/" << seq
                           << " was handled";
        }
      }
    }
    EXPECT_TRUE(order_ok_.load()) << "round " << index_ << ": a producer's order broke";
    EXPECT_EQ(st.pushed, accepted) << "round " << index_;
    EXPECT_EQ(st.popped, handled) << "round " << index_;
    EXPECT_EQ(st.dropped, lost) << "round " << index_ << ": accepted, never handled, not dropped";
    EXPECT_EQ(st.rejected, rejected) << "round " << index_;
    EXPECT_EQ(st.buffered, 0U) << "round " << index_;
    if (policy_ != 3) {
      EXPECT_EQ(lost, 0U) << "round " << index_;
    }
    if (policy_ == 0) {
      EXPECT_EQ(rejected, 0U) << "round " << index_;
    }
    if (ending_ != Ending::kCloseWhilePushing) {
      EXPECT_EQ(closed, 0U) << "round " << index_;
    }
    totals.pushed += accepted;
    totals.handled += handled;
    totals.rejected += rejected;
    totals.dropped += lost;
    totals.closed += closed;
    std::vector<std::uint32_t> want;
    for (const Source& s : sources_) {
      want.push_back(s.backbone);
      totals.backbone += s.backbone;
    }
    backbone_.check_round(want);
  }

  std::uint64_t index_;
  std::mt19937_64& rng_;
  Backbone& backbone_;
  int policy_ = 0;
  std::size_t capacity_ = 0;
  Ending ending_ = Ending::kDestroyPools;
  std::unique_ptr<Dispatcher<Event>> d_;
  std::vector<Source> sources_;  // reserved: producers hold references while others are added
  std::vector<std::unique_ptr<ConsumerPool<Event>>> pools_;
  std::uint32_t consumers_ = 0;
  std::atomic<std::uint64_t> handled_{0};
  std::atomic<bool> order_ok_{true};
};

TEST(Soak, RoundsOfBurstsIdleGapsAndRestartsLoseNothing) {
  const std::uint64_t rounds_wanted = env_u64("PUSHSTAGE_SOAK_ROUNDS", kDefaultRounds);
  const std::uint64_t seconds = env_u64("PUSHSTAGE_SOAK_SECONDS", 0);
  const std::uint64_t seed = env_u64("PUSHSTAGE_SOAK_SEED", 1);
  const auto t0 = std::chrono::steady_clock::now();
  auto more = [&](std::uint64_t done) {
    if (seconds == 0) return done < rounds_wanted;
    return done < kWarmupRounds + 4 ||
           std::chrono::steady_clock::now() - t0 < std::chrono::seconds(seconds);
  };
  std::mt19937_64 rng(seed);
  Totals totals;
  long rss_after_warmup = -1;
  long rss_max_after = -1;
  std::uint64_t rounds = 0;
  auto next_report = t0 + 30s;
  {
    Backbone backbone;
    for (; more(rounds); ++rounds) {
      Round round(rounds, rng, backbone);
      round.run(totals);
      if (::testing::Test::HasFatalFailure()) return;
      const long rss = rss_kib();
      if (rounds + 1 == kWarmupRounds) rss_after_warmup = rss;
      if (rounds + 1 > kWarmupRounds) rss_max_after = std::max(rss_max_after, rss);
      if (seconds != 0 && std::chrono::steady_clock::now() >= next_report) {  // a long soak
        next_report += 30s;
        std::printf("soak: %llu rounds, %llu events handled, VmRSS %ld KiB\n",
                    static_cast<unsigned long long>(rounds + 1),
                    static_cast<unsigned long long>(totals.handled), rss);
        std::fflush(stdout);
      }
    }
  }
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "soak: %llu rounds in %.1f s (seed %llu): %llu events accepted, %llu handled, %llu "
      "rejected, %llu dropped, %llu refused after close; long-lived dispatcher: %llu events; "
      "VmRSS after %llu warm-up rounds %ld KiB, highest after %ld KiB\n",
      static_cast<unsigned long long>(rounds), elapsed, static_cast<unsigned long long>(seed),
      static_cast<unsigned long long>(totals.pushed),
      static_cast<unsigned long long>(totals.handled),
      static_cast<unsigned long long>(totals.rejected),
      static_cast<unsigned long long>(totals.dropped),
      static_cast<unsigned long long>(totals.closed),
      static_cast<unsigned long long>(totals.backbone),
      static_cast<unsigned long long>(kWarmupRounds), rss_after_warmup, rss_max_after);
  EXPECT_EQ(totals.handled + totals.dropped, totals.pushed);
  if (PUSHSTAGE_SOAK_SANITIZED == 0 && rss_after_warmup > 0 && rss_max_after > 0) {
    EXPECT_LT(rss_max_after - rss_after_warmup, kRssGrowthLimitKib)
        << "resident memory grew after warm-up";
  }
}

}  // namespace
}  // namespace pushstage
