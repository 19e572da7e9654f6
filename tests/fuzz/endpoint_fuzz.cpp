// endpoint_fuzz.cpp: libFuzzer target for what the metrics endpoint (pushstage::prometheus) reads
// or writes from bytes that come from outside: the Authorization header of a dashboard request,
// and names a user gave, written into JSON and DOT (src/observe/text.cpp, src/prometheus/
// basic_auth.cpp, compiled in; no prometheus-cpp, no server). The first byte picks:
//   0  parse_basic_auth: arbitrary bytes as the header; a user found has no ':', and the header
//      rebuilt from what was found ("Basic " + base64("user:password")) parses to the same
//   1  append_json_string: arbitrary bytes as a name; the output is valid UTF-8, quoted, and
//      holds no raw '<', '>', '&', control character or unescaped quote
//   2  append_dot_string: the same for DOT: valid UTF-8, no control character, no unescaped quote
//   3  same_secret: equal texts compare equal, texts that differ do not
//   4  parse_basic_auth of a header built from a fuzzed user (without ':') and password, with the
//      scheme's case and the spaces varied: it reads back exactly
// A crash, a sanitizer report or a broken property aborts.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "observe/text.hpp"
#include "prometheus/basic_auth.hpp"

namespace {

#define FUZZ_CHECK(cond)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      std::fprintf(stderr, "endpoint_fuzz: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                                \
    }                                                                                              \
  } while (false)

std::string base64(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const std::uint32_t v =
        (static_cast<std::uint32_t>(static_cast<unsigned char>(in[i])) << 16U) |
        (static_cast<std::uint32_t>(static_cast<unsigned char>(in[i + 1])) << 8U) |
        static_cast<unsigned char>(in[i + 2]);
    for (int shift = 18; shift >= 0; shift -= 6) out += kAlphabet[(v >> shift) & 0x3FU];
  }
  if (i < in.size()) {
    std::uint32_t v = static_cast<std::uint32_t>(static_cast<unsigned char>(in[i])) << 16U;
    if (i + 1 < in.size())
      v |= static_cast<std::uint32_t>(static_cast<unsigned char>(in[i + 1])) << 8U;
    out += kAlphabet[(v >> 18U) & 0x3FU];
    out += kAlphabet[(v >> 12U) & 0x3FU];
    out += i + 1 < in.size() ? kAlphabet[(v >> 6U) & 0x3FU] : '=';
    out += '=';
  }
  return out;
}

// Every code point of `text` is valid UTF-8 (decode_utf8 reports U+FFFD for an invalid sequence,
// so a U+FFFD must be the real three bytes).
bool valid_utf8(std::string_view text) {
  while (!text.empty()) {
    const auto c = pushstage::detail::decode_utf8(text);
    if (c.value == 0xFFFD && text.substr(0, 3) != "\xEF\xBF\xBD") return false;
    text.remove_prefix(c.bytes);
  }
  return true;
}

// No raw control character, and every '"' but the first and last is escaped.
bool quoted_safely(std::string_view out) {
  if (out.size() < 2 || out.front() != '"' || out.back() != '"') return false;
  const std::string_view inner = out.substr(1, out.size() - 2);
  for (std::size_t i = 0; i < inner.size(); ++i) {
    const auto b = static_cast<unsigned char>(inner[i]);
    if (b < 0x20 || b == 0x7F) return false;
    if (inner[i] == '\\') {
      if (i + 1 == inner.size()) return false;  // would escape the closing quote
      ++i;
      continue;
    }
    if (inner[i] == '"') return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace pushstage;
  FuzzedDataProvider in(data, size);
  const auto pick = in.ConsumeIntegralInRange<int>(0, 4);
  switch (pick) {
    case 0: {
      const std::string header = in.ConsumeRemainingBytesAsString();
      const auto found = prometheus::detail::parse_basic_auth(header);
      if (found) {
        FUZZ_CHECK(found->user.find(':') == std::string::npos);
        const auto again = prometheus::detail::parse_basic_auth(
            "Basic " + base64(found->user + ":" + found->password));
        FUZZ_CHECK(again && again->user == found->user && again->password == found->password);
      }
      break;
    }
    case 1: {
      const std::string name = in.ConsumeRemainingBytesAsString();
      std::string out;
      detail::append_json_string(out, name);
      FUZZ_CHECK(valid_utf8(out));
      FUZZ_CHECK(quoted_safely(out));
      FUZZ_CHECK(out.find_first_of("<>&") == std::string::npos);
      break;
    }
    case 2: {
      const std::string name = in.ConsumeRemainingBytesAsString();
      std::string out;
      detail::append_dot_string(out, name);
      FUZZ_CHECK(valid_utf8(out));
      FUZZ_CHECK(quoted_safely(out));
      break;
    }
    case 4: {
      std::string user = in.ConsumeRandomLengthString(32);
      std::erase(user, ':');
      const std::string scheme = in.ConsumeBool() ? "basic" : "BASIC";
      const std::string spaces(in.ConsumeIntegralInRange<std::size_t>(1, 3), ' ');
      const std::string password = in.ConsumeRemainingBytesAsString();
      const auto found = prometheus::detail::parse_basic_auth(scheme + spaces +
                                                              base64(user + ":" + password) + " ");
      FUZZ_CHECK(found && found->user == user && found->password == password);
      break;
    }
    default: {
      const std::string a = in.ConsumeRandomLengthString(64);
      const std::string b = in.ConsumeRemainingBytesAsString();
      FUZZ_CHECK(prometheus::detail::same_secret(a, a));
      FUZZ_CHECK(prometheus::detail::same_secret(a, b) == (a == b));
      break;
    }
  }
  return 0;
}
