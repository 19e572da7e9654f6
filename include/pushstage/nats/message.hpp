// pushstage/nats/message.hpp: one JetStream message on its way through a Dispatcher, and how it
// is settled with the broker (ack, nak, term).
//
// Threading: a Message belongs to one thread at a time (like any event); moving it hands it over.
//            Settling is safe from any thread and needs no other lock.
// Lifetime:  a Message keeps its Source's connection alive (shared ownership), so it may outlive
//            the Source; it must be settled or destroyed before the process exits for its
//            outcome to reach the broker.
// Settling:  exactly once. ack() after success, fail() after a failure (the retry policy of
//            SourceOptions: nak with backoff, or term after the last attempt), or nak()/term()
//            directly. Later calls are no-ops. A Message destroyed unsettled is nak'ed at once,
//            so another consumer (or process) gets it without waiting for the broker's ack_wait.
//            Settling is what frees demand: the Source fetches one more message per settlement.
// Failure:   ack/nak/term throw Error when the client cannot send them (connection closed); the
//            message then counts as settled here and the broker redelivers it after ack_wait.
// Delivery:  at least once. A message whose ack is lost (process killed, connection dropped) is
//            delivered again, to this or another process; deliveries() says how often.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>
#include <utility>

namespace pushstage::nats {

namespace detail {
class SourceCore;  // src/nats/source_core.hpp
struct RawMsg;     // nats.c's natsMsg, opaque here so that users need no <nats/nats.h>
}  // namespace detail

class Message {
 public:
  // What fail() did.
  enum class Outcome {
    Redeliver,   // nak'ed: the broker delivers it again (after the backoff delay)
    Terminated,  // that was the last allowed delivery: term'ed, the broker will not send it again
    AlreadySettled,  // it was settled before: nothing was sent
  };

  // An empty message (no broker message); what a moved-from Message is.
  Message() noexcept = default;
  Message(Message&& other) noexcept;
  Message& operator=(Message&& other) noexcept;
  Message(const Message&) = delete;
  Message& operator=(const Message&) = delete;
  // Nak's the message when it was never settled (errors ignored), then frees it.
  ~Message();

  [[nodiscard]] bool empty() const noexcept { return msg_ == nullptr; }
  // The payload and subject; valid while this Message lives (also after settling). Empty views
  // for an empty message.
  [[nodiscard]] std::string_view data() const noexcept;
  [[nodiscard]] std::string_view subject() const noexcept;
  // The message's sequence number in its stream: the same on every delivery.
  [[nodiscard]] std::uint64_t sequence() const noexcept { return sequence_; }
  // How many times the broker has delivered it, this delivery included (1 the first time).
  [[nodiscard]] std::uint64_t deliveries() const noexcept { return deliveries_; }
  [[nodiscard]] bool settled() const noexcept { return settled_; }

  // Success: the broker forgets the message. Throws std::logic_error on an empty message.
  void ack();
  // Failure, retry: the broker delivers it again after `delay` (0: at once).
  void nak(std::chrono::milliseconds delay = std::chrono::milliseconds(0));
  // Failure, give up: the broker never delivers it again.
  void term();
  // Still working: restarts the broker's ack_wait timer. Does not settle.
  void in_progress();
  // Failure under the Source's retry policy: nak with backoff[deliveries() - 1] (the last entry
  // repeats), or term when deliveries() has reached max_deliver.
  Outcome fail();

 private:
  friend class detail::SourceCore;
  Message(detail::RawMsg* msg, std::shared_ptr<detail::SourceCore> core, std::uint64_t sequence,
          std::uint64_t deliveries) noexcept
      : msg_(msg), core_(std::move(core)), sequence_(sequence), deliveries_(deliveries) {}

  enum class Verdict { Ack, Nak, Term };
  void settle(Verdict verdict, std::chrono::milliseconds delay);
  void release() noexcept;

  detail::RawMsg* msg_ = nullptr;
  std::shared_ptr<detail::SourceCore> core_;
  std::uint64_t sequence_ = 0;
  std::uint64_t deliveries_ = 0;
  bool settled_ = false;
};

}  // namespace pushstage::nats
