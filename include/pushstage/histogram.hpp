// pushstage/histogram.hpp: a log-linear histogram of non-negative integers (latencies in ns).
//
// Threading: single writer per instance; nothing is atomic. Record on one thread, then merge the
//            per-thread histograms after the run (never average percentiles of separate runs).
// Precision: values below 128 are kept exactly; above, each power of two is split into 128
//            buckets, so a bucket is at most 1/128 of its lowest value wide. value_at_percentile()
//            returns a value within 1/256 (0.4%) of the exact nearest-rank percentile, and never
//            outside [min(), max()]. min(), max(), count() and mean() are exact (mean up to double
//            rounding).
// Range:     0 .. 2^42 - 1 (about 73 minutes in ns). Larger values count in the last bucket;
//            max() still reports them exactly.
// Memory:    a fixed 36 KiB of counters per instance, allocated by the constructor; record() and
//            merge() never allocate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace pushstage {

class Histogram {
 public:
  // Bits of precision per power of two: 2^7 = 128 buckets per octave.
  static constexpr unsigned kSubBucketBits = 7;
  static constexpr std::uint64_t kSubBuckets = std::uint64_t{1} << kSubBucketBits;
  // Values at or above kLimit count in the last bucket.
  static constexpr unsigned kLimitBits = 42;
  static constexpr std::uint64_t kLimit = std::uint64_t{1} << kLimitBits;
  static constexpr std::size_t kBuckets = kSubBuckets + (kLimitBits - kSubBucketBits) * kSubBuckets;

  Histogram();

  // Counts `value` `times` times. O(1), no allocation.
  void record(std::uint64_t value, std::uint64_t times = 1) noexcept {
    if (times == 0) return;
    counts_[bucket_of(value)] += times;
    if (count_ == 0 || value < min_) min_ = value;
    if (count_ == 0 || value > max_) max_ = value;
    count_ += times;
    sum_ += static_cast<double>(value) * static_cast<double>(times);
  }

  // Adds every value recorded in `other`. O(kBuckets).
  void merge(const Histogram& other) noexcept;
  // Forgets every value.
  void reset() noexcept;

  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
  // 0 when empty.
  [[nodiscard]] std::uint64_t min() const noexcept { return min_; }
  [[nodiscard]] std::uint64_t max() const noexcept { return max_; }
  [[nodiscard]] double mean() const noexcept;
  // The nearest-rank percentile: the smallest recorded value v such that at least p% of the
  // values are <= v, within the precision above. p is clamped to [0, 100]; p = 0 gives min(),
  // p = 100 gives max(). 0 when empty.
  [[nodiscard]] std::uint64_t value_at_percentile(double p) const noexcept;

  // ---- buckets, for plotting and for moving a histogram between processes ----

  // The bucket that counts `value`.
  [[nodiscard]] static std::size_t bucket_of(std::uint64_t value) noexcept {
    if (value < kSubBuckets) return static_cast<std::size_t>(value);
    if (value >= kLimit) return kBuckets - 1;
    const unsigned top = 63U - static_cast<unsigned>(__builtin_clzll(value));  // >= kSubBucketBits
    const unsigned shift = top - kSubBucketBits;
    return static_cast<std::size_t>(kSubBuckets * (shift + 1) + ((value >> shift) - kSubBuckets));
  }
  // The smallest and largest value that bucket `index` (< kBuckets) counts.
  [[nodiscard]] static std::uint64_t bucket_lowest(std::size_t index) noexcept;
  [[nodiscard]] static std::uint64_t bucket_highest(std::size_t index) noexcept;
  [[nodiscard]] std::uint64_t count_in(std::size_t index) const noexcept { return counts_[index]; }
  // The non-empty buckets as (index, count), ascending.
  [[nodiscard]] std::vector<std::pair<std::size_t, std::uint64_t>> nonzero_buckets() const;
  // Rebuilds a histogram from nonzero_buckets(), min(), max() and the sum of values (mean * count).
  // Throws std::invalid_argument when an index is out of range or min/max lie outside the buckets.
  [[nodiscard]] static Histogram from_buckets(
      std::span<const std::pair<std::size_t, std::uint64_t>> buckets, std::uint64_t min,
      std::uint64_t max, double sum);

 private:
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  std::uint64_t min_ = 0;
  std::uint64_t max_ = 0;
  double sum_ = 0;
};

}  // namespace pushstage
