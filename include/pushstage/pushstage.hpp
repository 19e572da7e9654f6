// pushstage/pushstage.hpp: the whole public API of pushstage.
//   Dispatcher<T>   hands events from many producers to consumers that ask for them
//   ConsumerPool<T> pinned consumer threads that drain a Dispatcher and call a handler
//   PartitionDispatcher<T>  a key's hash picks a partition; one consumer per partition
//   BroadcastDispatcher<T>  every subscriber gets every event (or what its selector accepts)
//   KeyedDispatcher<T>      per-key order; any idle consumer takes a key with nothing in flight
//   Stage<In, Sink> a pool whose handler emits into a downstream sink (GenStage's
//   producer_consumer) PoolOptions     a pool's demand (max_demand, min_demand), pinning, failure
//   handling allowed_cpus(), pin_this_thread() RateLimiter     at most N events per interval across
//   pools (Broadway's rate limiting) Histogram       latencies with fixed relative precision,
//   merged across threads
#pragma once

#include "pushstage/cpus.hpp"
#include "pushstage/dispatcher.hpp"
#include "pushstage/dispatcher_options.hpp"
#include "pushstage/histogram.hpp"
#include "pushstage/modes/broadcast_dispatcher.hpp"
#include "pushstage/modes/keyed_dispatcher.hpp"
#include "pushstage/modes/partition_dispatcher.hpp"
#include "pushstage/pool/consumer_pool.hpp"
#include "pushstage/pool/pool_options.hpp"
#include "pushstage/pool/rate_limiter.hpp"
#include "pushstage/stages/batcher.hpp"
#include "pushstage/stages/stage.hpp"
