// text.cpp: escaping for JSON, DOT and UTF-8 checks (text.hpp).
#include "text.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace pushstage::detail {

CodePoint decode_utf8(std::string_view text) noexcept {
  constexpr CodePoint kInvalid{0xFFFD, 1};
  const auto b0 = static_cast<unsigned char>(text[0]);
  if (b0 < 0x80) return {b0, 1};
  std::size_t n = 0;
  std::uint32_t cp = 0;
  std::uint32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    n = 2, cp = b0 & 0x1FU, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    n = 3, cp = b0 & 0x0FU, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    n = 4, cp = b0 & 0x07U, min = 0x10000;
  } else {
    return kInvalid;
  }
  if (text.size() < n) return kInvalid;
  for (std::size_t i = 1; i < n; ++i) {
    const auto b = static_cast<unsigned char>(text[i]);
    if ((b & 0xC0) != 0x80) return kInvalid;
    cp = (cp << 6) | (b & 0x3FU);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return kInvalid;
  return {cp, n};
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

namespace {
void append_u_escape(std::string& out, std::uint32_t cp) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(cp));
  out += buf;
}
}  // namespace

void append_json_string(std::string& out, std::string_view text) {
  out += '"';
  while (!text.empty()) {
    const CodePoint c = decode_utf8(text);
    text.remove_prefix(c.bytes);
    switch (c.value) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '<':
      case '>':
      case '&':
      case 0x2028:
      case 0x2029:
        append_u_escape(out, c.value);
        break;
      default:
        if (c.value < 0x20 || c.value == 0x7F) {
          append_u_escape(out, c.value);
        } else {
          append_utf8(out, c.value);
        }
    }
  }
  out += '"';
}

void append_dot_string(std::string& out, std::string_view text) {
  out += '"';
  while (!text.empty()) {
    const CodePoint c = decode_utf8(text);
    text.remove_prefix(c.bytes);
    if (c.value == '"' || c.value == '\\') {
      out += '\\';
      out += static_cast<char>(c.value);
    } else if (c.value == '\n') {
      out += "\\n";
    } else if (c.value < 0x20 || c.value == 0x7F) {
      out += ' ';
    } else {
      append_utf8(out, c.value);
    }
  }
  out += '"';
}

void append_json_seconds(std::string& out, double seconds) {
  if (!std::isfinite(seconds)) {
    out += "null";
    return;
  }
  char buf[40];
  const auto r = std::to_chars(buf, buf + sizeof buf, seconds, std::chars_format::general, 9);
  out.append(buf, r.ptr);  // locale-independent, unlike printf
}

}  // namespace pushstage::detail
