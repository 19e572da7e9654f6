// histogram_test.cpp: Histogram against exact sorted percentiles, plus its edge cases.
#include "pushstage/histogram.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

namespace pushstage {
namespace {

// The precision the header promises for value_at_percentile().
constexpr double kRelativeError = 1.0 / 256;

// Nearest rank, computed the way the header defines it.
std::uint64_t exact_percentile(const std::vector<std::uint64_t>& sorted, double p) {
  if (p <= 0) return sorted.front();
  if (p >= 100) return sorted.back();
  auto rank = static_cast<std::uint64_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  rank = std::clamp<std::uint64_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

void expect_matches_exact(std::vector<std::uint64_t> values) {
  Histogram h;
  for (const auto v : values) h.record(v);
  std::sort(values.begin(), values.end());
  ASSERT_EQ(h.count(), values.size());
  EXPECT_EQ(h.min(), values.front());
  EXPECT_EQ(h.max(), values.back());
  for (const double p : {0.0, 1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 100.0}) {
    const auto exact = static_cast<double>(exact_percentile(values, p));
    const auto got = static_cast<double>(h.value_at_percentile(p));
    EXPECT_LE(std::abs(got - exact), exact * kRelativeError) << "p" << p << " exact " << exact;
  }
}

TEST(Histogram, PercentilesOfUniformDataAreWithinPrecision) {
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<std::uint64_t> dist(0, 5'000'000);
  std::vector<std::uint64_t> v(100'000);
  for (auto& x : v) x = dist(rng);
  expect_matches_exact(v);
}

TEST(Histogram, PercentilesOfHeavyTailedDataAreWithinPrecision) {
  // Log-uniform from 1 ns to 1 hour: every octave of the range gets values.
  std::mt19937_64 rng(2);
  std::uniform_real_distribution<double> exponent(0.0, std::log(3.6e12));
  std::vector<std::uint64_t> v(100'000);
  for (auto& x : v) x = static_cast<std::uint64_t>(std::exp(exponent(rng)));
  expect_matches_exact(v);
}

TEST(Histogram, PercentilesOfExponentialDataAreWithinPrecision) {
  std::mt19937_64 rng(3);
  std::exponential_distribution<double> dist(1.0 / 20'000.0);
  std::vector<std::uint64_t> v(50'001);
  for (auto& x : v) x = static_cast<std::uint64_t>(dist(rng));
  expect_matches_exact(v);
}

TEST(Histogram, SmallValuesAreExact) {
  Histogram h;
  for (std::uint64_t v = 0; v < 256; ++v) h.record(v);
  for (std::uint64_t v = 0; v < 256; ++v) {
    EXPECT_EQ(Histogram::bucket_lowest(Histogram::bucket_of(v)), v);
    EXPECT_EQ(Histogram::bucket_highest(Histogram::bucket_of(v)), v);
  }
  EXPECT_EQ(h.value_at_percentile(50), 127U);  // rank 128 of 0..255
}

TEST(Histogram, BucketsTileTheRangeWithoutGaps) {
  for (std::size_t i = 0; i + 1 < Histogram::kBuckets; ++i) {
    const auto lo = Histogram::bucket_lowest(i);
    const auto hi = Histogram::bucket_highest(i);
    ASSERT_LE(lo, hi);
    ASSERT_EQ(Histogram::bucket_of(lo), i);
    ASSERT_EQ(Histogram::bucket_of(hi), i);
    ASSERT_EQ(hi + 1, Histogram::bucket_lowest(i + 1));
    // The width promise: at most 1/128 of the lowest value (exact buckets have width 1).
    if (lo >= 2 * Histogram::kSubBuckets) {
      ASSERT_LE((hi - lo + 1) * Histogram::kSubBuckets, lo);
    }
  }
  EXPECT_EQ(Histogram::bucket_highest(Histogram::kBuckets - 1), Histogram::kLimit - 1);
}

TEST(Histogram, EmptyReportsZeros) {
  const Histogram h;
  EXPECT_EQ(h.count(), 0U);
  EXPECT_EQ(h.min(), 0U);
  EXPECT_EQ(h.max(), 0U);
  EXPECT_EQ(h.mean(), 0.0);
  EXPECT_EQ(h.value_at_percentile(50), 0U);
  EXPECT_TRUE(h.nonzero_buckets().empty());
}

TEST(Histogram, SingleValueIsEveryPercentile) {
  Histogram h;
  h.record(123'456'789);
  for (const double p : {0.0, 0.001, 50.0, 99.9, 100.0}) {
    EXPECT_EQ(h.value_at_percentile(p), 123'456'789U);
  }
  EXPECT_EQ(h.mean(), 123'456'789.0);
}

TEST(Histogram, ZeroIsAValue) {
  Histogram h;
  h.record(0, 3);
  h.record(10);
  EXPECT_EQ(h.count(), 4U);
  EXPECT_EQ(h.min(), 0U);
  EXPECT_EQ(h.value_at_percentile(75), 0U);
  EXPECT_EQ(h.value_at_percentile(76), 10U);
}

TEST(Histogram, ValuesBeyondTheRangeKeepAnExactMax) {
  Histogram h;
  h.record(1);
  h.record(Histogram::kLimit * 4);
  EXPECT_EQ(h.max(), Histogram::kLimit * 4);
  EXPECT_EQ(h.value_at_percentile(100), Histogram::kLimit * 4);
  EXPECT_EQ(h.count_in(Histogram::kBuckets - 1), 1U);
  // Clamped into [min, max]: never above the largest value recorded.
  EXPECT_LE(h.value_at_percentile(99), h.max());
}

TEST(Histogram, OutOfRangePercentilesClamp) {
  Histogram h;
  for (std::uint64_t v = 1; v <= 1000; ++v) h.record(v * 1000);
  EXPECT_EQ(h.value_at_percentile(-5), 1000U);
  EXPECT_EQ(h.value_at_percentile(250), 1'000'000U);
}

TEST(Histogram, MergeEqualsRecordingEverythingInOne) {
  std::mt19937_64 rng(4);
  std::uniform_int_distribution<std::uint64_t> dist(0, 10'000'000);
  Histogram all;
  Histogram a;
  Histogram b;
  Histogram empty;
  for (int i = 0; i < 10'000; ++i) {
    const auto v = dist(rng);
    all.record(v);
    (i % 3 == 0 ? a : b).record(v);
  }
  Histogram merged;
  merged.merge(empty);
  merged.merge(a);
  merged.merge(b);
  merged.merge(empty);
  EXPECT_EQ(merged.count(), all.count());
  EXPECT_EQ(merged.min(), all.min());
  EXPECT_EQ(merged.max(), all.max());
  EXPECT_DOUBLE_EQ(merged.mean(), all.mean());
  EXPECT_EQ(merged.nonzero_buckets(), all.nonzero_buckets());
  for (const double p : {1.0, 50.0, 99.0, 99.9}) {
    EXPECT_EQ(merged.value_at_percentile(p), all.value_at_percentile(p));
  }
}

TEST(Histogram, MeanIsExact) {
  Histogram h;
  h.record(1);
  h.record(2, 2);
  h.record(1'000'000'007);
  EXPECT_DOUBLE_EQ(h.mean(), (1.0 + 4.0 + 1'000'000'007.0) / 4.0);
}

TEST(Histogram, ResetForgetsEverything) {
  Histogram h;
  h.record(5, 10);
  h.reset();
  EXPECT_EQ(h.count(), 0U);
  EXPECT_TRUE(h.nonzero_buckets().empty());
  h.record(7);
  EXPECT_EQ(h.min(), 7U);
}

TEST(Histogram, RoundTripsThroughBuckets) {
  Histogram h;
  for (std::uint64_t v = 3; v < 10'000'000; v = v * 3 / 2 + 1) h.record(v);
  const auto buckets = h.nonzero_buckets();
  const Histogram copy =
      Histogram::from_buckets(buckets, h.min(), h.max(), h.mean() * static_cast<double>(h.count()));
  EXPECT_EQ(copy.count(), h.count());
  EXPECT_EQ(copy.min(), h.min());
  EXPECT_EQ(copy.max(), h.max());
  EXPECT_EQ(copy.nonzero_buckets(), buckets);
  EXPECT_EQ(copy.value_at_percentile(90), h.value_at_percentile(90));
}

TEST(Histogram, FromBucketsRejectsInconsistentInput) {
  const std::vector<std::pair<std::size_t, std::uint64_t>> bad_index{{Histogram::kBuckets, 1}};
  EXPECT_THROW((void)Histogram::from_buckets(bad_index, 0, 0, 0), std::invalid_argument);
  const std::vector<std::pair<std::size_t, std::uint64_t>> one{{Histogram::bucket_of(500), 1}};
  EXPECT_THROW((void)Histogram::from_buckets(one, 1, 500, 500), std::invalid_argument);
  EXPECT_NO_THROW((void)Histogram::from_buckets(one, 500, 500, 500));
}

}  // namespace
}  // namespace pushstage
