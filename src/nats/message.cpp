// message.cpp: Message, a natsMsg plus the core of the Source that fetched it.
#include "pushstage/nats/message.hpp"

#include <stdexcept>
#include <utility>

#include "source_core.hpp"

namespace pushstage::nats {

Message::Message(Message&& other) noexcept
    : msg_(std::exchange(other.msg_, nullptr)),
      core_(std::move(other.core_)),
      sequence_(other.sequence_),
      deliveries_(other.deliveries_),
      settled_(other.settled_) {}

Message& Message::operator=(Message&& other) noexcept {
  if (this != &other) {
    release();
    msg_ = std::exchange(other.msg_, nullptr);
    core_ = std::move(other.core_);
    sequence_ = other.sequence_;
    deliveries_ = other.deliveries_;
    settled_ = other.settled_;
  }
  return *this;
}

Message::~Message() { release(); }

void Message::release() noexcept {
  if (msg_ == nullptr) return;
  if (!settled_) {
    settled_ = true;
    try {
      core_->settle(msg_, Verdict::Nak, std::chrono::milliseconds(0), sequence_);
    } catch (...) {  // counted by the core; the broker redelivers after ack_wait anyway
    }
  }
  natsMsg_Destroy(detail::native(msg_));  // before the core: the message points into it
  msg_ = nullptr;
  core_.reset();
}

std::string_view Message::data() const noexcept {
  if (msg_ == nullptr) return {};
  natsMsg* m = detail::native(msg_);
  const char* p = natsMsg_GetData(m);
  const int n = natsMsg_GetDataLength(m);
  return p == nullptr || n <= 0 ? std::string_view()
                                : std::string_view(p, static_cast<std::size_t>(n));
}

std::string_view Message::subject() const noexcept {
  if (msg_ == nullptr) return {};
  const char* s = natsMsg_GetSubject(detail::native(msg_));
  return s == nullptr ? std::string_view() : std::string_view(s);
}

void Message::settle(Verdict verdict, std::chrono::milliseconds delay) {
  if (msg_ == nullptr) {
    throw std::logic_error("pushstage::nats::Message: cannot settle an empty (moved-from) message");
  }
  if (settled_) return;
  settled_ = true;  // even if sending fails: the broker takes over after ack_wait
  core_->settle(msg_, verdict, delay, sequence_);
}

void Message::ack() { settle(Verdict::Ack, std::chrono::milliseconds(0)); }

void Message::nak(std::chrono::milliseconds delay) {
  settle(Verdict::Nak, delay < std::chrono::milliseconds(0) ? std::chrono::milliseconds(0) : delay);
}

void Message::term() { settle(Verdict::Term, std::chrono::milliseconds(0)); }

void Message::in_progress() {
  if (msg_ == nullptr) {
    throw std::logic_error("pushstage::nats::Message: in_progress on an empty message");
  }
  if (!settled_) core_->in_progress(msg_, sequence_);
}

Message::Outcome Message::fail() {
  if (msg_ == nullptr) {
    throw std::logic_error("pushstage::nats::Message: cannot fail an empty (moved-from) message");
  }
  if (settled_) return Outcome::AlreadySettled;
  if (deliveries_ >= static_cast<std::uint64_t>(core_->max_deliver())) {
    settle(Verdict::Term, std::chrono::milliseconds(0));
    return Outcome::Terminated;
  }
  settle(Verdict::Nak, core_->backoff_after(deliveries_));
  return Outcome::Redeliver;
}

}  // namespace pushstage::nats
