// bench_core.cpp: see bench_core.hpp.
#include "bench_core.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <numeric>
#include <queue>
#include <string>

namespace pushstage::bench {
namespace {

[[noreturn]] void usage(std::string_view flag, std::string_view accepts, std::string_view got) {
  throw UsageError(std::string(flag) + ": " + std::string(accepts) + "; got '" + std::string(got) +
                   "'");
}

bool to_double(std::string_view text, double& out) {
  if (text.empty()) return false;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc() && ptr == end && std::isfinite(out);
}

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  for (;;) {
    const auto at = text.find(sep);
    parts.push_back(text.substr(0, at));
    if (at == std::string_view::npos) return parts;
    text.remove_prefix(at + 1);
  }
}

double uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;  // [0, 1), the same on every platform
}

}  // namespace

const char* const kWorkForms =
    "const:D, uniform:A:B, exp:MEAN, bimodal:BASE[:FACTOR[:P_HIGH]] or pareto:MIN:MAX[:ALPHA] "
    "(durations like 500us, 1.5ms, 200ns; a bare number is us)";

std::int64_t parse_duration_ns(std::string_view flag, std::string_view text) {
  constexpr std::string_view kAccepts = "expects a duration >= 0 like 500us, 1.5ms, 200ns, 2s";
  struct Unit {
    std::string_view suffix;
    double ns;
  };
  constexpr Unit kUnits[] = {{"ns", 1}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}};
  double scale = 1e3;
  std::string_view number = text;
  for (const Unit& u : kUnits) {
    if (text.size() > u.suffix.size() && text.ends_with(u.suffix)) {
      number = text.substr(0, text.size() - u.suffix.size());
      scale = u.ns;
      break;
    }
  }
  double value = 0;
  if (!to_double(number, value) || value < 0 || value * scale > 1e15) usage(flag, kAccepts, text);
  return static_cast<std::int64_t>(std::llround(value * scale));
}

std::uint64_t parse_count(std::string_view flag, std::string_view text, std::uint64_t min,
                          std::uint64_t max) {
  const std::string accepts =
      "expects an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
  std::uint64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end || value < min || value > max) {
    usage(flag, accepts, text);
  }
  return value;
}

double parse_number(std::string_view flag, std::string_view text, double min, double max) {
  double value = 0;
  if (!to_double(text, value) || value < min || value > max) {
    char range[96];
    std::snprintf(range, sizeof range, "expects a number in [%g, %g]", min, max);
    usage(flag, range, text);
  }
  return value;
}

std::vector<double> parse_weights(std::string_view flag, std::string_view text) {
  std::vector<double> weights;
  for (const std::string_view part : split(text, ',')) {
    double w = 0;
    if (!to_double(part, w) || w <= 0) {
      usage(flag, "expects comma-separated positive weights, one per producer, like 7,1,1,1", text);
    }
    weights.push_back(w);
  }
  return weights;
}

WorkDist parse_work(std::string_view flag, std::string_view text) {
  const std::string accepts = std::string("expects ") + kWorkForms;
  const std::vector<std::string_view> parts = split(text, ':');
  const std::string_view kind = parts[0];
  const std::size_t args = parts.size() - 1;
  auto dur = [&](std::size_t i) {
    try {
      return static_cast<double>(parse_duration_ns(flag, parts[i]));
    } catch (const UsageError&) {
      usage(flag, accepts, text);
    }
  };
  auto num = [&](std::size_t i, double min, double max, std::string_view accepts_here) {
    try {
      return parse_number(flag, parts[i], min, max);
    } catch (const UsageError&) {
      usage(flag, accepts_here, text);
    }
  };
  WorkDist w;
  w.text = std::string(text);
  if (kind == "const" && args == 1) {
    w.kind = WorkDist::Kind::kConst;
    w.a = dur(1);
  } else if (kind == "uniform" && args == 2) {
    w.kind = WorkDist::Kind::kUniform;
    w.a = dur(1);
    w.b = dur(2);
    if (w.a > w.b) usage(flag, "uniform:A:B needs A <= B", text);
  } else if (kind == "exp" && args == 1) {
    w.kind = WorkDist::Kind::kExp;
    w.a = dur(1);
    if (w.a <= 0) usage(flag, "exp:MEAN needs MEAN > 0", text);
  } else if (kind == "bimodal" && args >= 1 && args <= 3) {
    w.kind = WorkDist::Kind::kBimodal;
    w.a = dur(1);
    constexpr std::string_view kBimodal =
        "bimodal:BASE:FACTOR:P_HIGH needs FACTOR in [1, 1e6] and P_HIGH in [0, 1]";
    w.b = args >= 2 ? num(2, 1, 1e6, kBimodal) : 10;
    w.c = args >= 3 ? num(3, 0, 1, kBimodal) : 0.1;
    // The high mode must fit a duration like any other (parse_duration_ns's 1e15 ns): beyond
    // 2^63 ns, sample() would turn it into a negative work time.
    if (w.a * w.b > 1e15) usage(flag, "bimodal:BASE:FACTOR needs BASE x FACTOR <= 1e15 ns", text);
  } else if (kind == "pareto" && args >= 2 && args <= 3) {
    w.kind = WorkDist::Kind::kPareto;
    w.a = dur(1);
    w.b = dur(2);
    w.c = args >= 3 ? num(3, 0.01, 100, "pareto:MIN:MAX:ALPHA needs ALPHA in [0.01, 100]") : 1.5;
    if (!(w.a > 0 && w.a < w.b)) usage(flag, "pareto:MIN:MAX needs 0 < MIN < MAX", text);
  } else {
    usage(flag, accepts, text);
  }
  return w;
}

double WorkDist::mean_ns() const {
  switch (kind) {
    case Kind::kConst:
      return a;
    case Kind::kUniform:
      return (a + b) / 2;
    case Kind::kExp:
      return a;
    case Kind::kBimodal:
      return a * ((1 - c) + c * b);
    case Kind::kPareto: {
      const double lo = a;
      const double hi = b;
      const double s = c;
      if (std::abs(s - 1) < 1e-12) return hi * lo / (hi - lo) * std::log(hi / lo);
      const double norm = 1 - std::pow(lo / hi, s);
      return std::pow(lo, s) / norm * s / (s - 1) *
             (1 / std::pow(lo, s - 1) - 1 / std::pow(hi, s - 1));
    }
  }
  return 0;
}

double WorkDist::max_ns() const {
  switch (kind) {
    case Kind::kConst:
      return a;
    case Kind::kUniform:
    case Kind::kPareto:
      return b;
    case Kind::kExp:
      return std::numeric_limits<double>::infinity();
    case Kind::kBimodal:
      return a * b;
  }
  return 0;
}

std::int64_t WorkDist::sample(std::mt19937_64& rng) const {
  double v = 0;
  switch (kind) {
    case Kind::kConst:
      v = a;
      break;
    case Kind::kUniform:
      v = a + (b - a) * uniform01(rng);
      break;
    case Kind::kExp:
      v = -a * std::log1p(-uniform01(rng));
      break;
    case Kind::kBimodal:
      v = uniform01(rng) < c ? a * b : a;
      break;
    case Kind::kPareto: {
      // Inverse CDF of the Pareto distribution truncated to [a, b].
      const double u = uniform01(rng);
      v = a / std::pow(1 - u * (1 - std::pow(a / b, c)), 1 / c);
      v = std::clamp(v, a, b);
      break;
    }
  }
  return static_cast<std::int64_t>(std::llround(v));
}

Plan make_plan(const PlanSpec& spec) {
  const std::size_t n = spec.events;
  const std::size_t p = spec.producers;
  std::vector<double> weights = spec.weights;
  if (weights.empty()) weights.assign(p, 1.0);
  const double total_weight = std::accumulate(weights.begin(), weights.end(), 0.0);

  Plan plan;
  plan.intended.assign(n, 0);
  plan.producer.assign(n, 0);
  plan.work.assign(n, 0);
  plan.per_producer.assign(p, {});

  std::mt19937_64 arrivals_rng(spec.seed);
  if (spec.rate <= 0) {
    // Closed loop: a share per producer, at least one each, the rest to the heaviest.
    std::vector<std::size_t> share(p, 1);
    std::size_t given = p;
    for (std::size_t i = 0; i < p; ++i) {
      const auto extra = static_cast<std::size_t>(
          std::floor(static_cast<double>(n - p) * weights[i] / total_weight));
      share[i] += extra;
      given += extra;
    }
    const auto heaviest = static_cast<std::size_t>(
        std::max_element(weights.begin(), weights.end()) - weights.begin());
    share[heaviest] += n - given;
    std::uint32_t id = 0;
    for (std::size_t i = 0; i < p; ++i) {
      for (std::size_t k = 0; k < share[i]; ++k, ++id) {
        plan.producer[id] = static_cast<std::uint32_t>(i);
        plan.per_producer[i].push_back(id);
      }
    }
  } else {
    // Open loop: the union of P arrival processes, taken in time order.
    std::vector<double> interval(p);
    std::vector<double> next(p);
    for (std::size_t i = 0; i < p; ++i) {
      interval[i] = 1e9 / (spec.rate * weights[i] / total_weight);  // mean ns between arrivals
      next[i] = spec.arrivals == Arrivals::kFixed
                    ? interval[i] * static_cast<double>(i) / static_cast<double>(p)
                    : -interval[i] * std::log1p(-uniform01(arrivals_rng));
    }
    for (std::uint32_t id = 0; id < n; ++id) {
      const auto i =
          static_cast<std::size_t>(std::min_element(next.begin(), next.end()) - next.begin());
      plan.intended[id] = static_cast<std::int64_t>(std::llround(next[i]));
      plan.producer[id] = static_cast<std::uint32_t>(i);
      plan.per_producer[i].push_back(id);
      next[i] += spec.arrivals == Arrivals::kFixed
                     ? interval[i]
                     : -interval[i] * std::log1p(-uniform01(arrivals_rng));
    }
  }
  // Work sizes from their own stream, so changing arrivals does not change work and vice versa.
  std::mt19937_64 work_rng(spec.seed ^ 0x9E3779B97F4A7C15ULL);
  for (std::size_t id = 0; id < n; ++id) plan.work[id] = spec.work.sample(work_rng);
  return plan;
}

std::vector<std::int64_t> ideal_fifo_starts(std::span<const std::int64_t> arrival,
                                            std::span<const std::int64_t> service, std::size_t m) {
  std::vector<std::size_t> order(arrival.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t x, std::size_t y) { return arrival[x] < arrival[y]; });
  // Times at which each consumer is next free; the earliest on top.
  std::priority_queue<std::int64_t, std::vector<std::int64_t>, std::greater<>> free_at;
  for (std::size_t k = 0; k < m; ++k) free_at.push(std::numeric_limits<std::int64_t>::min());
  std::vector<std::int64_t> start(arrival.size());
  for (const std::size_t i : order) {
    const std::int64_t s = std::max(arrival[i], free_at.top());
    free_at.pop();
    free_at.push(s + service[i]);
    start[i] = s;
  }
  return start;
}

double jain_index(std::span<const double> x) {
  double sum = 0;
  double sum_sq = 0;
  for (const double v : x) {
    sum += v;
    sum_sq += v * v;
  }
  if (x.empty() || sum_sq == 0) return 1.0;
  return sum * sum / (static_cast<double>(x.size()) * sum_sq);
}

double graham_bound(std::span<const std::int64_t> service, std::size_t m) {
  if (service.empty() || m == 0) return 0;
  double sum = 0;
  std::int64_t longest = 0;
  for (const auto p : service) {
    sum += static_cast<double>(p);
    longest = std::max(longest, p);
  }
  const auto md = static_cast<double>(m);
  return sum / md + (1 - 1 / md) * static_cast<double>(longest);
}

bool within_graham_bound(double makespan_ns, double bound_ns, double relative, double absolute_ns) {
  return makespan_ns <= bound_ns * (1 + relative) + absolute_ns;
}

std::uint64_t fifo_inversions(std::span<const std::int64_t> enqueue,
                              std::span<const std::int64_t> start,
                              std::span<const std::uint32_t> producer) {
  std::vector<std::size_t> order(enqueue.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t x, std::size_t y) { return enqueue[x] < enqueue[y]; });
  // The latest start among earlier-enqueued events, and the latest among those of a producer
  // other than the first one's: enough to answer "latest start of another producer" for anyone.
  constexpr std::int64_t kNone = std::numeric_limits<std::int64_t>::min();
  std::int64_t best = kNone;
  std::uint32_t best_producer = 0;
  std::int64_t second = kNone;  // the latest start of a producer other than best_producer
  std::uint64_t inversions = 0;
  std::size_t k = 0;
  while (k < order.size()) {
    // Events enqueued at the same instant are not "earlier" than each other: handle them as a
    // group, test them all against the state before the group, then add them.
    std::size_t end = k;
    while (end < order.size() && enqueue[order[end]] == enqueue[order[k]]) ++end;
    for (std::size_t g = k; g < end; ++g) {
      const std::size_t j = order[g];
      const std::int64_t other = producer[j] == best_producer ? second : best;
      if (other > start[j]) ++inversions;
    }
    for (std::size_t g = k; g < end; ++g) {
      const std::size_t i = order[g];
      if (start[i] > best) {
        if (producer[i] != best_producer) second = best;
        best = start[i];
        best_producer = producer[i];
      } else if (producer[i] != best_producer && start[i] > second) {
        second = start[i];
      }
    }
    k = end;
  }
  return inversions;
}

Deliveries count_deliveries(std::span<const std::uint32_t> handled_ids, std::size_t events) {
  Deliveries d;
  std::vector<std::uint32_t> seen(events, 0);
  for (const std::uint32_t id : handled_ids) {
    if (id >= events) {
      ++d.unknown;
    } else if (seen[id]++ != 0) {
      ++d.duplicated;
    }
  }
  for (std::size_t i = 0; i < events; ++i) {
    if (seen[i] != 0) continue;
    if (d.missing++ == 0) d.first_missing = i;
  }
  return d;
}

double spread(std::span<const double> values) {
  double lo = std::numeric_limits<double>::infinity();
  double hi = 0;
  std::size_t n = 0;
  for (const double v : values) {
    if (!(v > 0)) continue;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    ++n;
  }
  return n < 2 ? 1.0 : hi / lo;
}

}  // namespace pushstage::bench
