// ack_reply.cpp: see ack_reply.hpp.
#include "ack_reply.hpp"

#include <array>
#include <cstddef>
#include <limits>

namespace pushstage::nats::detail {
namespace {

constexpr std::string_view kPrefix = "$JS.ACK.";
constexpr std::size_t kV1Tokens = 7;  // after the prefix
constexpr std::size_t kV2Tokens = 9;  // at least, after the prefix

bool to_number(std::string_view s, std::uint64_t max, std::uint64_t& out) noexcept {
  if (s.empty()) return false;
  std::uint64_t v = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return false;
    const auto d = static_cast<std::uint64_t>(c - '0');
    if (v > (max - d) / 10) return false;  // v * 10 + d would exceed max
    v = v * 10 + d;
  }
  out = v;
  return true;
}

}  // namespace

std::optional<AckReply> parse_ack_reply(std::string_view reply) noexcept {
  if (reply.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  reply.remove_prefix(kPrefix.size());
  std::array<std::string_view, kV2Tokens> t{};
  std::size_t n = 0;
  for (;;) {
    const auto dot = reply.find('.');
    const std::string_view token = reply.substr(0, dot);
    if (token.empty()) return std::nullopt;
    if (n < t.size()) t[n] = token;
    ++n;
    if (dot == std::string_view::npos) break;
    reply.remove_prefix(dot + 1);
  }
  AckReply r;
  std::size_t i = 0;
  if (n == kV1Tokens) {
    // no domain, no account hash
  } else if (n >= kV2Tokens) {
    r.domain = t[0] == "_" ? std::string_view() : t[0];
    r.account_hash = t[1];
    i = 2;
  } else {
    return std::nullopt;
  }
  r.stream = t[i];
  r.consumer = t[i + 1];
  constexpr auto kAny = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t timestamp = 0;
  if (!to_number(t[i + 2], kAny, r.delivered) || !to_number(t[i + 3], kAny, r.stream_sequence) ||
      !to_number(t[i + 4], kAny, r.consumer_sequence) ||
      !to_number(t[i + 5], std::numeric_limits<std::int64_t>::max(), timestamp) ||
      !to_number(t[i + 6], kAny, r.pending)) {
    return std::nullopt;
  }
  r.timestamp = static_cast<std::int64_t>(timestamp);
  return r;
}

}  // namespace pushstage::nats::detail
