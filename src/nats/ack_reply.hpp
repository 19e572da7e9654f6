// ack_reply.hpp: what a JetStream message's reply subject says about it. The broker writes its
// delivery metadata there, and a Source reads the stream sequence and the delivery count from it;
// the subject comes from the server (outside this process), so it is parsed here, by a pure
// function that tests/fuzz/nats_parse_fuzz.cpp feeds arbitrary bytes, not trusted.
//
// Forms (tokens separated by '.'):
//   v1  $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<timestamp>.<pending>
//   v2  $JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<stream seq>
//       .<consumer seq>.<timestamp>.<pending>[.<more tokens, ignored>]      ("_": no domain)
// Numbers are unsigned decimal (the timestamp in nanoseconds since the epoch, at most INT64_MAX);
// every token is non-empty.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace pushstage::nats::detail {

struct AckReply {
  std::string_view domain;        // empty: none (v1, or "_")
  std::string_view account_hash;  // empty in v1
  std::string_view stream;
  std::string_view consumer;
  std::uint64_t delivered = 0;  // deliveries of this message, this one included
  std::uint64_t stream_sequence = 0;
  std::uint64_t consumer_sequence = 0;
  std::int64_t timestamp = 0;
  std::uint64_t pending = 0;
};

// nullopt when `reply` is not a JetStream ack subject of either form.
[[nodiscard]] std::optional<AckReply> parse_ack_reply(std::string_view reply) noexcept;

}  // namespace pushstage::nats::detail
