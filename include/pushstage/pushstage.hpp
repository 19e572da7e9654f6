// pushstage/pushstage.hpp: the whole public API of pushstage, layer by layer.
// clang-format off
//   Dispatcher<T>           hands events from many producers to consumers that ask for them
//   Source, TakeResult      what pools take events from (write a dispatch mode of your own)
//   PartitionDispatcher<T>  a key's hash picks a partition; one consumer per partition
//   BroadcastDispatcher<T>  every subscriber gets every event (or what its selector accepts)
//   KeyedDispatcher<T>      per-key order; any idle consumer takes a key with nothing in flight
//   DemandSource<T>         events made on demand by a generator (GenStage's handle_demand)
//   ConsumerPool<T>         pinned consumer threads that drain a source and call a handler
//   PoolOptions             demand (max_demand, min_demand, manual), pinning, retry, deadline
//   RateLimiter             at most N handler calls per interval across pools
//   Stage<In, Sink>         a pool whose handler emits into a sink (GenStage's producer_consumer)
//   Batcher<T, Key>         Broadway's batchers: batches by size, weight, timeout and key
//   Pipeline<T>, Message<T> Broadway's pipeline in one declaration: processors, named batchers,
//                           acknowledgement, barriers, graceful stop; from_range(), stream()
//   allowed_cpus(), pin_this_thread()
// clang-format on
// Histogram (pushstage/histogram.hpp) is a measuring utility of the benchmarks, not included here.
#pragma once

#include "pushstage/cpus.hpp"
#include "pushstage/dispatcher.hpp"
#include "pushstage/dispatcher_options.hpp"
#include "pushstage/modes/broadcast_dispatcher.hpp"
#include "pushstage/modes/demand_source.hpp"
#include "pushstage/modes/keyed_dispatcher.hpp"
#include "pushstage/modes/partition_dispatcher.hpp"
#include "pushstage/observe/observer.hpp"
#include "pushstage/observe/topology.hpp"
#include "pushstage/pool/consumer_pool.hpp"
#include "pushstage/pool/pool_options.hpp"
#include "pushstage/pool/rate_limiter.hpp"
#include "pushstage/source.hpp"
#include "pushstage/stages/batcher.hpp"
#include "pushstage/stages/message.hpp"
#include "pushstage/stages/pipeline.hpp"
#include "pushstage/stages/pipeline_options.hpp"
#include "pushstage/stages/ranges.hpp"
#include "pushstage/stages/stage.hpp"
