// text.hpp (private): how names and option texts a user gave are written into JSON, Graphviz DOT
// and HTTP answers: escaped so that no byte of theirs can end a string or start markup.
//   JSON: '"', '\', controls, '<', '>', '&', U+2028 and U+2029 as escapes (the text may be
//         embedded in an HTML page); bytes that are not UTF-8 become U+FFFD.
//   DOT:  '"' and '\' escaped, newline as \n, other controls as a space; not UTF-8: U+FFFD.
// Used by topology_text.cpp and the Prometheus endpoint (src/prometheus).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pushstage::detail {

// The code point at the front of `text` and the bytes it takes; an invalid or truncated sequence
// (overlong, surrogate, beyond U+10FFFF) gives U+FFFD and 1 byte. `text` must not be empty.
struct CodePoint {
  std::uint32_t value;
  std::size_t bytes;
};
CodePoint decode_utf8(std::string_view text) noexcept;
// Appends `cp` (at most U+10FFFF, not a surrogate) as UTF-8.
void append_utf8(std::string& out, std::uint32_t cp);

// Appends `text` as a JSON string, quotes included.
void append_json_string(std::string& out, std::string_view text);
// Appends `text` as a quoted Graphviz DOT string.
void append_dot_string(std::string& out, std::string_view text);
// Appends a number of seconds as JSON (up to 9 significant digits); null when not finite.
void append_json_seconds(std::string& out, double seconds);

}  // namespace pushstage::detail
