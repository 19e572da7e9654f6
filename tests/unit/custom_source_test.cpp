// custom_source_test.cpp: a dispatch mode written outside the library, from public parts only,
// runs under ConsumerPool and Stage unchanged (the Source concept of pushstage/source.hpp).
//
// PriorityDispatcher: two levels. Events wait in one Dispatcher per level; a third Dispatcher holds
// one token per event, and consumers wait on the tokens. A push is all or nothing across the
// token and its level (Dispatcher::Transaction, as BroadcastDispatcher does it), so a consumer
// holding a token always finds an event: urgent ones first.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "pushstage/dispatcher.hpp"
#include "pushstage/pool/consumer_pool.hpp"
#include "pushstage/source.hpp"
#include "pushstage/stages/stage.hpp"

namespace pushstage {
namespace {

template <class T>
class PriorityDispatcher {
  struct Token {};

 public:
  using value_type = T;

  PushResult push(T event, bool urgent) {
    typename Dispatcher<T>::Transaction level(urgent ? high_ : low_);
    typename Dispatcher<Token>::Transaction token(tokens_);
    // Unbounded: try_reserve() always holds room; begin() refuses once closed.
    if (!level.try_reserve() || !token.try_reserve() || !level.begin()) return PushResult::Closed;
    if (!token.begin()) return PushResult::Closed;  // the level's begin is undone by its destructor
    level.commit(std::move(event));
    token.commit(Token{});
    return PushResult::Pushed;
  }
  void close() noexcept {
    tokens_.close();
    high_.close();
    low_.close();
  }

  class Handle {
   public:
    TakeResult take(std::vector<T>& out, std::size_t max,
                    std::chrono::steady_clock::time_point deadline) {
      tokens_taken_.clear();
      const TakeResult r = tokens_.take(tokens_taken_, max, deadline);
      if (r == TakeResult::Got) redeem(out);
      return r;
    }
    std::size_t try_take(std::vector<T>& out, std::size_t max) {
      tokens_taken_.clear();
      if (tokens_.try_take(tokens_taken_, max) != 0) redeem(out);
      return tokens_taken_.size();
    }
    [[nodiscard]] Interrupter interrupter() const { return tokens_.interrupter(); }

   private:
    friend class PriorityDispatcher;
    explicit Handle(PriorityDispatcher& d)
        : tokens_(d.tokens_.consumer()), high_(d.high_.consumer()), low_(d.low_.consumer()) {}
    // One event per token: its event was committed before the token, so it is there (a dequeue
    // may miss it for a moment while another consumer's is in flight: try again).
    void redeem(std::vector<T>& out) {
      for (std::size_t i = 0; i < tokens_taken_.size(); ++i) {
        for (;;) {
          if (auto e = high_.try_pop()) {
            out.push_back(std::move(*e));
            break;
          }
          if (auto e = low_.try_pop()) {
            out.push_back(std::move(*e));
            break;
          }
          std::this_thread::yield();
        }
      }
    }
    typename Dispatcher<Token>::Consumer tokens_;
    typename Dispatcher<T>::Consumer high_;
    typename Dispatcher<T>::Consumer low_;
    std::vector<Token> tokens_taken_;
  };

  // The Source members: any number of consumers, each with a handle of its own.
  Handle handle_for(std::size_t /*consumer_index*/) { return Handle(*this); }
  static constexpr std::size_t fixed_consumers() { return 0; }

 private:
  Dispatcher<Token> tokens_;
  Dispatcher<T> high_;
  Dispatcher<T> low_;
};

static_assert(Source<PriorityDispatcher<int>>);

TEST(CustomSource, APriorityDispatcherRunsUnderAConsumerPool) {
  PriorityDispatcher<int> d;
  for (int i = 0; i < 50; ++i) ASSERT_EQ(d.push(1000 + i, false), PushResult::Pushed);
  for (int i = 0; i < 50; ++i) ASSERT_EQ(d.push(i, true), PushResult::Pushed);
  std::mutex m;
  std::vector<int> handled;
  PoolOptions one;
  one.pin = false;
  ConsumerPool pool(d, one, [&](int& e) {  // deduced: ConsumerPool<int>
    const std::lock_guard lock(m);
    handled.push_back(e);
  });
  d.close();
  pool.join();
  ASSERT_EQ(handled.size(), 100U);
  for (std::size_t i = 0; i < 50; ++i) EXPECT_LT(handled[i], 1000) << "urgent first, at " << i;
  for (std::size_t i = 50; i < 100; ++i) EXPECT_GE(handled[i], 1000) << i;
  EXPECT_EQ(d.push(7, true), PushResult::Closed);
}

TEST(CustomSource, ItFeedsAStageAndEveryConsumerTakesFromIt) {
  PriorityDispatcher<int> d;
  Dispatcher<int> sink;
  PoolOptions two;
  two.consumers = 2;
  two.pin = false;
  two.max_demand = 4;
  Stage stage(d, sink, two, [](int& e, Dispatcher<int>::Producer& out) { (void)out.push(e * 2); });
  std::atomic<long> sum{0};
  ConsumerPool last(sink, two, [&](int& e) { sum.fetch_add(e); });
  for (int i = 1; i <= 1000; ++i) ASSERT_EQ(d.push(i, i % 3 == 0), PushResult::Pushed);
  d.close();
  stage.join();
  last.join();  // the stage closed the sink once its source drained
  EXPECT_EQ(sum.load(), 2L * 1000 * 1001 / 2);
}

// Manual demand needs handles that can wait for an event without taking it; this mode has none.
TEST(CustomSource, ManualDemandNeedsWaitReady) {
  PriorityDispatcher<int> d;
  PoolOptions o;
  o.pin = false;
  o.demand = DemandMode::Manual;
  try {
    ConsumerPool pool(d, o, [](int&) {});
    FAIL() << "a manual pool over a source without wait_ready() was built";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("PoolOptions::demand Manual needs"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace pushstage
