// creds_file.cpp: see creds_file.hpp.
#include "creds_file.hpp"

namespace pushstage::nats::detail {
namespace {

bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\r'; }

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// The next line of `rest` (without '\n', trimmed), advancing past it; nullopt at the end.
std::optional<std::string_view> next_line(std::string_view& rest) noexcept {
  if (rest.empty()) return std::nullopt;
  const auto nl = rest.find('\n');
  const std::string_view line = rest.substr(0, nl);
  rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
  return trim(line);
}

bool is_marker(std::string_view line) noexcept {
  return line.size() >= 6 && line.substr(0, 3) == "---" && line.substr(line.size() - 3) == "---";
}

}  // namespace

std::optional<std::string_view> creds_block(std::string_view text, std::string_view what) noexcept {
  std::string_view rest = text;
  while (const std::optional<std::string_view> line = next_line(rest)) {
    if (!is_marker(*line) || line->find("BEGIN") == std::string_view::npos ||
        line->find(what) == std::string_view::npos) {
      continue;
    }
    while (const std::optional<std::string_view> value = next_line(rest)) {
      if (value->empty()) continue;
      if (is_marker(*value)) return std::nullopt;
      return value;
    }
    return std::nullopt;
  }
  return std::nullopt;
}

std::optional<std::string_view> creds_seed(std::string_view text) noexcept {
  if (const auto seed = creds_block(text, "USER NKEY SEED")) return seed;
  std::string_view rest = text;
  std::optional<std::string_view> first;
  while (const std::optional<std::string_view> line = next_line(rest)) {
    if (is_marker(*line)) return std::nullopt;  // blocks, but none of a seed
    if (!first && !line->empty()) first = line;
  }
  return first;
}

}  // namespace pushstage::nats::detail
