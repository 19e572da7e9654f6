// partition_dispatcher.cpp: the non-template parts of PartitionDispatcher: options validation
// and the statistics over partitions.
#include "pushstage/modes/partition_dispatcher.hpp"

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pushstage {

namespace detail {

void check_partition_options(std::size_t partitions, bool has_hash, const char* what) {
  constexpr std::size_t kMaxPartitions = 65536;
  if (partitions < 1 || partitions > kMaxPartitions) {
    throw std::invalid_argument("PartitionDispatcher: partitions must be in [1, " +
                                std::to_string(kMaxPartitions) + "]; got " +
                                std::to_string(partitions));
  }
  if (!has_hash) {
    throw std::invalid_argument(std::string("PartitionDispatcher: ") + what + " must not be empty");
  }
}

void check_partition_names(const std::vector<std::string>& names) {
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (names[i].empty()) {
      throw std::invalid_argument("PartitionDispatcher: names[" + std::to_string(i) +
                                  "] must not be empty");
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (names[j] == names[i]) {
        throw std::invalid_argument("PartitionDispatcher: names must be distinct; '" + names[i] +
                                    "' is names[" + std::to_string(j) + "] and names[" +
                                    std::to_string(i) + "]");
      }
    }
  }
}

void throw_no_such_partition(std::size_t partition, std::size_t partitions) {
  throw std::out_of_range("PartitionDispatcher: the router sent an event to partition " +
                          std::to_string(partition) + "; partitions are [0, " +
                          std::to_string(partitions - 1) + "]");
}

void throw_no_partition_named(std::string_view name, const std::vector<std::string>& names) {
  std::string known;
  for (const std::string& n : names) known += (known.empty() ? "" : ", ") + n;
  throw std::invalid_argument("PartitionDispatcher: no partition is named '" + std::string(name) +
                              "'; partitions: " + (names.empty() ? "unnamed" : known));
}

}  // namespace detail

DispatcherStats PartitionStats::total() const noexcept {
  DispatcherStats t;
  for (const DispatcherStats& p : partitions) {
    t.pushed += p.pushed;
    t.popped += p.popped;
    t.rejected += p.rejected;
    t.dropped += p.dropped;
    t.refused_closed += p.refused_closed;
    t.buffered += p.buffered;
    t.parked += p.parked;
    t.spinning += p.spinning;
  }
  return t;
}

std::size_t PartitionStats::hottest() const noexcept {
  std::size_t best = 0;
  for (std::size_t i = 1; i < partitions.size(); ++i) {
    if (partitions[i].pushed > partitions[best].pushed) best = i;
  }
  return best;
}

double PartitionStats::skew() const noexcept {
  if (partitions.empty()) return 1;
  const std::uint64_t total_pushed = total().pushed;
  if (total_pushed == 0) return 1;
  const double mean = static_cast<double>(total_pushed) / static_cast<double>(partitions.size());
  return static_cast<double>(partitions[hottest()].pushed) / mean;
}

}  // namespace pushstage
