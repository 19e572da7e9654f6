// asymmetric_fence.hpp: the heavy side of an asymmetric fence pair.
// A hot path that would need a seq_cst fence (a StoreLoad barrier, tens of ns when its stores
// touch lines other cores read) can use a compiler barrier instead, if the rare side that pairs
// with it calls heavy_fence(): membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) makes every running
// thread of this process execute a full memory barrier before it returns (threads that are not
// running pass one on their next context switch). Together the pair orders like two seq_cst
// fences. The heavy fence costs inter-processor interrupts (microseconds, README.md: How it
// works), the light side nothing.
// Threading: safe from any thread.
// Failure:   the light side is chosen once, when registration succeeds, and cannot be taken back
//            from threads already past it; so the heavy side never degrades alone. A failing
//            membarrier call (ENOMEM is possible) is retried, with growing sleeps, for about a
//            second; if it still fails, heavy_fence() prints why and aborts the process rather
//            than let a push slip past a close().
#pragma once

namespace pushstage::detail {

// Registers the process for expedited private membarrier (once; later calls return the cached
// answer). False when the kernel lacks it: then both sides must use seq_cst thread fences.
bool asymmetric_fence_available() noexcept;

// The heavy side. A seq_cst thread fence when membarrier is not available; otherwise membarrier,
// retried until it succeeds (see Failure above).
void heavy_fence() noexcept;

// Tests only (tests/fault/membarrier_test.cpp): every membarrier(2) call of the heavy side goes
// through `call` instead of the system call (nullptr: the system call again). Not thread-safe
// against a concurrent heavy_fence().
using MembarrierCall = long (*)(int cmd, unsigned flags, int cpu_id);
void set_membarrier_call_for_testing(MembarrierCall call) noexcept;

}  // namespace pushstage::detail
