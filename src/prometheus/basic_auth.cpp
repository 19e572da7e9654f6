// basic_auth.cpp: basic_auth.hpp.
#include "basic_auth.hpp"

#include <cstdint>

namespace pushstage::prometheus::detail {
namespace {

// The value of a base64 digit, or -1.
int digit(char c) noexcept {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Padded base64 (RFC 4648, section 4), or nullopt.
std::optional<std::string> decode(std::string_view in) {
  if (in.empty() || in.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (std::size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    const std::size_t pad = last ? (in[i + 3] == '=' ? (in[i + 2] == '=' ? 2 : 1) : 0) : 0;
    std::uint32_t v = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      const int d = k >= 4 - pad ? 0 : digit(in[i + k]);
      if (d < 0) return std::nullopt;  // includes '=' anywhere but the end
      v = (v << 6U) | static_cast<std::uint32_t>(d);
    }
    out += static_cast<char>((v >> 16U) & 0xFFU);
    if (pad < 2) out += static_cast<char>((v >> 8U) & 0xFFU);
    if (pad < 1) out += static_cast<char>(v & 0xFFU);
  }
  return out;
}

}  // namespace

std::optional<Credentials> parse_basic_auth(std::string_view header) {
  header = trim(header);
  const std::size_t space = header.find(' ');
  if (space == std::string_view::npos || !iequals(header.substr(0, space), "Basic")) {
    return std::nullopt;
  }
  const std::optional<std::string> pair = decode(trim(header.substr(space + 1)));
  if (!pair) return std::nullopt;
  const std::size_t colon = pair->find(':');
  if (colon == std::string::npos) return std::nullopt;
  return Credentials{pair->substr(0, colon), pair->substr(colon + 1)};
}

bool same_secret(std::string_view a, std::string_view b) noexcept {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  }
  return diff == 0;
}

}  // namespace pushstage::prometheus::detail
