// server_error.cpp: see server_error.hpp.
#include "server_error.hpp"

namespace pushstage::nats::detail {

std::optional<PermissionViolation> parse_permission_violation(std::string_view text) {
  constexpr std::string_view kPrefix = "Permissions Violation for ";
  constexpr std::string_view kPublish = "Publish";
  constexpr std::string_view kSubscribe = "Subscription";
  const auto at = text.find(kPrefix);
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view rest = text.substr(at + kPrefix.size());
  PermissionViolation v;
  if (rest.substr(0, kPublish.size()) == kPublish) {
    v.kind = PermissionViolation::Kind::Publish;
  } else if (rest.substr(0, kSubscribe.size()) == kSubscribe) {
    v.kind = PermissionViolation::Kind::Subscribe;
  } else {
    return std::nullopt;
  }
  const auto to = rest.find(" to \"");
  if (to == std::string_view::npos) return v;
  rest.remove_prefix(to + 5);
  const auto close = rest.find('"');
  if (close == std::string_view::npos) return v;
  v.subject = std::string(rest.substr(0, close));
  return v;
}

}  // namespace pushstage::nats::detail
