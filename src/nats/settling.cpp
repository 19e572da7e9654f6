// settling.cpp: see settling.hpp.
#include "settling.hpp"

namespace pushstage::nats::detail {
namespace {
bool open(const Message& m) noexcept { return !m.empty() && !m.settled(); }
}  // namespace

void ack_quietly(Message& m) noexcept {
  if (!open(m)) return;
  try {
    m.ack();
  } catch (...) {  // counted by the source; the broker redelivers after ack_wait
  }
}

void fail_quietly(Message& m) noexcept {
  if (!open(m)) return;
  try {
    (void)m.fail();
  } catch (...) {  // likewise
  }
}

void give_back_quietly(Message& m) noexcept {
  if (!open(m)) return;
  try {
    m.nak();
  } catch (...) {  // likewise
  }
}

void still_working(Message& m) noexcept {
  if (!open(m)) return;
  try {
    m.in_progress();
  } catch (...) {  // the broker may redeliver after ack_wait: at least once still holds
  }
}

}  // namespace pushstage::nats::detail
