// bench_core_test.cpp: the pure logic of pushstage-bench (tools/pushstage_bench/bench_core.hpp).
#include "bench_core.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace pushstage::bench {
namespace {

std::string error_of(auto&& f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

TEST(BenchCore, ParsesDurationsWithUnits) {
  EXPECT_EQ(parse_duration_ns("--x", "500us"), 500'000);
  EXPECT_EQ(parse_duration_ns("--x", "1.5ms"), 1'500'000);
  EXPECT_EQ(parse_duration_ns("--x", "200ns"), 200);
  EXPECT_EQ(parse_duration_ns("--x", "2s"), 2'000'000'000);
  EXPECT_EQ(parse_duration_ns("--x", "7"), 7'000);  // bare numbers are microseconds
  EXPECT_EQ(parse_duration_ns("--x", "0"), 0);
  for (const char* bad : {"", "-1us", "ms", "1.5.2ms", "10 us", "1h", "nan", "inf"}) {
    const std::string msg = error_of([&] { (void)parse_duration_ns("--gap", bad); });
    EXPECT_NE(msg.find("--gap: expects a duration"), std::string::npos) << bad << ": " << msg;
  }
}

TEST(BenchCore, ParsesEveryWorkDistribution) {
  const WorkDist c = parse_work("--work", "const:250us");
  EXPECT_EQ(c.kind, WorkDist::Kind::kConst);
  EXPECT_DOUBLE_EQ(c.mean_ns(), 250'000);
  const WorkDist u = parse_work("--work", "uniform:500:1500");
  EXPECT_EQ(u.kind, WorkDist::Kind::kUniform);
  EXPECT_DOUBLE_EQ(u.mean_ns(), 1'000'000);
  EXPECT_DOUBLE_EQ(u.max_ns(), 1'500'000);
  const WorkDist e = parse_work("--work", "exp:20us");
  EXPECT_DOUBLE_EQ(e.mean_ns(), 20'000);
  EXPECT_TRUE(std::isinf(e.max_ns()));
  const WorkDist b = parse_work("--work", "bimodal:100us");
  EXPECT_DOUBLE_EQ(b.mean_ns(), 100'000 * (0.9 + 0.1 * 10));
  EXPECT_DOUBLE_EQ(b.max_ns(), 1'000'000);
  const WorkDist b2 = parse_work("--work", "bimodal:1ms:4:0.5");
  EXPECT_DOUBLE_EQ(b2.mean_ns(), 1e6 * (0.5 + 0.5 * 4));
  const WorkDist p = parse_work("--work", "pareto:100us:10ms:1.5");
  EXPECT_EQ(p.kind, WorkDist::Kind::kPareto);
  EXPECT_DOUBLE_EQ(p.c, 1.5);
  EXPECT_DOUBLE_EQ(parse_work("--work", "pareto:1:2").c, 1.5);
}

TEST(BenchCore, RejectsMalformedWorkWithTheFlagAndTheForms) {
  for (const char* bad :
       {"", "const", "const:", "const:-5", "uniform:5", "uniform:9:1", "exp:0", "exp:1:2",
        "bimodal:", "bimodal:1:0.5", "bimodal:1:2:1.5", "pareto:5:1", "pareto:0:10",
        "pareto:1:2:3:4", "gauss:1", "const:1x", "bimodal:1000000s:1000000"}) {
    const std::string msg = error_of([&] { (void)parse_work("--work", bad); });
    EXPECT_EQ(msg.rfind("--work: ", 0), 0U) << bad << ": " << msg;
    EXPECT_NE(msg.find(std::string("'") + bad + "'"), std::string::npos) << msg;
  }
}

// Found by tests/fuzz/bench_cli_fuzz: a high mode beyond 2^63 ns sampled as INT64_MIN.
TEST(BenchCore, BimodalHighModeMustFitADuration) {
  EXPECT_NE(error_of([] {
              (void)parse_work("--work", "bimodal:1000000s:1000000:1");
            }).find("bimodal:BASE:FACTOR needs BASE x FACTOR <= 1e15 ns"),
            std::string::npos);
  const WorkDist w = parse_work("--work", "bimodal:1s:1000000:1");  // exactly 1e15 ns
  std::mt19937_64 rng(1);
  EXPECT_EQ(w.sample(rng), 1'000'000'000'000'000);
}

TEST(BenchCore, SampledWorkStaysInRangeAndMatchesItsMean) {
  std::mt19937_64 rng(7);
  for (const char* spec : {"const:3us", "uniform:500:1500", "exp:50us", "bimodal:100us",
                           "pareto:100us:10ms:1.5", "pareto:10us:1ms:1"}) {
    const WorkDist w = parse_work("--work", spec);
    double sum = 0;
    constexpr int kN = 200'000;
    for (int i = 0; i < kN; ++i) {
      const auto v = static_cast<double>(w.sample(rng));
      ASSERT_GE(v, 0) << spec;
      ASSERT_LE(v, w.max_ns() + 0.5) << spec;
      sum += v;
    }
    // Loose: the mean of 200k samples of these distributions is within a few percent.
    EXPECT_NEAR(sum / kN, w.mean_ns(), w.mean_ns() * 0.05) << spec;
  }
}

TEST(BenchCore, ParsesCountsNumbersAndWeights) {
  EXPECT_EQ(parse_count("--events", "12", 1, 100), 12U);
  for (const char* bad : {"0", "-1", "101", "1.5", "", "x", "12x"}) {
    const std::string msg = error_of([&] { (void)parse_count("--events", bad, 1, 100); });
    EXPECT_NE(msg.find("--events: expects an integer in [1, 100]"), std::string::npos) << msg;
  }
  EXPECT_DOUBLE_EQ(parse_number("--load", "0.8", 0, 1), 0.8);
  EXPECT_NE(error_of([] { (void)parse_number("--load", "-0.1", 0, 1); }).find("--load"),
            std::string::npos);
  EXPECT_EQ(parse_weights("--producer-weights", "7,1,1.5"), (std::vector<double>{7, 1, 1.5}));
  for (const char* bad : {"", "1,,2", "1,0", "-1", "a"}) {
    EXPECT_NE(error_of([&] {
                (void)parse_weights("--producer-weights", bad);
              }).find("--producer-weights: expects comma-separated positive weights"),
              std::string::npos)
        << bad;
  }
}

PlanSpec spec_of(std::size_t events, std::size_t producers, double rate, Arrivals arrivals) {
  PlanSpec s;
  s.events = events;
  s.producers = producers;
  s.rate = rate;
  s.arrivals = arrivals;
  s.work = parse_work("--work", "uniform:500:1500");
  s.seed = 42;
  return s;
}

TEST(BenchCore, PlanIsDeterministicAndOrderedByArrival) {
  const PlanSpec s = spec_of(10'000, 3, 2400, Arrivals::kPoisson);
  const Plan a = make_plan(s);
  const Plan b = make_plan(s);
  EXPECT_EQ(a.intended, b.intended);
  EXPECT_EQ(a.work, b.work);
  EXPECT_EQ(a.producer, b.producer);
  ASSERT_EQ(a.size(), 10'000U);
  EXPECT_TRUE(std::is_sorted(a.intended.begin(), a.intended.end()));
  std::size_t total = 0;
  for (std::size_t p = 0; p < 3; ++p) {
    const auto& ids = a.per_producer[p];
    total += ids.size();
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
    for (const auto id : ids) EXPECT_EQ(a.producer[id], p);
  }
  EXPECT_EQ(total, 10'000U);
  // Poisson at 2400/s: 10k events span about 4.17 s.
  EXPECT_NEAR(static_cast<double>(a.intended.back()), 10'000 / 2400.0 * 1e9, 0.1e9);
  for (const auto w : a.work) {
    EXPECT_GE(w, 500'000);
    EXPECT_LE(w, 1'500'000);
  }
  PlanSpec other = s;
  other.seed = 43;
  EXPECT_NE(make_plan(other).intended, a.intended);
}

TEST(BenchCore, FixedRateArrivalsAreEvenlySpacedAndSkewFollowsWeights) {
  PlanSpec s = spec_of(1000, 1, 1000, Arrivals::kFixed);
  const Plan fixed = make_plan(s);
  for (std::size_t i = 1; i < fixed.size(); ++i) {
    EXPECT_EQ(fixed.intended[i] - fixed.intended[i - 1], 1'000'000);
  }
  s = spec_of(10'000, 4, 1000, Arrivals::kPoisson);
  s.weights = {7, 1, 1, 1};
  const Plan skewed = make_plan(s);
  EXPECT_NEAR(static_cast<double>(skewed.per_producer[0].size()), 7000, 300);
  for (std::size_t p = 1; p < 4; ++p) {
    EXPECT_NEAR(static_cast<double>(skewed.per_producer[p].size()), 1000, 150);
  }
}

TEST(BenchCore, ClosedLoopSplitsEventsByWeightAndGivesEveryProducerOne) {
  PlanSpec s = spec_of(10, 3, 0, Arrivals::kPoisson);
  s.weights = {100, 1, 1};
  const Plan plan = make_plan(s);
  EXPECT_EQ(plan.size(), 10U);
  EXPECT_EQ(plan.per_producer[0].size(), 8U);
  EXPECT_EQ(plan.per_producer[1].size(), 1U);
  EXPECT_EQ(plan.per_producer[2].size(), 1U);
  for (const auto t : plan.intended) EXPECT_EQ(t, 0);
}

TEST(BenchCore, IdealFifoMatchesAHandWorkedSchedule) {
  // Two consumers. t=0: a(10) and b(10) start at once; c arrives at 1 and waits until 10;
  // d arrives at 50 to an idle pool; e arrives at 50 too and takes the other consumer.
  const std::vector<std::int64_t> arrival{0, 0, 1, 50, 50};
  const std::vector<std::int64_t> service{10, 10, 5, 3, 3};
  EXPECT_EQ(ideal_fifo_starts(arrival, service, 2), (std::vector<std::int64_t>{0, 0, 10, 50, 50}));
  // One consumer: strictly serial.
  EXPECT_EQ(ideal_fifo_starts(arrival, service, 1), (std::vector<std::int64_t>{0, 10, 20, 50, 53}));
  // Input order does not matter: indices keep their meaning.
  const std::vector<std::int64_t> arrival2{50, 1, 0};
  const std::vector<std::int64_t> service2{3, 5, 10};
  EXPECT_EQ(ideal_fifo_starts(arrival2, service2, 1), (std::vector<std::int64_t>{50, 10, 0}));
}

TEST(BenchCore, IdealFifoIsWorkConservingOnRandomInput) {
  // No ideal start is later than the earliest moment a consumer was free and the event waited.
  std::mt19937_64 rng(9);
  std::vector<std::int64_t> arrival(2000);
  std::vector<std::int64_t> service(2000);
  std::int64_t t = 0;
  for (std::size_t i = 0; i < arrival.size(); ++i) {
    t += static_cast<std::int64_t>(rng() % 400);
    arrival[i] = t;
    service[i] = 1 + static_cast<std::int64_t>(rng() % 1000);
  }
  const auto start = ideal_fifo_starts(arrival, service, 3);
  auto running_at = [&](std::int64_t at, std::size_t except) {
    int n = 0;
    for (std::size_t j = 0; j < start.size(); ++j) {
      if (j != except && start[j] <= at && at < start[j] + service[j]) ++n;
    }
    return n;
  };
  for (std::size_t i = 0; i < start.size(); ++i) {
    ASSERT_GE(start[i], arrival[i]);
    ASSERT_LE(running_at(start[i], i), 2);  // never more than 3 at once
    // An event that waited did so while all three consumers were busy (times are integers).
    if (start[i] > arrival[i]) {
      ASSERT_EQ(running_at(start[i] - 1, i), 3) << i;
    }
  }
}

TEST(BenchCore, JainIndexBounds) {
  EXPECT_DOUBLE_EQ(jain_index(std::vector<double>{5, 5, 5}), 1.0);
  EXPECT_DOUBLE_EQ(jain_index(std::vector<double>{9, 0, 0}), 1.0 / 3);
  EXPECT_DOUBLE_EQ(jain_index(std::vector<double>{1, 3}), 16.0 / 20.0);
  EXPECT_DOUBLE_EQ(jain_index(std::vector<double>{}), 1.0);
  EXPECT_DOUBLE_EQ(jain_index(std::vector<double>{0, 0}), 1.0);
}

TEST(BenchCore, GrahamBoundAndItsCheck) {
  const std::vector<std::int64_t> p{4, 4, 4, 8};
  EXPECT_DOUBLE_EQ(graham_bound(p, 2), 20.0 / 2 + 0.5 * 8);
  EXPECT_DOUBLE_EQ(graham_bound(p, 1), 20.0);
  // The ideal list schedule of a batch is within the bound.
  const std::vector<std::int64_t> zero(p.size(), 0);
  const auto start = ideal_fifo_starts(zero, p, 2);
  std::int64_t makespan = 0;
  for (std::size_t i = 0; i < p.size(); ++i) makespan = std::max(makespan, start[i] + p[i]);
  EXPECT_TRUE(within_graham_bound(static_cast<double>(makespan), graham_bound(p, 2), 0, 0));
  // A schedule that left a consumer idle (everything on one consumer) fails the check.
  EXPECT_FALSE(within_graham_bound(20, graham_bound(p, 2), 0.05, 1));
  EXPECT_TRUE(within_graham_bound(14.5, 14, 0.05, 0));
}

TEST(BenchCore, FifoInversionsCountOvertakingAcrossProducers) {
  // enqueue order: e0 (p0), e1 (p1), e2 (p0), e3 (p1).
  const std::vector<std::int64_t> enq{0, 1, 2, 3};
  const std::vector<std::uint32_t> prod{0, 1, 0, 1};
  EXPECT_EQ(fifo_inversions(enq, std::vector<std::int64_t>{10, 11, 12, 13}, prod), 0U);
  // e2 starts before e1 (another producer, enqueued earlier): one inversion.
  EXPECT_EQ(fifo_inversions(enq, std::vector<std::int64_t>{10, 13, 12, 14}, prod), 1U);
  // e3 starts first of all: it overtakes e0 and e2 (p0); it counts once. e2 overtakes e1.
  EXPECT_EQ(fifo_inversions(enq, std::vector<std::int64_t>{10, 13, 12, 5}, prod), 2U);
  // Overtaking within one producer is not an inversion here.
  const std::vector<std::uint32_t> one{0, 0, 0, 0};
  EXPECT_EQ(fifo_inversions(enq, std::vector<std::int64_t>{13, 12, 11, 10}, one), 0U);
}

TEST(BenchCore, FifoInversionsAgreeWithBruteForce) {
  std::mt19937_64 rng(11);
  for (int round = 0; round < 20; ++round) {
    const std::size_t n = 300;
    std::vector<std::int64_t> enq(n);
    std::vector<std::int64_t> start(n);
    std::vector<std::uint32_t> prod(n);
    for (std::size_t i = 0; i < n; ++i) {
      enq[i] = static_cast<std::int64_t>(rng() % 200);  // with ties
      start[i] = enq[i] + static_cast<std::int64_t>(rng() % 50);
      prod[i] = static_cast<std::uint32_t>(rng() % 3);
    }
    std::uint64_t brute = 0;
    for (std::size_t j = 0; j < n; ++j) {
      for (std::size_t i = 0; i < n; ++i) {
        if (prod[i] != prod[j] && enq[i] < enq[j] && start[i] > start[j]) {
          ++brute;
          break;
        }
      }
    }
    EXPECT_EQ(fifo_inversions(enq, start, prod), brute);
  }
}

TEST(BenchCore, DeliveriesCatchLossDuplicatesAndStrangers) {
  const std::vector<std::uint32_t> exact{3, 1, 0, 2};
  EXPECT_TRUE(count_deliveries(exact, 4).exactly_once());
  const Deliveries lost = count_deliveries(std::vector<std::uint32_t>{0, 3}, 4);
  EXPECT_FALSE(lost.exactly_once());
  EXPECT_EQ(lost.missing, 2U);
  EXPECT_EQ(lost.first_missing, 1U);
  const Deliveries dup = count_deliveries(std::vector<std::uint32_t>{0, 1, 1, 1, 2}, 3);
  EXPECT_EQ(dup.duplicated, 2U);
  EXPECT_EQ(dup.missing, 0U);
  EXPECT_FALSE(dup.exactly_once());
  const Deliveries stranger = count_deliveries(std::vector<std::uint32_t>{0, 7}, 1);
  EXPECT_EQ(stranger.unknown, 1U);
  EXPECT_FALSE(stranger.exactly_once());
}

TEST(BenchCore, SpreadIsMaxOverMin) {
  EXPECT_DOUBLE_EQ(spread(std::vector<double>{2, 3, 6}), 3.0);
  EXPECT_DOUBLE_EQ(spread(std::vector<double>{5}), 1.0);
  EXPECT_DOUBLE_EQ(spread(std::vector<double>{0, 4, 2}), 2.0);
}

}  // namespace
}  // namespace pushstage::bench
