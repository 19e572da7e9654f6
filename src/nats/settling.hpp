// settling.hpp: the one place where pushstage::nats tells the broker what became of a message
// after local work: settle_once() (a ConsumerPool built by hand) and JetStreamAcknowledger (a
// pushstage::Pipeline) both settle through these. Each leaves alone a message that is empty
// (moved away) or already settled (by its handler), and none throws: a settlement the client
// cannot send is counted by the source (SourceStats::settle_errors) and the broker redelivers the
// message after ack_wait.
#pragma once

#include "pushstage/nats/message.hpp"

namespace pushstage::nats::detail {

// Success: ack.
void ack_quietly(Message& m) noexcept;
// Failure under the source's retry policy: nak with backoff, or term after max_deliver.
void fail_quietly(Message& m) noexcept;
// Not handled here (stopped, refused): nak at once, so that another consumer may take it now.
void give_back_quietly(Message& m) noexcept;
// An attempt failed and another may follow: restart the broker's ack_wait (in_progress).
void still_working(Message& m) noexcept;

}  // namespace pushstage::nats::detail
