// nats_parse_test: what pushstage::nats reads from outside the process, parsed without a server
// (reply subjects, the server's error texts, URLs), and the connection options it refuses before
// any I/O. The fuzz target tests/fuzz/nats_parse_fuzz.cpp feeds the same parsers arbitrary bytes.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "ack_reply.hpp"
#include "creds_file.hpp"
#include "pushstage/nats/sink.hpp"
#include "server_error.hpp"
#include "server_url.hpp"

namespace pushstage::nats {
namespace {

using detail::parse_ack_reply;
using detail::parse_permission_violation;
using detail::PermissionViolation;

// ---- reply subjects (nats_source_test compares the parser with nats.c's on live messages) ----

TEST(NatsAckReply, ReadsBothForms) {
  auto r = parse_ack_reply("$JS.ACK.ORDERS.workers.3.42.7.1700000000000000000.5");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->stream, "ORDERS");
  EXPECT_EQ(r->consumer, "workers");
  EXPECT_EQ(r->domain, "");
  EXPECT_EQ(r->account_hash, "");
  EXPECT_EQ(r->delivered, 3U);
  EXPECT_EQ(r->stream_sequence, 42U);
  EXPECT_EQ(r->consumer_sequence, 7U);
  EXPECT_EQ(r->timestamp, 1700000000000000000);
  EXPECT_EQ(r->pending, 5U);
  r = parse_ack_reply("$JS.ACK._.HASH.ORDERS.workers.1.18446744073709551615.2.0.0.RANDOM");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->domain, "");
  EXPECT_EQ(r->account_hash, "HASH");
  EXPECT_EQ(r->stream, "ORDERS");
  EXPECT_EQ(r->stream_sequence, 18446744073709551615U);
  r = parse_ack_reply("$JS.ACK.hub.HASH.ORDERS.workers.1.2.3.4.5");  // v2 without the token
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->domain, "hub");
  EXPECT_EQ(r->pending, 5U);
}

TEST(NatsAckReply, RefusesWhatIsNotAnAckSubject) {
  const std::vector<std::string> bad = {
      "",
      "_INBOX.abc.1",
      "$JS.ACK.",
      "$JS.ACK.S.c.1.2.3.4",                       // 6 tokens
      "$JS.ACK.S.c.1.2.3.4.5.6",                   // 8 tokens
      "$JS.ACK.d.h.S.c.1.2.3.4",                   // 8 tokens after the prefix
      "$JS.ACK.S.c.x.2.3.4.5",                     // not a number
      "$JS.ACK.S.c.-1.2.3.4.5",                    // no sign
      "$JS.ACK.S.c.1.2.3.4.",                      // empty last token
      "$JS.ACK.S..1.2.3.4.5",                      // empty consumer
      "$JS.ACK.S.c.1.18446744073709551616.3.4.5",  // 2^64
      "$JS.ACK.S.c.1.2.3.9223372036854775808.5",   // timestamp past INT64_MAX
      "$js.ack.S.c.1.2.3.4.5",
  };
  for (const std::string& r : bad) {
    EXPECT_FALSE(parse_ack_reply(r).has_value()) << r;
  }
}

// ---- the server's refusals ----

TEST(NatsServerError, ReadsPermissionViolations) {
  auto v = parse_permission_violation(R"(Permissions Violation for Publish to "secret.x")");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->kind, PermissionViolation::Kind::Publish);
  EXPECT_EQ(v->subject, "secret.x");
  v = parse_permission_violation(
      R"(Permissions Violation for Subscription to "_INBOX.abc.*" using queue "q")");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->kind, PermissionViolation::Kind::Subscribe);
  EXPECT_EQ(v->subject, "_INBOX.abc.*");
  v = parse_permission_violation("Permissions Violation for Publish to secret.x");  // no quotes
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->subject, "");
  EXPECT_FALSE(parse_permission_violation("Authorization Violation").has_value());
  EXPECT_FALSE(parse_permission_violation("Permissions Violation for Something").has_value());
  EXPECT_FALSE(parse_permission_violation("").has_value());
}

// ---- .creds and seed files ----

TEST(NatsCredsFile, FindsTheJwtAndTheSeed) {
  const std::string creds =
      "-----BEGIN NATS USER JWT-----\r\n"
      "  eyJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.c2ln \r\n"
      "------END NATS USER JWT------\r\n\r\n"
      "************************* IMPORTANT *************************\n"
      "NKEY Seed printed below can be used to sign and prove identity.\n\n"
      "-----BEGIN USER NKEY SEED-----\n"
      "SUAFDITLL3D6UMT3SJTW2OOAAZKI2ESSDADNKG7PTMZ4FM6BXG3WDJZTVA\n"
      "------END USER NKEY SEED------\n";
  EXPECT_EQ(detail::creds_block(creds, "NATS USER JWT"), "eyJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.c2ln");
  EXPECT_EQ(detail::creds_seed(creds),
            "SUAFDITLL3D6UMT3SJTW2OOAAZKI2ESSDADNKG7PTMZ4FM6BXG3WDJZTVA");
  // A bare seed file.
  EXPECT_EQ(detail::creds_seed("\n  SUAFDITLL3D6UMT3\n"), "SUAFDITLL3D6UMT3");
  // Blocks, but none of a seed; a marker where the value should be; nothing at all.
  EXPECT_FALSE(detail::creds_seed("-----BEGIN NATS USER JWT-----\nx\n-----END-----\n"));
  EXPECT_FALSE(detail::creds_block("-----BEGIN NATS USER JWT-----\n------END NATS USER JWT------",
                                   "NATS USER JWT"));
  EXPECT_FALSE(detail::creds_block("", "NATS USER JWT"));
  EXPECT_FALSE(detail::creds_seed(""));
}

// ---- URLs: what is printed never holds the secret ----

TEST(NatsUrl, RedactsPasswordsAndTokens) {
  EXPECT_EQ(redacted_url("nats://alice:s3cret@10.0.0.5:4222"), "nats://alice:***@10.0.0.5:4222");
  EXPECT_EQ(redacted_url("tls://t0ken@host:4222"), "tls://***@host:4222");
  EXPECT_EQ(redacted_url("nats://a:p@h1:1, nats://h2:2,tls://b:q@[::1]:3"),
            "nats://a:***@h1:1,nats://h2:2,tls://b:***@[::1]:3");
  EXPECT_EQ(redacted_url("nats://alice:p@ss@host"), "nats://alice:***@host");  // last '@' ends it
  // A '@' before the ':': where a token would end is unclear, so all of the user-info is masked.
  EXPECT_EQ(redacted_url("nats://t0ken@x:y@host"), "nats://***@host");
  EXPECT_EQ(redacted_url("nats://me@corp.example:pw@host:1"), "nats://***@host:1");
  // A password holding ',' splits its URL: the pieces are masked whole.
  EXPECT_EQ(redacted_url("nats://alice:pa,ss@host:4222"), "***,***@host:4222");
  // Without user-info nothing can be secret: a typo stays readable.
  EXPECT_EQ(redacted_url("this is not a url"), "this is not a url");
  EXPECT_EQ(redacted_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
  EXPECT_EQ(redacted_url("127.0.0.1"), "127.0.0.1");
}

TEST(NatsUrl, ParsesTheGrammarAndRefusesTheRest) {
  const auto u = detail::parse_server_url("TLS://bob:pw@example.com:4443");
  ASSERT_TRUE(u.has_value());
  EXPECT_TRUE(detail::wants_tls(*u));
  EXPECT_TRUE(u->has_password);
  EXPECT_EQ(u->user, "bob");
  EXPECT_EQ(u->host, "example.com");
  EXPECT_EQ(u->port, "4443");
  for (const char* bad :
       {"", "nats://", "nats://host:", "nats://host:0", "nats://host:65536", "nats://host:80/path",
        "nats://ho st", "nats://[::1", "nats://[zz]:1", "://host", "na ts://host"}) {
    EXPECT_FALSE(detail::parse_server_url(bad).has_value()) << bad;
  }
}

// ---- options refused before any I/O, their messages without secrets ----

std::string refusal(const std::function<void(SinkOptions&)>& change) {
  SinkOptions o;
  o.connection.url = "nats://127.0.0.1:1";
  change(o);
  try {
    Sink sink(o);
  } catch (const std::invalid_argument& e) {
    return e.what();
  } catch (const Error& e) {
    return std::string("Error: ") + e.what();
  }
  return "(accepted)";
}

TEST(NatsConnectOptions, RefusesAmbiguousOrIncompleteCredentials) {
  std::string e = refusal([](SinkOptions& o) {
    o.connection.user = "alice";
    o.connection.password = "hunter2hunter2";
    o.connection.token = "t0kent0ken";
  });
  EXPECT_NE(e.find("must be one kind of credentials at most; got user/password, token"),
            std::string::npos)
      << e;
  EXPECT_EQ(e.find("hunter2"), std::string::npos) << e;
  EXPECT_EQ(e.find("t0ken"), std::string::npos) << e;

  e = refusal([](SinkOptions& o) {
    o.connection.url = "nats://alice:hunter2hunter2@127.0.0.1:1";
    o.connection.user = "alice";
    o.connection.password = "other";
  });
  EXPECT_NE(e.find("got user-info in url, user/password"), std::string::npos) << e;
  EXPECT_EQ(e.find("hunter2"), std::string::npos) << e;

  e = refusal([](SinkOptions& o) { o.connection.password = "hunter2hunter2"; });
  EXPECT_NE(e.find("SinkOptions::connection.user must be set with password"), std::string::npos)
      << e;
  EXPECT_EQ(e.find("hunter2"), std::string::npos) << e;

  e = refusal([](SinkOptions& o) { o.connection.user = "alice"; });
  EXPECT_NE(e.find("connection.password must not be empty with user 'alice'"), std::string::npos)
      << e;

  // A seed put where the public key goes is refused without being printed.
  const std::string seed = "SUAFDITLL3D6UMT3SJTW2OOAAZKI2ESSDADNKG7PTMZ4FM6BXG3WDJZTVA";
  e = refusal([&](SinkOptions& o) {
    o.connection.nkey = seed;
    o.connection.nkey_seed_file = "/nonexistent";
  });
  EXPECT_NE(e.find("connection.nkey must be an NKey user's public key"), std::string::npos) << e;
  EXPECT_EQ(e.find(seed), std::string::npos) << e;

  e = refusal([](SinkOptions& o) {
    o.connection.nkey = "UCKEBKXY6MF7PEIQZUD6NHGRH6OVCY27XZWX7QCRSAHMW35SJDQP4ZJA";
  });
  EXPECT_NE(e.find("connection.nkey_seed_file must name the file"), std::string::npos) << e;

  e = refusal([](SinkOptions& o) { o.connection.creds_file = "/nonexistent/user.creds"; });
  EXPECT_NE(e.find("Error: pushstage::nats: Sink: cannot read connection.creds_file "
                   "'/nonexistent/user.creds': No such file or directory"),
            std::string::npos)
      << e;
}

TEST(NatsConnectOptions, RefusesTlsThatCannotVerify) {
  std::string e = refusal([](SinkOptions& o) { o.connection.url = "tls://127.0.0.1:1"; });
  EXPECT_NE(e.find("SinkOptions::connection.tls.ca_file must name the PEM file of the CAs"),
            std::string::npos)
      << e;
  e = refusal([](SinkOptions& o) { o.connection.tls.enabled = true; });
  EXPECT_NE(e.find("tls.ca_file must name"), std::string::npos) << e;
  e = refusal([](SinkOptions& o) {
    o.connection.tls.ca_file = "/nonexistent/ca.pem";
    o.connection.tls.cert_file = "/nonexistent/client.pem";
  });
  EXPECT_NE(e.find("tls.cert_file and tls.key_file must be set together; got cert_file only"),
            std::string::npos)
      << e;
  e = refusal([](SinkOptions& o) { o.connection.tls.ca_file = "/nonexistent/ca.pem"; });
  EXPECT_NE(e.find("cannot read connection.tls.ca_file '/nonexistent/ca.pem'"), std::string::npos)
      << e;
}

TEST(NatsConnectOptions, ABadUrlIsNamedWithoutItsSecret) {
  std::string e = refusal([](SinkOptions& o) { o.connection.url = "nats://alice:hunter2@"; });
  EXPECT_NE(e.find("SinkOptions::connection.url must be a NATS URL"), std::string::npos) << e;
  EXPECT_NE(e.find("got '***'"), std::string::npos) << e;
  EXPECT_EQ(e.find("hunter2"), std::string::npos) << e;
  e = refusal([](SinkOptions& o) { o.connection.url = "http://127.0.0.1:80/x"; });
  EXPECT_NE(e.find("got 'http://127.0.0.1:80/x'"), std::string::npos) << e;
  e = refusal([](SinkOptions& o) { o.connection.url = "nats://127.0.0.1:1,ws://127.0.0.1:2"; });
  EXPECT_NE(e.find("connection.url must be a NATS URL"), std::string::npos) << e;
  // An unreachable server with credentials in the URL: the Error shows them redacted.
  e = refusal([](SinkOptions& o) { o.connection.url = "nats://alice:hunter2@127.0.0.1:1"; });
  EXPECT_NE(e.find("Error: pushstage::nats: Sink: cannot connect to nats://alice:***@127.0.0.1:1 "
                   "as user 'alice' (from the url)"),
            std::string::npos)
      << e;
  EXPECT_EQ(e.find("hunter2"), std::string::npos) << e;
}

}  // namespace
}  // namespace pushstage::nats
