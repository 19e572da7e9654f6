// histogram.cpp: the non-inline parts of Histogram (see pushstage/histogram.hpp for the contract).
// Bucket layout: index v for v < 2*kSubBuckets (exact); above, bucket kSubBuckets*(s+1) + k counts
// the values whose top kSubBucketBits+1 bits read kSubBuckets + k, shifted left by s.
#include "pushstage/histogram.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace pushstage {

Histogram::Histogram() : counts_(kBuckets, 0) {}

void Histogram::merge(const Histogram& other) noexcept {
  if (other.count_ == 0) return;
  for (std::size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  if (count_ == 0 || other.min_ < min_) min_ = other.min_;
  if (count_ == 0 || other.max_ > max_) max_ = other.max_;
  count_ += other.count_;
  sum_ += other.sum_;
}

void Histogram::reset() noexcept {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = 0;
  min_ = 0;
  max_ = 0;
  sum_ = 0;
}

double Histogram::mean() const noexcept {
  return count_ == 0 ? 0.0 : sum_ / static_cast<double>(count_);
}

std::uint64_t Histogram::bucket_lowest(std::size_t index) noexcept {
  if (index < 2 * kSubBuckets) return index;
  const std::size_t shift = index / kSubBuckets - 1;
  return (kSubBuckets + index % kSubBuckets) << shift;
}

std::uint64_t Histogram::bucket_highest(std::size_t index) noexcept {
  if (index < 2 * kSubBuckets) return index;
  const std::size_t shift = index / kSubBuckets - 1;
  return bucket_lowest(index) + (std::uint64_t{1} << shift) - 1;
}

std::uint64_t Histogram::value_at_percentile(double p) const noexcept {
  if (count_ == 0) return 0;
  if (!(p > 0)) return min_;  // also NaN
  if (p >= 100) return max_;
  auto rank = static_cast<std::uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<std::uint64_t>(rank, 1, count_);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      // The middle of the bucket is within half a bucket width of every value in it.
      const std::uint64_t lo = bucket_lowest(i);
      const std::uint64_t mid = lo + (bucket_highest(i) - lo) / 2;
      return std::clamp(mid, min_, max_);
    }
  }
  return max_;  // unreachable: the counts sum to count_
}

std::vector<std::pair<std::size_t, std::uint64_t>> Histogram::nonzero_buckets() const {
  std::vector<std::pair<std::size_t, std::uint64_t>> out;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    if (counts_[i] != 0) out.emplace_back(i, counts_[i]);
  }
  return out;
}

Histogram Histogram::from_buckets(std::span<const std::pair<std::size_t, std::uint64_t>> buckets,
                                  std::uint64_t min, std::uint64_t max, double sum) {
  Histogram h;
  std::size_t lowest = kBuckets;
  std::size_t highest = 0;
  for (const auto& [index, n] : buckets) {
    if (index >= kBuckets) {
      throw std::invalid_argument("Histogram::from_buckets: bucket index " + std::to_string(index) +
                                  " is not below " + std::to_string(kBuckets));
    }
    if (n == 0) continue;
    h.counts_[index] += n;
    h.count_ += n;
    lowest = std::min(lowest, index);
    highest = std::max(highest, index);
  }
  if (h.count_ == 0) return h;
  if (bucket_of(min) != lowest || bucket_of(max) != highest || min > max) {
    throw std::invalid_argument("Histogram::from_buckets: min " + std::to_string(min) +
                                " and max " + std::to_string(max) +
                                " do not match the lowest and highest bucket");
  }
  h.min_ = min;
  h.max_ = max;
  h.sum_ = sum;
  return h;
}

}  // namespace pushstage
