// pushstage/nats/feed.hpp: a JetStream durable pull consumer as the feed of a pushstage::Pipeline
// (Broadway's producer), and the acknowledger that settles each message with the broker once the
// pipeline acknowledges it: one settlement per delivery, after the last local attempt.
//
// Threading: the feed runs a Source (its I/O thread) into a buffer, and one unpinned thread that
//            moves what was fetched into the pipeline (a Stage whose sink is the pipeline). The
//            acknowledger is called from the pipeline's threads, concurrently.
// Demand:    at most `in_flight` messages fetched and not yet settled (default: the pipeline's
//            in_flight_hint(), so that batches can fill), bounded by the consumer's
//            max_ack_pending.
// Settling:  through the pipeline's acknowledgement only (pushstage/stages/pipeline.hpp): a
//            successful message is acked; a failed one is fail()ed under the source's retry policy
//            (nak with backoff, term after max_deliver), except one failed by stop() or refused by
//            a closed pipeline, which is nak'ed at once for another consumer to take now. Each
//            failed attempt of a handler restarts the broker's ack_wait (in_progress), so local
//            retries (PoolOptions::retry) bring no redelivery. A message a handler settled itself
//            is left alone.
// Stop:      the pipeline's stop() stops fetching first; what was fetched goes through the
//            pipeline (or, past the deadline, back to the broker). When the connection is closed
//            for good the feed ends by itself and closes the pipeline: join() returns, and
//            feed_error() holds the Error.
#pragma once

#include <cstddef>
#include <memory>
#include <span>

#include "pushstage/nats/message.hpp"
#include "pushstage/nats/source.hpp"
#include "pushstage/stages/message.hpp"
#include "pushstage/stages/pipeline_options.hpp"

namespace pushstage::nats {

// Settles JetStream messages as a Pipeline<Message> acknowledges them (Settling, above). Use it
// for messages pushed by hand: pipeline.push(pushstage::Message<Message>(std::move(m), &acker)).
class JetStreamAcknowledger final : public pushstage::Acknowledger<Message> {
 public:
  void ack(std::span<pushstage::Message<Message>> successful,
           std::span<pushstage::Message<Message>> failed) override;
  void attempt_failed(pushstage::Message<Message>& message) noexcept override;
};

// A feed for pushstage::Pipeline<Message>: fetches from `options.stream` through the durable
// consumer `options.consumer` (created if missing) and pushes each message with a
// JetStreamAcknowledger. in_flight: messages fetched and not yet settled, in [0, 1000000] (0: the
// pipeline's in_flight_hint()). The pipeline's constructor throws what the Source throws
// (std::invalid_argument, Error).
[[nodiscard]] std::unique_ptr<PipelineFeed<Message>> from_jetstream(SourceOptions options,
                                                                    std::size_t in_flight = 0);

}  // namespace pushstage::nats
