// nats_parse_fuzz.cpp: libFuzzer target for every parser of pushstage::nats that reads bytes from
// outside the process, without a server or nats.c (src/nats/*.cpp compiled in). The first byte
// picks what to feed:
//   0  parse_ack_reply: arbitrary bytes as a JetStream reply subject (the broker writes it)
//   1  parse_ack_reply: a reply assembled from fuzzed tokens, numbers and dots (reaches the
//      accepting paths); what it accepts must come back from the subject rebuilt from its parts
//   2  parse_permission_violation: arbitrary bytes as a server error text; a subject it reads
//      must sit between quotes in the text, and a canonical text must read back the same
//   3  redacted_url / parse_server_url: arbitrary bytes as ConnectOptions::url (and the bench's
//      --broker URL); redacting twice changes nothing, every item that parses is printed from
//      its parts
//   4  redacted_url: a URL list with a secret planted as user:SECRET@ or SECRET@ (a token, so
//      without ':') among fuzzed items: the secret must not be printed
//   5  creds_block / creds_seed: arbitrary bytes as a .creds or seed file; a value found is one
//      trimmed line of the text, and a value written between markers is found again
// A crash, a sanitizer report or a broken property aborts.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ack_reply.hpp"
#include "creds_file.hpp"
#include "pushstage/nats/connect_options.hpp"
#include "server_error.hpp"
#include "server_url.hpp"

namespace {

using namespace pushstage::nats;

#define FUZZ_CHECK(cond)                                                                     \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "nats_parse_fuzz: %s:%d: check failed: %s\n", __FILE__, __LINE__, \
                   #cond);                                                                   \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

void check_ack_reply(const std::string& reply) {
  const auto r = detail::parse_ack_reply(reply);
  if (!r) return;
  FUZZ_CHECK(!r->stream.empty() && !r->consumer.empty());
  FUZZ_CHECK(r->stream.find('.') == std::string_view::npos);
  FUZZ_CHECK(r->consumer.find('.') == std::string_view::npos);
  FUZZ_CHECK(r->timestamp >= 0);
  // Rebuilt from its parts (numbers without leading zeros), it reads back the same.
  std::string again = "$JS.ACK.";
  if (!r->account_hash.empty()) {
    again += (r->domain.empty() ? std::string("_") : std::string(r->domain)) + "." +
             std::string(r->account_hash) + ".";
  }
  again += std::string(r->stream) + "." + std::string(r->consumer) + "." +
           std::to_string(r->delivered) + "." + std::to_string(r->stream_sequence) + "." +
           std::to_string(r->consumer_sequence) + "." + std::to_string(r->timestamp) + "." +
           std::to_string(r->pending);
  const auto back = detail::parse_ack_reply(again);
  FUZZ_CHECK(back.has_value());
  FUZZ_CHECK(back->stream == r->stream && back->consumer == r->consumer);
  FUZZ_CHECK(back->domain == r->domain && back->account_hash == r->account_hash);
  FUZZ_CHECK(back->delivered == r->delivered && back->stream_sequence == r->stream_sequence);
  FUZZ_CHECK(back->consumer_sequence == r->consumer_sequence);
  FUZZ_CHECK(back->timestamp == r->timestamp && back->pending == r->pending);
}

std::string assembled_reply(FuzzedDataProvider& in) {
  std::string reply = in.ConsumeBool() ? "$JS.ACK." : in.ConsumeRandomLengthString(10);
  const int tokens = in.ConsumeIntegralInRange<int>(0, 14);
  for (int i = 0; i < tokens && in.remaining_bytes() > 0; ++i) {
    if (i > 0) reply += '.';
    switch (in.ConsumeIntegralInRange<int>(0, 3)) {
      case 0:
        reply += std::to_string(in.ConsumeIntegral<std::uint64_t>());
        break;
      case 1:
        reply += in.ConsumeBool() ? "_" : "9223372036854775808";
        break;
      default:
        reply += in.ConsumeRandomLengthString(12);
        break;
    }
  }
  return reply;
}

void check_violation(const std::string& text) {
  const auto v = detail::parse_permission_violation(text);
  if (!v) return;
  FUZZ_CHECK(has(text, "Permissions Violation for "));
  if (!v->subject.empty()) {
    FUZZ_CHECK(!has(v->subject, "\""));
    FUZZ_CHECK(has(text, " to \"" + v->subject + "\""));
  }
  const bool publish = v->kind == detail::PermissionViolation::Kind::Publish;
  const std::string canonical = std::string("Permissions Violation for ") +
                                (publish ? "Publish" : "Subscription") + " to \"" + v->subject +
                                "\"";
  const auto back = detail::parse_permission_violation(canonical);
  FUZZ_CHECK(back.has_value());
  FUZZ_CHECK(back->kind == v->kind && back->subject == v->subject);
}

void check_url(const std::string& list) {
  const std::string once = redacted_url(list);
  FUZZ_CHECK(redacted_url(once) == once);
  const bool may_hold_secret = has(list, "@");
  for (const std::string_view item : detail::split_server_urls(list)) {
    const auto u = detail::parse_server_url(item);
    if (!u) continue;
    FUZZ_CHECK(!u->host.empty());
    FUZZ_CHECK(u->port.empty() || (u->port.size() <= 5 && u->port.front() != '-'));
    // What a parsed item is printed from never includes its password or token.
    if (u->has_userinfo) FUZZ_CHECK(has(once, "***@" + std::string(u->host)));
  }
  if (!may_hold_secret) FUZZ_CHECK(!has(once, "***") || has(list, "***"));
}

// Text without the characters that end a URL item or make up the mask.
std::string plain(FuzzedDataProvider& in, std::size_t max) {
  std::string s = in.ConsumeRandomLengthString(max);
  std::string out;
  for (const char c : s) {
    if (c != ',' && c != '*') out += c;
  }
  return out;
}

void check_planted_secret(FuzzedDataProvider& in) {
  std::string secret = plain(in, 24);
  const bool with_user = in.ConsumeBool();
  // A token holding ':' reads as user:password (so does it for nats.c): its start is a user name.
  if (!with_user) std::erase(secret, ':');
  if (secret.size() < 4) return;
  const std::string scheme = in.ConsumeBool() ? "nats://" : in.ConsumeBool() ? "tls://" : "";
  const std::string user = with_user ? plain(in, 8) + ":" : "";
  const std::string planted = scheme + user + secret + "@" + plain(in, 20);  // host, port, ...
  std::string list;
  const int before = in.ConsumeIntegralInRange<int>(0, 3);
  const int after = in.ConsumeIntegralInRange<int>(0, 3);
  for (int i = 0; i < before; ++i) list += plain(in, 30) + ",";
  const std::size_t at = list.size() + scheme.size() + user.size();  // where the secret is
  list += planted;
  for (int i = 0; i < after; ++i) list += "," + plain(in, 30);
  const std::string elsewhere = list.substr(0, at) + "\n" + list.substr(at + secret.size());
  if (has(elsewhere, secret)) return;  // also written outside the user-info: not only a secret
  const std::string printed = redacted_url(list);
  if (has(printed, secret)) {
    std::fprintf(stderr, "nats_parse_fuzz: '%s' printed as '%s' shows the secret '%s'\n",
                 list.c_str(), printed.c_str(), secret.c_str());
    std::abort();
  }
}

void check_found_line(const std::string& text, std::optional<std::string_view> value) {
  if (!value) return;
  FUZZ_CHECK(!value->empty());
  FUZZ_CHECK(value->find('\n') == std::string_view::npos);
  FUZZ_CHECK(value->front() != ' ' && value->back() != ' ' && value->back() != '\r');
  // A view into the text itself.
  FUZZ_CHECK(value->data() >= text.data() &&
             value->data() + value->size() <= text.data() + text.size());
}

void check_creds(const std::string& text) {
  check_found_line(text, detail::creds_block(text, "NATS USER JWT"));
  check_found_line(text, detail::creds_seed(text));
  // Whatever one line the text starts with, written as a .creds file it is found again.
  const std::string value(text.substr(0, text.find('\n')));
  const std::string file = "-----BEGIN NATS USER JWT-----\n" + value +
                           "\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n" +
                           value + "\n------END USER NKEY SEED------\n";
  const auto jwt = detail::creds_block(file, "NATS USER JWT");
  const auto seed = detail::creds_seed(file);
  const auto trimmed = [](std::string v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t' || v.front() == '\r'))
      v.erase(0, 1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t' || v.back() == '\r')) v.pop_back();
    return v;
  }(value);
  const bool marker = trimmed.size() >= 6 && trimmed.rfind("---", 0) == 0 &&
                      trimmed.compare(trimmed.size() - 3, 3, "---") == 0;
  if (trimmed.empty() || marker) {
    FUZZ_CHECK(!jwt.has_value());
  } else {
    FUZZ_CHECK(jwt.has_value() && *jwt == trimmed);
    FUZZ_CHECK(seed.has_value() && *seed == trimmed);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  switch (in.ConsumeIntegralInRange<int>(0, 5)) {
    case 0:
      check_ack_reply(in.ConsumeRemainingBytesAsString());
      break;
    case 1:
      check_ack_reply(assembled_reply(in));
      break;
    case 2:
      check_violation(in.ConsumeRemainingBytesAsString());
      break;
    case 3:
      check_url(in.ConsumeRemainingBytesAsString());
      break;
    case 4:
      check_planted_secret(in);
      break;
    default:
      check_creds(in.ConsumeRemainingBytesAsString());
      break;
  }
  return 0;
}
