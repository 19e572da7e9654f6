// server_error.hpp: what an error text from the NATS server means to the adapter. The server
// sends it (-ERR), nats.c hands it to the connection's error callback, and a Source or Sink acts
// on it (client.hpp: on_violation); the text comes from outside this process, so it is parsed
// here, by pure functions that tests/fuzz/nats_parse_fuzz.cpp feeds arbitrary bytes.
//
// Forms (nats-server 2.x; nats.c removes the quotes around the whole text):
//   Permissions Violation for Publish to "<subject>"
//   Permissions Violation for Subscription to "<subject>"[ using queue "<queue>"]
// The subject is taken between the first pair of double quotes after "to "; a text with the
// prefix but no such pair is still a violation, of an unknown subject.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pushstage::nats::detail {

struct PermissionViolation {
  enum class Kind { Publish, Subscribe };
  Kind kind = Kind::Publish;
  std::string subject;  // empty when the text names none
};

// nullopt when `text` is not a permissions violation.
[[nodiscard]] std::optional<PermissionViolation> parse_permission_violation(std::string_view text);

}  // namespace pushstage::nats::detail
