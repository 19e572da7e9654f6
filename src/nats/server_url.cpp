// server_url.cpp: see server_url.hpp.
#include "server_url.hpp"

#include <cstddef>

#include "pushstage/nats/connect_options.hpp"

namespace pushstage::nats::detail {
namespace {

bool is_alnum(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

bool is_hex(char c) noexcept {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool valid_scheme(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (const char c : s) {
    if (!is_alnum(c) && c != '+' && c != '-' && c != '.') return false;
  }
  return true;
}

bool valid_name(std::string_view h) noexcept {
  if (h.empty()) return false;
  for (const char c : h) {
    if (!is_alnum(c) && c != '.' && c != '-' && c != '_') return false;
  }
  return true;
}

// "[...]" holding hex digits, ':' and '.', and a zone after '%' ([A-Za-z0-9._-]).
bool valid_ipv6(std::string_view h) noexcept {
  if (h.size() < 3 || h.front() != '[' || h.back() != ']') return false;
  bool zone = false;
  for (const char c : h.substr(1, h.size() - 2)) {
    if (c == '%') {
      if (zone) return false;
      zone = true;
    } else if (zone ? !(is_alnum(c) || c == '.' || c == '-' || c == '_')
                    : !(is_hex(c) || c == ':' || c == '.')) {
      return false;
    }
  }
  return true;
}

bool valid_port(std::string_view p) noexcept {
  if (p.empty() || p.size() > 5) return false;
  unsigned v = 0;
  for (const char c : p) {
    if (!is_digit(c)) return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  return v >= 1 && v <= 65535;
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

}  // namespace

std::optional<ServerUrl> parse_server_url(std::string_view text) noexcept {
  ServerUrl u;
  std::string_view rest = text;
  if (const auto sep = rest.find("://"); sep != std::string_view::npos) {
    u.scheme = rest.substr(0, sep);
    if (!valid_scheme(u.scheme)) return std::nullopt;
    rest.remove_prefix(sep + 3);
  }
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view info = rest.substr(0, at);
    u.has_userinfo = true;
    const auto colon = info.find(':');
    // A '@' before the ':' leaves it unclear where a token would end ("t0ken@x:y@host"): then
    // the whole user-info counts as the secret, like a token.
    u.has_password = colon != std::string_view::npos &&
                     info.substr(0, colon).find('@') == std::string_view::npos;
    u.user = u.has_password ? info.substr(0, colon) : std::string_view();
    rest.remove_prefix(at + 1);
  }
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    u.host = rest.substr(0, close + 1);
    rest.remove_prefix(close + 1);
    if (!valid_ipv6(u.host)) return std::nullopt;
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      u.port = rest.substr(1);
      if (!valid_port(u.port)) return std::nullopt;
    }
    return u;
  }
  const auto colon = rest.find(':');
  u.host = rest.substr(0, colon);
  if (!valid_name(u.host)) return std::nullopt;
  if (colon != std::string_view::npos) {
    u.port = rest.substr(colon + 1);
    if (!valid_port(u.port)) return std::nullopt;
  }
  return u;
}

std::vector<std::string_view> split_server_urls(std::string_view list) {
  std::vector<std::string_view> out;
  for (;;) {
    const auto comma = list.find(',');
    out.push_back(trim(list.substr(0, comma)));
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

bool wants_tls(const ServerUrl& url) noexcept {
  const std::string_view s = url.scheme;
  return s.size() == 3 && (s[0] == 't' || s[0] == 'T') && (s[1] == 'l' || s[1] == 'L') &&
         (s[2] == 's' || s[2] == 'S');
}

std::string redact_server_urls(std::string_view list) {
  const bool may_hold_secret = list.find('@') != std::string_view::npos;
  std::string out;
  bool first = true;
  for (const std::string_view item : split_server_urls(list)) {
    if (!first) out += ',';
    first = false;
    if (item.empty()) continue;
    const std::optional<ServerUrl> u = parse_server_url(item);
    if (!u) {
      out += may_hold_secret ? std::string_view("***") : item;
      continue;
    }
    if (!u->scheme.empty()) {
      out += u->scheme;
      out += "://";
    }
    if (u->has_password) {
      out += u->user;
      out += ":***@";
    } else if (u->has_userinfo) {
      out += "***@";  // a token (nats.c reads a userinfo without ':' as one)
    }
    out += u->host;
    if (!u->port.empty()) {
      out += ':';
      out += u->port;
    }
  }
  return out;
}

}  // namespace pushstage::nats::detail

namespace pushstage::nats {

std::string redacted_url(std::string_view url) noexcept {
  try {
    return detail::redact_server_urls(url);
  } catch (...) {  // std::bad_alloc: print nothing rather than the secret ("***" needs no heap)
    return "***";
  }
}

}  // namespace pushstage::nats
