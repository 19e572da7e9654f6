// basic_auth.hpp (private): the one piece of the endpoint that parses bytes from outside the
// process beyond what civetweb parses: an HTTP "Authorization: Basic ..." header value, for the
// dashboard's pages (prometheus-cpp checks /metrics itself). Fuzzed by
// tests/fuzz/basic_auth_fuzz.cpp.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pushstage::prometheus::detail {

struct Credentials {
  std::string user;
  std::string password;
};

// The user and password of `header` ("Basic " then base64 of "user:password", the scheme's case
// ignored, spaces around the token allowed); nullopt for anything else: another scheme, a token
// that is not padded base64, no ':' after decoding. Never throws but std::bad_alloc.
std::optional<Credentials> parse_basic_auth(std::string_view header);

// Compares in a time that depends on the lengths only, not on where the texts differ.
bool same_secret(std::string_view a, std::string_view b) noexcept;

}  // namespace pushstage::prometheus::detail
