// bench_core.hpp: the pure logic of pushstage-bench, kept apart from threads and clocks so that
// tests can check it: parsing of flag values, the seeded arrival and work plan, the ideal FIFO
// replay, Jain's index, the Graham bound, FIFO inversions.
// Threading: plain functions and value types; no shared state.
// Failure:   parse_* throw UsageError with a one-line message that names the flag and what it
//            accepts; the CLI prints it and exits with status 2.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pushstage::bench {

// Bad command-line input. what() is one line: "--flag: what it accepts; got 'x'".
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// ---- flag values ----

// A duration such as 500us, 1.5ms, 200ns, 2s; a bare number counts as microseconds. >= 0.
[[nodiscard]] std::int64_t parse_duration_ns(std::string_view flag, std::string_view text);
// An integer in [min, max].
[[nodiscard]] std::uint64_t parse_count(std::string_view flag, std::string_view text,
                                        std::uint64_t min, std::uint64_t max);
// A finite number in [min, max].
[[nodiscard]] double parse_number(std::string_view flag, std::string_view text, double min,
                                  double max);
// Comma-separated positive weights, e.g. "7,1,1,1".
[[nodiscard]] std::vector<double> parse_weights(std::string_view flag, std::string_view text);

// ---- work sizes ----

// How long the handler works on an event, drawn from a seeded generator.
struct WorkDist {
  enum class Kind { kConst, kUniform, kExp, kBimodal, kPareto };
  Kind kind = Kind::kConst;
  // In ns. const: a. uniform: [a, b]. exp: mean a. bimodal: a with probability 1-c, else a*b.
  // pareto (bounded): min a, max b, shape c.
  double a = 0;
  double b = 0;
  double c = 0;
  std::string text;  // as given on the command line

  [[nodiscard]] double mean_ns() const;
  // The largest value it can produce; exp has none (infinity).
  [[nodiscard]] double max_ns() const;
  [[nodiscard]] std::int64_t sample(std::mt19937_64& rng) const;
};

// const:D | uniform:A:B | exp:MEAN | bimodal:BASE[:FACTOR[:P_HIGH]] | pareto:MIN:MAX[:ALPHA].
// Defaults: bimodal x10 with 10% high, pareto shape 1.5.
[[nodiscard]] WorkDist parse_work(std::string_view flag, std::string_view text);
// The accepted forms, for --help and error messages.
extern const char* const kWorkForms;

// ---- the plan every implementation replays ----

enum class Arrivals { kPoisson, kFixed };

struct PlanSpec {
  std::size_t events = 0;
  std::size_t producers = 1;
  std::vector<double> weights;  // per producer; empty: equal
  double rate = 0;              // events/s over all producers; 0: closed loop (as fast as possible)
  Arrivals arrivals = Arrivals::kPoisson;
  WorkDist work;
  std::uint64_t seed = 1;
};

// Event ids are 0..events-1 in planned arrival order (closed loop: producer by producer).
struct Plan {
  std::vector<std::int64_t> intended;  // ns after the start; 0 in a closed loop
  std::vector<std::uint32_t> producer;
  std::vector<std::int64_t> work;                        // ns of work for the handler
  std::vector<std::vector<std::uint32_t>> per_producer;  // each producer's ids in push order
  [[nodiscard]] std::size_t size() const { return work.size(); }
};

// Deterministic for a given spec (same seed, same plan on any machine with this libstdc++).
// Open loop: each producer is its own arrival process (Poisson or fixed-rate, staggered) at
// rate * weight / sum(weights); the events are the first `events` arrivals of their union.
// Closed loop: events split over producers in proportion to the weights, each at least one.
// Requires events >= producers >= 1 (the CLI checks that first).
[[nodiscard]] Plan make_plan(const PlanSpec& spec);

// ---- analysis ----

// The starts of a zero-overhead, work-conserving FIFO dispatcher with m consumers, replaying the
// same arrivals and service times: in arrival order (ties by index), start_i = max(arrival_i,
// earliest time a consumer is free). Indexed like the inputs.
[[nodiscard]] std::vector<std::int64_t> ideal_fifo_starts(std::span<const std::int64_t> arrival,
                                                          std::span<const std::int64_t> service,
                                                          std::size_t m);

// Jain's fairness index (sum x)^2 / (n * sum x^2): 1 when all equal, 1/n when one has all.
// 1 for an empty or all-zero input (nobody is favoured).
[[nodiscard]] double jain_index(std::span<const double> x);

// Graham's bound for list scheduling of a batch on m machines: sum(p)/m + (1 - 1/m) * max(p).
// Any work-conserving dispatcher finishes a batch by then, plus its own overhead.
[[nodiscard]] double graham_bound(std::span<const std::int64_t> service, std::size_t m);
// The check a batch run must pass: makespan <= bound * (1 + relative) + absolute_ns.
[[nodiscard]] bool within_graham_bound(double makespan_ns, double bound_ns, double relative,
                                       double absolute_ns);

// Events that started before some event of another producer that was enqueued earlier.
[[nodiscard]] std::uint64_t fifo_inversions(std::span<const std::int64_t> enqueue,
                                            std::span<const std::int64_t> start,
                                            std::span<const std::uint32_t> producer);

// The exactly-once check: every id in [0, events) handled once.
struct Deliveries {
  std::uint64_t missing = 0;      // ids never handled
  std::uint64_t duplicated = 0;   // handler calls beyond the first for an id
  std::uint64_t unknown = 0;      // ids outside [0, events)
  std::size_t first_missing = 0;  // valid when missing != 0
  [[nodiscard]] bool exactly_once() const {
    return missing == 0 && duplicated == 0 && unknown == 0;
  }
};
[[nodiscard]] Deliveries count_deliveries(std::span<const std::uint32_t> handled_ids,
                                          std::size_t events);

// max / min over the positive values (others are skipped); 1 when fewer than two are positive.
[[nodiscard]] double spread(std::span<const double> values);

}  // namespace pushstage::bench
