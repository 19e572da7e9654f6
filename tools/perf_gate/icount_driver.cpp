// icount_driver.cpp: single-threaded drivers of pushstage's fast paths for the perf gate's
// instruction counts (tools/perf_gate/perf_gate.py runs this under callgrind).
//
// Each case sets up a dispatcher and warms it up (moodycamel allocates its blocks, the implicit
// producer table is built) with instrumentation off, then counts exactly its measured loop:
//   CALLGRIND_START_INSTRUMENTATION; CALLGRIND_ZERO_STATS; <loop>; CALLGRIND_DUMP_STATS_AT(name)
// Run under `valgrind --tool=callgrind --instr-atstart=no`; each dump is named after its case.
// Iteration counts are fixed, so the counts repeat exactly from run to run. Outside valgrind the
// client requests do nothing and the driver runs natively (a smoke test of the cases).
//
// Every loop checks the result of each call it makes and the driver exits non-zero if one did not
// take the path the case is named for (so a count always belongs to the path it claims to measure).
//
// Usage: perf_gate_icount [--list | --info | case ...]   (no case: all cases, in order)
//   prints "case <name> ops <n>" for each case it ran; --info prints how it was built.
#include <valgrind/callgrind.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string_view>
#include <vector>

#include "icount_measure.hpp"
#include "pushstage/dispatcher.hpp"
#include "pushstage/histogram.hpp"

#ifndef PUSHSTAGE_PERF_GATE_BUILD
#define PUSHSTAGE_PERF_GATE_BUILD "unknown"
#endif

namespace pushstage_icount {
std::uint64_t g_wrong = 0;
}  // namespace pushstage_icount

namespace {

using pushstage::Dispatcher;
using pushstage::DispatcherOptions;
using pushstage::Overflow;
using pushstage::PushResult;
using pushstage_icount::expect;
using pushstage_icount::g_wrong;
using pushstage_icount::kBoundedCapacity;
using pushstage_icount::kBulk;
using pushstage_icount::kOps;
using pushstage_icount::kWarmup;
using pushstage_icount::measure;
using pushstage_icount::push_pop_tokenless;

struct Event {
  std::uint64_t seq = 0;
  std::uint64_t stamp = 0;
};
using D = Dispatcher<Event>;

DispatcherOptions bounded(Overflow overflow) {
  DispatcherOptions o;
  o.capacity = kBoundedCapacity;
  o.overflow = overflow;
  return o;
}

// Producer::push then Consumer::pop of the buffered event, one at a time: the push fast path
// (begin_push, enqueue, end_push) and the pop fast path (try_dequeue, note_popped).
void push_pop_handles(const char* name) {
  D d;
  auto p = d.producer();
  auto c = d.consumer();
  std::uint64_t seq = 0;
  measure(name, kOps, kWarmup, [&](std::uint64_t n) {
    for (std::uint64_t i = 0; i < n; ++i) {
      expect(p.push(Event{seq, 0}) == PushResult::Pushed);
      const std::optional<Event> e = c.pop();
      expect(e.has_value() && e->seq == seq);
      ++seq;
    }
  });
}

// 64 pushes, then 64 pops, through handles: the queue holds events and crosses block boundaries.
void push_pop_burst(const char* name) {
  D d;
  auto p = d.producer();
  auto c = d.consumer();
  std::uint64_t seq = 0;
  measure(name, kOps, kWarmup, [&](std::uint64_t n) {
    for (std::uint64_t i = 0; i < n; i += kBulk) {
      for (std::size_t k = 0; k < kBulk; ++k)
        expect(p.push(Event{seq + k, 0}) == PushResult::Pushed);
      for (std::size_t k = 0; k < kBulk; ++k) {
        const std::optional<Event> e = c.try_pop();
        expect(e.has_value() && e->seq == seq + k);
      }
      seq += kBulk;
    }
  });
}

// Producer::push_bulk of 64, then Consumer::try_pop_bulk of 64. ops counts events.
void bulk_push_pop(const char* name) {
  D d;
  auto p = d.producer();
  auto c = d.consumer();
  std::array<Event, kBulk> in{};
  std::array<Event, kBulk> out{};
  std::uint64_t seq = 0;
  measure(name, kOps, kWarmup, [&](std::uint64_t n) {
    for (std::uint64_t i = 0; i < n; i += kBulk) {
      for (std::size_t k = 0; k < kBulk; ++k) in[k].seq = seq + k;
      expect(p.push_bulk(in.begin(), in.end()) == kBulk);
      expect(c.try_pop_bulk(out.begin(), kBulk) == kBulk);
      expect(out[kBulk - 1].seq == seq + kBulk - 1);
      seq += kBulk;
    }
  });
}

// Consumer::try_pop on an empty dispatcher: what a polling consumer pays per miss.
void try_pop_empty(const char* name) {
  D d;
  auto c = d.consumer();
  measure(name, kOps, kWarmup, [&](std::uint64_t n) {
    for (std::uint64_t i = 0; i < n; ++i) expect(!c.try_pop().has_value());
  });
}

// Consumer::pop_for(0) on an empty dispatcher: the way into parking up to the point where the
// deadline stops it (pre-spin polls, spinner registration, clock reads, S1). Fewer calls: each
// one polls the queue about 70 times.
void pop_for_zero_empty(const char* name) {
  D d;
  auto c = d.consumer();
  measure(name, kOps / 16, kWarmup / 16, [&](std::uint64_t n) {
    for (std::uint64_t i = 0; i < n; ++i) {
      expect(!c.pop_for(std::chrono::nanoseconds(0)).has_value());
    }
  });
}

// Bounded, with room: push (reserve room by CAS) then pop (release room), one at a time.
void bounded_push_pop(const char* name, Overflow overflow) {
  D d(bounded(overflow));
  auto p = d.producer();
  auto c = d.consumer();
  std::uint64_t seq = 0;
  measure(name, kOps, kWarmup, [&](std::uint64_t n) {
    for (std::uint64_t i = 0; i < n; ++i) {
      expect(p.push(Event{seq, 0}) == PushResult::Pushed);
      const std::optional<Event> e = c.pop();
      expect(e.has_value() && e->seq == seq);
      ++seq;
    }
  });
}

// Bounded and full: `push` is refused (Reject), or try_push is refused (Block), or the oldest
// buffered event is dropped (DropOldest). The dispatcher stays full throughout.
void bounded_push_full(const char* name, Overflow overflow, bool use_try_push) {
  D d(bounded(overflow));
  auto p = d.producer();
  std::uint64_t seq = 0;
  for (std::size_t i = 0; i < kBoundedCapacity; ++i)
    expect(p.push(Event{seq++, 0}) == PushResult::Pushed);
  const PushResult want =
      overflow == Overflow::DropOldest ? PushResult::DroppedOldest : PushResult::Rejected;
  measure(name, kOps, kWarmup, [&](std::uint64_t n) {
    for (std::uint64_t i = 0; i < n; ++i) {
      Event e{seq++, 0};
      expect((use_try_push ? p.try_push(e) : p.push(e)) == want);
    }
  });
  expect(d.stats().buffered == kBoundedCapacity);
}

// Histogram::record of values spread over the whole range (a fixed pseudo-random sequence).
void histogram_record(const char* name) {
  pushstage::Histogram h;
  std::uint64_t x = 0x9E3779B97F4A7C15ULL;
  measure(name, kOps, kWarmup, [&](std::uint64_t n) {
    for (std::uint64_t i = 0; i < n; ++i) {
      x ^= x << 13;  // xorshift64: cheap, fixed, covers many buckets
      x ^= x >> 7;
      x ^= x << 17;
      h.record(x >> (x & 31));
    }
  });
  expect(h.count() == kOps + kWarmup);
}

struct Case {
  const char* name;
  void (*run)(const char*);
};

const std::array kCases = {
    Case{"push_pop/handles", push_pop_handles},
    Case{"push_pop/burst64", push_pop_burst},
    Case{"push_pop/tokenless", push_pop_tokenless},  // icount_tokenless.cpp
    Case{"bulk_push_pop/64", bulk_push_pop},
    Case{"try_pop/empty", try_pop_empty},
    Case{"pop_for/zero_empty", pop_for_zero_empty},
    Case{"histogram/record", histogram_record},
    Case{"bounded_push_pop/Block", [](const char* n) { bounded_push_pop(n, Overflow::Block); }},
    Case{"bounded_push_pop/Reject", [](const char* n) { bounded_push_pop(n, Overflow::Reject); }},
    Case{"bounded_push_pop/DropOldest",
         [](const char* n) { bounded_push_pop(n, Overflow::DropOldest); }},
    Case{"bounded_try_push_full/Block",
         [](const char* n) { bounded_push_full(n, Overflow::Block, true); }},
    Case{"bounded_push_full/Reject",
         [](const char* n) { bounded_push_full(n, Overflow::Reject, false); }},
    Case{"bounded_push_full/DropOldest",
         [](const char* n) { bounded_push_full(n, Overflow::DropOldest, false); }},
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<const Case*> run;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--list") {
      for (const Case& c : kCases) std::printf("%s\n", c.name);
      return 0;
    }
    if (arg == "--info") {
      std::printf("compiler %s %s\nbuild %s\nslowdown %s\n",
#ifdef __clang__
                  "clang++",
#else
                  "g++",
#endif
                  __VERSION__, PUSHSTAGE_PERF_GATE_BUILD,
#ifdef PUSHSTAGE_PERF_GATE_SLOW_PUSH
                  "on"
#else
                  "off"
#endif
      );
      return 0;
    }
    const Case* found = nullptr;
    for (const Case& c : kCases) {
      if (arg == c.name) found = &c;
    }
    if (found == nullptr) {
      std::fprintf(stderr, "perf_gate_icount: unknown case '%s' (see --list)\n", argv[i]);
      return 2;
    }
    run.push_back(found);
  }
  if (run.empty()) {
    for (const Case& c : kCases) run.push_back(&c);
  }
  for (const Case* c : run) c->run(c->name);
  if (g_wrong != 0) {
    std::fprintf(stderr, "perf_gate_icount: %llu calls did not take the measured path\n",
                 static_cast<unsigned long long>(g_wrong));
    return 1;
  }
  return 0;
}
