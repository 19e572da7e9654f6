// bench_cli_fuzz.cpp: libFuzzer target for pushstage-bench's input handling. The first byte picks
// what to feed:
//   0-3  an argument vector for parse_command_line(): flags from the CLI's own list (as
//        "--flag value", "--flag=value" or a bare "--flag") with values from a dictionary of
//        edge cases or fuzzed text, plus stray arguments;
//   4    parse_duration_ns, 5 parse_count (fuzzed bounds), 6 parse_number (fuzzed bounds),
//   7    parse_weights, 8 parse_work and the distribution it returns.
// Bad input must end in UsageError or std::invalid_argument (the CLI prints it and exits 2). Any
// other exception, a crash, a sanitizer report, or a result that breaks what the parser promises
// (a count outside its bounds, a work sample outside [0, max]) is a bug and aborts. Built with
// PUSHSTAGE_BENCH_NATS, so --broker is parsed too: a password or token planted in a URL value
// (kSecret) must never appear in an error message, nor in redacted_argument() of the URL.
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_core.hpp"
#include "command_line.hpp"

// report/machine.cpp reads the commit that the real build generates (git_commit.cmake).
namespace pushstage::bench {
extern const char* const kGitCommit;
const char* const kGitCommit = "fuzz";
}  // namespace pushstage::bench

namespace {

using namespace pushstage::bench;

#define FUZZ_CHECK(cond)                                                                    \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "bench_cli_fuzz: %s:%d: check failed: %s\n", __FILE__, __LINE__, \
                   #cond);                                                                  \
      std::abort();                                                                         \
    }                                                                                       \
  } while (0)

// Every flag pushstage-bench takes (command_line.cpp), and a few it does not.
const char* const kFlags[] = {
    "--scenario",  "--impl",        "--events",    "--producers", "--producer-weights",
    "--consumers", "--max-demand",  "--rate",      "--load",      "--arrivals",
    "--work",      "--work-mode",   "--batch",     "--no-pin",    "--reps",
    "--seed",      "--idle-window", "--trace",     "--json",      "--svg",
    "--no-fork",   "--help",        "-h",          "--",          "-",
    "--bogus",     "--broker",      "--processes", "--pin-to",
};

// A password that only the dictionary's URLs below hold: shown anywhere, it leaked.
constexpr const char* kSecret = "hunter2-PLANTED";

// Values that sit on or across the edges of what the flags accept.
const char* const kValues[] = {
    "0",
    "1",
    "2",
    "3",
    "-1",
    "20000",
    "20001",
    "50000000",
    "50000001",
    "65536",
    "65537",
    "1024",
    "1025",
    "256",
    "257",
    "100",
    "101",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "4.0",
    "4.0000001",
    "1e9",
    "1e308",
    "1e309",
    "-0",
    "nan",
    "inf",
    "-inf",
    "0x10",
    " 1",
    "1 ",
    "",
    "1,2",
    "7,1,1,1",
    "1,,1",
    ",",
    "1,-2",
    "1,0",
    "1e-320",
    "seed",
    "throughput",
    "handoff",
    "fairness",
    "oversubscribed",
    "idle",
    "pushstage",
    "pushstage,moodycamel",
    "pushstage,",
    ",pushstage",
    "poisson",
    "fixed",
    "spin",
    "sleep",
    "cpu",
    "cache-domain",
    "const:0",
    "const:500us",
    "uniform:1:2",
    "uniform:2:1",
    "exp:0",
    "exp:1ns",
    "exp:1e15ns",
    "bimodal:1",
    "bimodal:1:1e6:1",
    "bimodal:1000000s:1000000:1",
    "bimodal:1:0.5",
    "pareto:1:2",
    "pareto:1:2:0.01",
    "pareto:1:2:100",
    "pareto:0:1",
    "pareto:1e15ns:1e15ns",
    "10ms",
    "60s",
    "60.000001s",
    "9ms",
    "1e15ns",
    "1e16ns",
    "1.5ms",
    "5parsecs",
    "us",
    "s",
    "/dev/null",
    "/nonexistent/x.json",
    "true",
    "false",
    "--events",
    "-e",
    "nats://127.0.0.1:4222",
    "nats://",
    "nats://alice:hunter2-PLANTED@127.0.0.1:4222",
    "nats://hunter2-PLANTED@127.0.0.1:4222",
    "nats://alice:hunter2-PLANTED@",
    "nats://alice:hunter2-PLANTED@127.0.0.1:4222,nats://bob:hunter2-PLANTED@[::1]:1",
    "tls://alice:hunter2-PLANTED@127.0.0.1:4222",
    "http://alice:hunter2-PLANTED@127.0.0.1",
    "alice:hunter2-PLANTED@127.0.0.1:4222",
    "1,2,4",
    "65",
};

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A dictionary value, or fuzzed text; `oracle` turns false when fuzzed text holds kSecret (then
// it is not a secret the CLI was told about).
std::string value(FuzzedDataProvider& in, bool& oracle) {
  if (in.ConsumeBool()) {
    return kValues[in.ConsumeIntegralInRange<std::size_t>(0, std::size(kValues) - 1)];
  }
  std::string v = in.ConsumeRandomLengthString(40);
  if (has(v, kSecret)) oracle = false;
  return v;
}

// A planted secret reaches no message: every URL value that holds it has it in its user-info.
void check_no_secret(const std::string& message, bool oracle) {
  if (oracle && has(message, kSecret)) {
    std::fprintf(stderr, "bench_cli_fuzz: the planted password leaked: %s\n", message.c_str());
    std::abort();
  }
}

void check_command_line(FuzzedDataProvider& in) {
  std::vector<std::string> args = {"pushstage-bench"};
  bool oracle = true;
  const int n = in.ConsumeIntegralInRange<int>(0, 12);
  for (int i = 0; i < n && in.remaining_bytes() > 0; ++i) {
    const std::size_t pick = in.ConsumeIntegralInRange<std::size_t>(0, std::size(kFlags));
    if (pick == std::size(kFlags)) {  // a stray argument
      args.push_back(value(in, oracle));
      continue;
    }
    const std::string flag = kFlags[pick];
    switch (in.ConsumeIntegralInRange<int>(0, 2)) {
      case 0:
        args.push_back(flag);
        args.push_back(value(in, oracle));
        break;
      case 1:
        args.push_back(flag + "=" + value(in, oracle));
        break;
      default:
        args.push_back(flag);
        break;
    }
  }
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  for (const std::string& a : args) check_no_secret(redacted_argument(a), oracle);
  try {
    const CommandLine cl = parse_command_line(static_cast<int>(args.size()), argv.data());
    if (!cl.help.empty()) return;
    if (cl.broker) {  // what run_broker_main relies on
      FUZZ_CHECK(cl.cases.empty() && cl.scenario == nullptr);
      FUZZ_CHECK(cl.broker->url.rfind("nats://", 0) == 0);
      check_no_secret(redacted_argument(cl.broker->url), oracle);
      FUZZ_CHECK(!cl.broker->processes.empty());
      for (const std::size_t p : cl.broker->processes) FUZZ_CHECK(p >= 1 && p <= 64);
      FUZZ_CHECK(cl.broker->events >= 1 && cl.broker->events <= 10'000'000);
      FUZZ_CHECK(cl.broker->consumers >= 1 && cl.broker->consumers <= 1024);
      FUZZ_CHECK(cl.broker->max_demand >= 1 && cl.broker->max_demand <= 65536);
      FUZZ_CHECK(cl.broker->reps >= 1 && cl.broker->reps <= 100);
      return;
    }
    // What run_main relies on without checking again.
    FUZZ_CHECK(cl.scenario != nullptr);
    FUZZ_CHECK(!cl.cases.empty());
    for (const CaseSpec& c : cl.cases) {
      FUZZ_CHECK(c.reps >= 1 && c.reps <= 100);
      FUZZ_CHECK(!c.impls.empty());
      FUZZ_CHECK(c.config.consumers >= 1 && c.config.consumers <= 1024);
      FUZZ_CHECK(c.config.max_demand >= 1 && c.config.max_demand <= 65536);
      FUZZ_CHECK(c.config.plan.producers >= 1 && c.config.plan.producers <= c.config.plan.events);
      FUZZ_CHECK(c.config.plan.weights.empty() ||
                 c.config.plan.weights.size() == c.config.plan.producers);
      FUZZ_CHECK(std::isfinite(c.config.plan.rate) && c.config.plan.rate >= 0);
    }
  } catch (const UsageError& e) {
    FUZZ_CHECK(e.what()[0] != '\0');
    check_no_secret(e.what(), oracle);
  } catch (const std::invalid_argument& e) {
    FUZZ_CHECK(e.what()[0] != '\0');
    check_no_secret(e.what(), oracle);
  }
}

void check_work(const WorkDist& w, std::uint64_t seed) {
  const double mean = w.mean_ns();
  const double max = w.max_ns();
  FUZZ_CHECK(std::isfinite(mean) && mean >= 0);
  FUZZ_CHECK(max >= 0);
  FUZZ_CHECK(mean <= max * (1 + 1e-9) + 1);
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 16; ++i) {
    const std::int64_t s = w.sample(rng);
    FUZZ_CHECK(s >= 0);
    FUZZ_CHECK(static_cast<double>(s) <= max + 1);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  const int what = in.ConsumeIntegralInRange<int>(0, 8);
  try {
    switch (what) {
      case 4: {
        const std::int64_t ns = parse_duration_ns("--f", in.ConsumeRemainingBytesAsString());
        FUZZ_CHECK(ns >= 0 && ns <= 1'000'000'000'000'000);
        break;
      }
      case 5: {
        const auto lo = in.ConsumeIntegral<std::uint64_t>();
        const auto hi = in.ConsumeIntegral<std::uint64_t>();
        const std::uint64_t v = parse_count("--f", in.ConsumeRemainingBytesAsString(), lo, hi);
        FUZZ_CHECK(v >= lo && v <= hi);
        break;
      }
      case 6: {
        const auto lo = in.ConsumeFloatingPoint<double>();
        const auto hi = in.ConsumeFloatingPoint<double>();
        const double v = parse_number("--f", in.ConsumeRemainingBytesAsString(), lo, hi);
        FUZZ_CHECK(std::isfinite(v) && v >= lo && v <= hi);
        break;
      }
      case 7:
        for (const double w : parse_weights("--f", in.ConsumeRemainingBytesAsString())) {
          FUZZ_CHECK(std::isfinite(w) && w > 0);
        }
        break;
      case 8: {
        const auto seed = in.ConsumeIntegral<std::uint64_t>();
        bool unused = true;
        const std::string text =
            in.ConsumeBool() ? value(in, unused) : in.ConsumeRemainingBytesAsString();
        check_work(parse_work("--work", text), seed);
        break;
      }
      default:
        check_command_line(in);
        break;
    }
  } catch (const UsageError& e) {
    FUZZ_CHECK(e.what()[0] != '\0');
  }
  return 0;
}
