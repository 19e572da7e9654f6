// server_url.hpp: the server URLs of ConnectOptions::url taken apart without nats.c, so that
// they can be checked, asked whether they want TLS or carry credentials, and printed without
// their secrets (redacted_url() in connect_options.hpp). Pure functions of their text: no I/O,
// no allocation beyond the results; tests/fuzz/nats_parse_fuzz.cpp feeds them arbitrary bytes.
//
// Grammar (nats.c's):  [scheme "://"] [userinfo "@"] host [":" port]
//   userinfo  user ":" password, or a token (no ':'); the LAST '@' ends it, so a password may
//             hold '@' but not ',' (the list separator). A user holding '@' makes the whole
//             user-info a token (where the secret starts is not clear then).
//   host      a name or IPv4 address ([A-Za-z0-9._-]+), or an IPv6 address in brackets
//   port      1 to 65535
// A list separates URLs with commas; spaces around each URL are ignored.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pushstage::nats::detail {

struct ServerUrl {
  std::string_view scheme;    // as written ("nats", "TLS", ...); empty when absent
  bool has_userinfo = false;  // user:password@ or token@
  bool has_password = false;  // user:password (a ':' with no '@' before it)
  std::string_view user;      // before the ':' (empty for a token)
  std::string_view host;      // as written, an IPv6 address with its brackets
  std::string_view port;      // digits; empty when absent
};

// One URL; nullopt when `text` is not one (an empty host, a port that is not 1..65535, a path,
// a character a host cannot hold, ...).
[[nodiscard]] std::optional<ServerUrl> parse_server_url(std::string_view text) noexcept;

// The items of a comma-separated list, spaces around each removed (empty items kept).
[[nodiscard]] std::vector<std::string_view> split_server_urls(std::string_view list);

// True when the scheme is tls (any case): nats.c then requires TLS with that server.
[[nodiscard]] bool wants_tls(const ServerUrl& url) noexcept;

// The list as pushstage prints it: each URL rebuilt from its parts with its password or token
// replaced by "***" ("nats://alice:***@host:4222", "tls://***@host"). An item that does not parse
// is printed as written when the list holds no '@' (no user-info, so no secret: a typo stays
// readable), else as "***" whole (a password holding ',' splits its URL into such items).
[[nodiscard]] std::string redact_server_urls(std::string_view list);

}  // namespace pushstage::nats::detail
