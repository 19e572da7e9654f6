// thread_start_fault_test.cpp: a pool whose constructor cannot start all its threads. When
// std::thread fails (std::system_error) after some consumers started, the constructor must shut
// down (resume a paused pool, lift a manual pool's demand limit), close the source, let the
// started consumers drain it, join them and rethrow: nothing lost, nothing handled twice, nothing
// left running, no hang.
//
// The failure is injected by this executable's own pthread_create (below), which every std::thread
// goes through: the executable comes first in the dynamic linker's lookup, so libstdc++'s call
// lands here. It forwards to the sanitizer's interceptor when there is one (ASan and TSan must see
// every thread start), else to the next definition (libc's). This file is its own executable so
// that the interposition touches no other test.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "pushstage/cpus.hpp"
#include "pushstage/dispatcher.hpp"
#include "pushstage/pool/consumer_pool.hpp"
#include "pushstage/stages/stage.hpp"

// ---- the interposed pthread_create ----

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PUSHSTAGE_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define PUSHSTAGE_TEST_SANITIZED 1
#endif
#endif
#ifndef PUSHSTAGE_TEST_SANITIZED
#define PUSHSTAGE_TEST_SANITIZED 0
#endif

namespace {

using CreateFn = int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);

// Starts left before pthread_create refuses: -1 never refuses; n >= 0 lets n more start, then
// refuses every one (EAGAIN, what the kernel says when it runs out of threads or memory).
std::atomic<int> g_starts_left{-1};
std::atomic<int> g_attempts{0};          // calls while a refusal is armed
std::function<void()> g_before_refusal;  // set and cleared while no pool thread starts

}  // namespace

// The sanitizers' own pthread_create (ASan's and TSan's runtimes define pthread_create as a weak
// alias of it, so that a definition like ours may replace it and still call it). Null without one.
extern "C" int __interceptor_pthread_create(pthread_t*, const pthread_attr_t*, void* (*)(void*),
                                            void*) __attribute__((weak));

namespace {

// Whom a thread start that is not refused goes to; null when none can be found that keeps a
// sanitizer's view of threads whole.
CreateFn next_pthread_create() {
  if (__interceptor_pthread_create != nullptr) return &__interceptor_pthread_create;
  if (PUSHSTAGE_TEST_SANITIZED) return nullptr;  // libc's would bypass the sanitizer
  static const CreateFn next = [] {
    CreateFn f = nullptr;
    void* sym = dlsym(RTLD_NEXT, "pthread_create");
    static_assert(sizeof(f) == sizeof(sym));
    std::memcpy(&f, &sym, sizeof(f));
    return f;
  }();
  return next;
}

}  // namespace

extern "C" int pthread_create(pthread_t* thread, const pthread_attr_t* attr, void* (*start)(void*),
                              void* arg) noexcept {
  int left = g_starts_left.load(std::memory_order_relaxed);  // only the test thread arms it
  if (left >= 0) {
    g_attempts.fetch_add(1, std::memory_order_relaxed);
    if (left == 0) {
      if (g_before_refusal) g_before_refusal();
      return EAGAIN;
    }
    g_starts_left.store(left - 1, std::memory_order_relaxed);
  }
  const CreateFn next = next_pthread_create();
  if (next == nullptr) {
    std::fputs("thread_start_fault_test: no pthread_create to forward to\n", stderr);
    std::abort();
  }
  return next(thread, attr, start, arg);
}

namespace pushstage {
namespace {

using namespace std::chrono_literals;

constexpr int kEvents = 2'000 / PUSHSTAGE_TEST_SCALE;

// Lets `starts` thread starts through, then refuses each until destroyed. Armed and disarmed on
// the test's thread, while no other thread starts threads.
class RefuseThreadStarts {
 public:
  explicit RefuseThreadStarts(int starts, std::function<void()> before_refusal = {}) {
    g_before_refusal = std::move(before_refusal);
    g_attempts.store(0, std::memory_order_relaxed);
    g_starts_left.store(starts, std::memory_order_relaxed);
  }
  ~RefuseThreadStarts() {
    g_starts_left.store(-1, std::memory_order_relaxed);
    g_before_refusal = nullptr;
  }
  RefuseThreadStarts(const RefuseThreadStarts&) = delete;
  RefuseThreadStarts& operator=(const RefuseThreadStarts&) = delete;
  // pthread_create calls since armed: the starts let through plus the refusals.
  static int attempts() { return g_attempts.load(std::memory_order_relaxed); }
};

// Aborts the test binary with a message if not dismissed within `limit`: a hang in a constructor
// cannot be failed any other way. Its thread starts before a refusal is armed. Decides no pass.
class HangGuard {
 public:
  HangGuard(const char* what, std::chrono::seconds limit)
      : thread_([this, what, limit] {
          std::unique_lock lock(mutex_);
          if (!cv_.wait_for(lock, limit, [this] { return dismissed_; })) {
            std::fprintf(stderr, "thread_start_fault_test: %s did not return within %lld s\n", what,
                         static_cast<long long>(limit.count()));
            std::abort();
          }
        }) {}
  ~HangGuard() {
    {
      const std::lock_guard lock(mutex_);
      dismissed_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  HangGuard(const HangGuard&) = delete;
  HangGuard& operator=(const HangGuard&) = delete;

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool dismissed_ = false;
  std::thread thread_;  // last: starts once the members it reads exist
};

// Handler calls per event, and the threads that made them.
class Tally {
 public:
  Tally() : calls_(std::make_unique<std::atomic<int>[]>(kEvents)) {}
  void handled(int e) {
    calls_[static_cast<std::size_t>(e)].fetch_add(1, std::memory_order_relaxed);
    total_.fetch_add(1, std::memory_order_relaxed);
    const std::lock_guard lock(mutex_);
    threads_.insert(std::this_thread::get_id());
  }
  // Read after the pool's threads were joined (the constructor's rethrow comes after its join).
  void expect_each_at_most_once() const {
    for (int e = 0; e < kEvents; ++e) {
      const int calls = calls_[static_cast<std::size_t>(e)].load(std::memory_order_relaxed);
      ASSERT_LE(calls, 1) << "event " << e;
    }
  }
  void expect_each_handled(int times) const {
    for (int e = 0; e < kEvents; ++e) {
      const int calls = calls_[static_cast<std::size_t>(e)].load(std::memory_order_relaxed);
      ASSERT_EQ(calls, times) << "event " << e;
    }
  }
  int total() const { return total_.load(std::memory_order_relaxed); }
  std::size_t threads() const {
    const std::lock_guard lock(mutex_);
    return threads_.size();
  }

 private:
  std::unique_ptr<std::atomic<int>[]> calls_;
  std::atomic<int> total_{0};
  mutable std::mutex mutex_;
  std::set<std::thread::id> threads_;
};

void push_all(Dispatcher<int>& d) {
  for (int e = 0; e < kEvents; ++e) ASSERT_EQ(d.push(e), PushResult::Pushed);
}

void expect_refused(const std::system_error& e) {
  EXPECT_EQ(e.code(), std::errc::resource_unavailable_try_again) << e.what();
}

// The started consumers gave their CPUs back: a pool started now would spread as if none ran.
void expect_no_cpu_held() {
  const std::vector<int> cpus = allowed_cpus();
  PoolOptions o;
  o.consumers = cpus.size();
  EXPECT_EQ(detail::plan_consumer_cpus(o), cpus);
}

class ThreadStartFault : public ::testing::Test {
 protected:
  void SetUp() override {
    if (next_pthread_create() == nullptr) {
      GTEST_SKIP() << "built with a sanitizer whose pthread_create interceptor is not reachable "
                      "as __interceptor_pthread_create: a refused start cannot be injected "
                      "without hiding threads from the sanitizer";
    }
  }
};

// The 1st, 2nd or 3rd of 4 starts refused: the consumers already running are stopped (each
// handles what it holds), the error is rethrown, and the source stays open with the rest.
class ThreadStartFaultAt : public ThreadStartFault, public ::testing::WithParamInterface<int> {};

TEST_P(ThreadStartFaultAt, StartedConsumersStopThenTheErrorIsRethrown) {
  const int started = GetParam();
  Dispatcher<int> d;
  push_all(d);
  Tally tally;
  PoolOptions o;
  o.consumers = 4;
  {
    const HangGuard guard("the pool constructor", 60s);
    const RefuseThreadStarts refuse(started);
    try {
      ConsumerPool<int> pool(d, o, [&](int& e) { tally.handled(e); });
      ADD_FAILURE() << "the pool was constructed though a thread start was refused";
    } catch (const std::system_error& e) {
      expect_refused(e);
    }
    EXPECT_EQ(RefuseThreadStarts::attempts(), started + 1) << "it kept starting after a refusal";
  }
  EXPECT_FALSE(d.closed());
  tally.expect_each_at_most_once();
  EXPECT_LE(tally.threads(), static_cast<std::size_t>(started));
  EXPECT_EQ(static_cast<std::uint64_t>(tally.total()) + d.stats().buffered,
            static_cast<std::uint64_t>(kEvents));
  if (started == 0) {
    EXPECT_EQ(tally.total(), 0);
  }
  expect_no_cpu_held();
}

INSTANTIATE_TEST_SUITE_P(Refused, ThreadStartFaultAt, ::testing::Values(0, 1, 2),
                         [](const ::testing::TestParamInfo<int>& param) {
                           return "start_" + std::to_string(param.param + 1);
                         });

// DemandMode::Manual with no ask(): the started consumers wait for demand that never comes; the
// constructor must end them anyway before it joins them (they take nothing).
TEST_F(ThreadStartFault, AManualPoolWithoutDemandStillStops) {
  Dispatcher<int> d;
  push_all(d);
  Tally tally;
  PoolOptions o;
  o.consumers = 3;
  o.demand = DemandMode::Manual;
  o.max_demand = 4;
  {
    const HangGuard guard("the manual pool's constructor", 60s);
    const RefuseThreadStarts refuse(2);
    try {
      ConsumerPool<int> pool(d, o, [&](int& e) { tally.handled(e); });
      ADD_FAILURE() << "the pool was constructed though a thread start was refused";
    } catch (const std::system_error& e) {
      expect_refused(e);
    }
  }
  EXPECT_FALSE(d.closed());
  EXPECT_EQ(tally.total(), 0);
  EXPECT_EQ(d.stats().buffered, static_cast<std::uint64_t>(kEvents));
  expect_no_cpu_held();
}

// A handler pauses the pool (through a reference to the pool under construction, as a handler
// that captures its pool does) before the third start is refused: the constructor must resume
// the pool so that they handle what they hold and end, or its join waits forever for consumers
// that hold still.
TEST_F(ThreadStartFault, APausedPoolIsResumedToStop) {
  Dispatcher<int> d;
  push_all(d);
  Tally tally;
  std::atomic<bool> paused{false};
  int handled_when_refused = -1;
  PoolOptions o;
  o.consumers = 3;
  {
    const HangGuard guard("the paused pool's constructor", 60s);
    const RefuseThreadStarts refuse(2, [&] {
      // Refuse only once a handler has paused the pool (a guard, not a timing: it returns at once
      // when the pause happened).
      const auto give_up = std::chrono::steady_clock::now() + 60s;
      while (!paused.load(std::memory_order_acquire) &&
             std::chrono::steady_clock::now() < give_up) {
        std::this_thread::sleep_for(1ms);
      }
      handled_when_refused = tally.total();
    });
    try {
      ConsumerPool<int> pool(d, o, [&](int& e) {
        if (!paused.load(std::memory_order_relaxed)) {
          pool.pause();
          paused.store(true, std::memory_order_release);  // after pause() returned
        }
        tally.handled(e);
      });
      ADD_FAILURE() << "the pool was constructed though a thread start was refused";
    } catch (const std::system_error& e) {
      expect_refused(e);
    }
  }
  ASSERT_TRUE(paused.load());
  // Paused when the start was refused: at most the two started consumers' calls under way then.
  EXPECT_LE(handled_when_refused, 2);
  EXPECT_FALSE(d.closed());
  tally.expect_each_at_most_once();
  EXPECT_EQ(static_cast<std::uint64_t>(tally.total()) + d.stats().buffered,
            static_cast<std::uint64_t>(kEvents));
  expect_no_cpu_held();
}

// A Stage's constructor takes the same path; its started consumers emit what they took, and the
// stage leaves its sink, which it was the only upstream of: the sink closes, the source does not.
TEST_F(ThreadStartFault, AStageEmitsWhatItTookAndClosesItsSink) {
  Dispatcher<int> in;
  Dispatcher<int> out;
  push_all(in);
  PoolOptions o;
  o.consumers = 3;
  {
    const HangGuard guard("the stage's constructor", 60s);
    const RefuseThreadStarts refuse(2);
    try {
      Stage stage(in, out, o, [](int& e, Dispatcher<int>::Producer& p) { (void)p.push(e); });
      ADD_FAILURE() << "the stage was constructed though a thread start was refused";
    } catch (const std::system_error& e) {
      expect_refused(e);
    }
  }
  EXPECT_FALSE(in.closed());
  EXPECT_TRUE(out.closed());
  Tally tally;
  auto c = out.consumer();
  while (std::optional<int> e = c.try_pop()) tally.handled(*e);
  tally.expect_each_at_most_once();
  EXPECT_EQ(static_cast<std::uint64_t>(tally.total()) + in.stats().buffered,
            static_cast<std::uint64_t>(kEvents));
}

}  // namespace
}  // namespace pushstage
