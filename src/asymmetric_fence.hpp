// asymmetric_fence.hpp: the heavy side of an asymmetric fence pair.
// A hot path that would need a seq_cst fence (a StoreLoad barrier, tens of ns when its stores
// touch lines other cores read) can use a compiler barrier instead, if the rare side that pairs
// with it calls heavy_fence(): membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) makes every running
// thread of this process execute a full memory barrier before it returns (threads that are not
// running pass one on their next context switch). Together the pair orders like two seq_cst
// fences. Costs here: about 10-17 us per heavy fence (inter-processor interrupts), 0 on the light
// side.
// Threading: safe from any thread.
#pragma once

namespace pushstage::detail {

// Registers the process for expedited private membarrier (once; later calls return the cached
// answer). False when the kernel lacks it: then both sides must use seq_cst thread fences.
bool asymmetric_fence_available() noexcept;

// The heavy side. Falls back to a seq_cst thread fence when membarrier is not available.
void heavy_fence() noexcept;

}  // namespace pushstage::detail
