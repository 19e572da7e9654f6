// broadcast_dispatcher.cpp: the non-template parts of BroadcastDispatcher: options validation
// and the statistics.
#include "pushstage/modes/broadcast_dispatcher.hpp"

#include <stdexcept>
#include <string>

namespace pushstage {

namespace detail {

namespace {
constexpr std::size_t kMaxSubscribers = 1024;

// A subscriber's buffer must be bounded and block; `field` names it in the message.
void check_subscriber_buffer(const DispatcherOptions& buffer, const std::string& field) {
  if (buffer.capacity == 0) {
    throw std::invalid_argument(field +
                                ".capacity must be in [1, 2147483647] (a bounded buffer per "
                                "subscriber); got 0");
  }
  if (buffer.overflow != Overflow::Block) {
    throw std::invalid_argument(field +
                                ".overflow must be Block (the slowest subscriber sets the pace)");
  }
}
}  // namespace

void check_broadcast_options(std::size_t subscribers, const DispatcherOptions& options,
                             std::size_t selectors) {
  if (subscribers > kMaxSubscribers) {
    throw std::invalid_argument("BroadcastDispatcher: subscribers must be in [0, " +
                                std::to_string(kMaxSubscribers) + "]; got " +
                                std::to_string(subscribers));
  }
  check_subscriber_buffer(options, "BroadcastDispatcher: options");
  if (selectors != 0 && selectors != subscribers) {
    throw std::invalid_argument(
        "BroadcastDispatcher: selectors must be empty or one per "
        "subscriber (" +
        std::to_string(subscribers) + "); got " + std::to_string(selectors));
  }
}

void check_subscriber_options(const DispatcherOptions& buffer) {
  check_subscriber_buffer(buffer, "BroadcastDispatcher::subscribe: options.buffer");
}

void check_subscriber_count(std::size_t subscribers_now) {
  if (subscribers_now >= kMaxSubscribers) {
    throw std::length_error("BroadcastDispatcher::subscribe: at most " +
                            std::to_string(kMaxSubscribers) + " subscribers at once");
  }
}

}  // namespace detail

std::size_t BroadcastStats::slowest() const noexcept {
  std::size_t worst = 0;
  for (std::size_t i = 1; i < subscribers.size(); ++i) {
    if (subscribers[i].buffered > subscribers[worst].buffered) worst = i;
  }
  return worst;
}

}  // namespace pushstage
