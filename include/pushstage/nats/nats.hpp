// pushstage/nats/nats.hpp: pushstage::nats, the NATS JetStream adapter (CMake target
// pushstage::nats, built when libnats is found; not part of pushstage/pushstage.hpp).
//   Source    feeds a Dispatcher<Message> from a durable pull consumer, on demand
//   Message   one JetStream message: data, ack / nak / term, retry policy
//   Sink      publishes results with acknowledgements and bounded in-flight publishes
//   Pipeline  Dispatcher + ConsumerPool + Source in one line, acking on return
//   from_jetstream, JetStreamAcknowledger  a Source as the feed of a pushstage::Pipeline
#pragma once

#include "pushstage/nats/connect_options.hpp"
#include "pushstage/nats/error.hpp"
#include "pushstage/nats/feed.hpp"
#include "pushstage/nats/message.hpp"
#include "pushstage/nats/pipeline.hpp"
#include "pushstage/nats/sink.hpp"
#include "pushstage/nats/source.hpp"
