// consumer_pool.cpp: the non-template part of ConsumerPool and Stage: options validation and
// where each consumer runs (through the process-wide CpuAllocator).
#include <algorithm>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "cpu_allocator.hpp"
#include "pushstage/cpus.hpp"
#include "pushstage/pool/pool_core.hpp"

namespace pushstage::detail {
namespace {

constexpr std::size_t kMaxConsumers = 65536;
constexpr std::size_t kMaxDemand = 65536;
constexpr unsigned kMaxAttempts = 100;
constexpr double kMaxMultiplier = 100;

std::string list(const std::vector<int>& cpus) {
  std::string out = "{";
  for (std::size_t i = 0; i < cpus.size(); ++i) {
    if (i != 0) out += ",";
    out += std::to_string(cpus[i]);
  }
  return out + "}";
}

}  // namespace

void check_retry(const RetryPolicy& r, std::string_view prefix) {
  const std::string p(prefix);
  if (r.max_attempts < 1 || r.max_attempts > kMaxAttempts) {
    throw std::invalid_argument(p + "max_attempts must be in [1, " + std::to_string(kMaxAttempts) +
                                "]; got " + std::to_string(r.max_attempts));
  }
  if (r.backoff.count() < 0) {
    throw std::invalid_argument(p + "backoff must be >= 0 ns; got " +
                                std::to_string(r.backoff.count()) + " ns");
  }
  if (!(r.multiplier >= 1 && r.multiplier <= kMaxMultiplier)) {
    throw std::invalid_argument(p + "multiplier must be in [1, " +
                                std::to_string(static_cast<int>(kMaxMultiplier)) + "]; got " +
                                std::to_string(r.multiplier));
  }
  if (r.max_backoff < r.backoff) {
    throw std::invalid_argument(p + "max_backoff must be >= " + p + "backoff (" +
                                std::to_string(r.backoff.count()) + " ns); got " +
                                std::to_string(r.max_backoff.count()) + " ns");
  }
}

PoolPlan plan_pool(const PoolOptions& options, std::string_view prefix) {
  const std::string p(prefix);
  if (options.consumers < 1 || options.consumers > kMaxConsumers) {
    throw std::invalid_argument(p + "consumers must be in [1, " + std::to_string(kMaxConsumers) +
                                "]; got " + std::to_string(options.consumers));
  }
  if (options.max_demand < 1 || options.max_demand > kMaxDemand) {
    throw std::invalid_argument(p + "max_demand must be in [1, " + std::to_string(kMaxDemand) +
                                "]; got " + std::to_string(options.max_demand));
  }
  if (options.demand != DemandMode::Automatic && options.demand != DemandMode::Manual) {
    throw std::invalid_argument(p + "demand must be Automatic or Manual");
  }
  check_retry(options.retry, p + "retry.");
  if (options.deadline.count() < 0) {
    throw std::invalid_argument(p + "deadline must be >= 0 ns (0: none); got " +
                                std::to_string(options.deadline.count()) + " ns");
  }
  PoolPlan plan;
  if (options.min_demand == PoolOptions::kAutoMinDemand) {
    plan.min_demand = options.max_demand / 2;
  } else if (options.min_demand >= options.max_demand) {
    throw std::invalid_argument(p + "min_demand must be in [0, max_demand - 1] = [0, " +
                                std::to_string(options.max_demand - 1) + "]; got " +
                                std::to_string(options.min_demand));
  } else {
    plan.min_demand = options.min_demand;
  }
  if (options.pin_to != PinTo::Cpu && options.pin_to != PinTo::CacheDomain) {
    throw std::invalid_argument(p + "pin_to must be Cpu or CacheDomain");
  }
  if (!options.pin) {
    if (!options.cpus.empty()) {
      throw std::invalid_argument(p + "cpus must be empty when pin is false; got " +
                                  list(options.cpus));
    }
    return plan;
  }
  const std::vector<int> allowed = allowed_cpus();
  std::vector<int> use = options.cpus.empty() ? allowed : options.cpus;
  for (const int cpu : use) {
    if (!std::binary_search(allowed.begin(), allowed.end(), cpu)) {
      throw std::invalid_argument(p + "cpus: CPU " + std::to_string(cpu) +
                                  " is not one this process may use; allowed: " + list(allowed));
    }
  }
  plan.pin_cpus = std::move(use);
  plan.pin_to = options.pin_to;
  plan.named_cpus = !options.cpus.empty();
  return plan;
}

int take_cpu(const PoolPlan& plan, std::size_t index) noexcept {
  if (plan.pin_cpus.empty()) return -1;
  CpuAllocator& allocator = CpuAllocator::instance();
  int cpu = -1;
  if (plan.named_cpus) {
    cpu = plan.pin_cpus[index % plan.pin_cpus.size()];
    allocator.take(cpu);
  } else {
    cpu = allocator.take_least_loaded(plan.pin_cpus);
  }
  const bool pinned =
      plan.pin_to == PinTo::CacheDomain ? pin_this_thread(cache_domain(cpu)) : pin_this_thread(cpu);
  if (pinned) return cpu;
  allocator.give_back(cpu);  // the kernel refused (the affinity mask changed): run unpinned
  return -1;
}

void give_back_cpu(int cpu) noexcept {
  if (cpu >= 0) CpuAllocator::instance().give_back(cpu);
}

std::vector<int> plan_consumer_cpus(const PoolOptions& options) {
  const PoolPlan plan = plan_pool(options);
  std::vector<int> out(options.consumers, -1);
  if (plan.pin_cpus.empty()) return out;
  if (!plan.named_cpus) return CpuAllocator::instance().preview(plan.pin_cpus, options.consumers);
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = plan.pin_cpus[i % plan.pin_cpus.size()];
  return out;
}

}  // namespace pushstage::detail
