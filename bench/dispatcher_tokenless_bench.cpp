// dispatcher_tokenless_bench.cpp: Dispatcher throughput without handles (Dispatcher::push and
// Dispatcher::pop: each call looks up the handles its thread keeps, core/thread_cache.hpp)
// against the yardsticks that keep no token either.
//
// A binary of its own: instantiating both of pushstage's push paths for one event type changes how
// GCC inlines them. With these cases in dispatcher_bench, Dispatcher::push_one was no longer
// inlined into Producer::push, and BM_Bounded<pushstage>/Block lost 20-40% against the same
// library (the perf gate's A/B part caught it). A program that pushes through both APIs pays the
// same.
//
// Names are regression keys (tools/perf_gate reads them): BM_Throughput<<Impl>>/<P>P<C>C
#include <benchmark/benchmark.h>

#include "peers.hpp"
#include "throughput.hpp"

namespace pushstage::bench {
namespace {

#define PUSHSTAGE_THROUGHPUT_TOKENLESS(P, C)        \
  PUSHSTAGE_THROUGHPUT(PushstageTokenless, P, C);   \
  PUSHSTAGE_THROUGHPUT(BlockingQueueNoToken, P, C); \
  PUSHSTAGE_THROUGHPUT(MutexQueue, P, C)

PUSHSTAGE_THROUGHPUT_TOKENLESS(1, 1);
PUSHSTAGE_THROUGHPUT_TOKENLESS(2, 2);

}  // namespace
}  // namespace pushstage::bench

BENCHMARK_MAIN();
