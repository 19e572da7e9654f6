// nats_security_test: pushstage::nats against servers that require TLS and credentials (the
// nats_secure fixture, nats_secure.sh; one test starts its own). Each kind of credentials works
// end to end (Sink publishes, Source fetches, every message acked once); each refusal fails at
// once with an Error naming its cause and holding no secret, after exactly one connection attempt
// (the server's /varz total_connections), and loses or repeats no acknowledged message.
// The tests share the fixture's servers and count their connections: RESOURCE_LOCK nats_secure
// (CMakeLists.txt) keeps them from running at the same time. Each refusal prints its message and
// the attempts counted ("[refusal] ..."), for the record.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "nats_test_support.hpp"
#include "pipeline_wait.hpp"
#include "pushstage/nats/nats.hpp"

namespace pushstage::nats {
namespace {

using namespace std::chrono_literals;
using test::Admin;
using test::eventually;
using test::secure_dir;
using test::secure_file;
using test::secure_server;
using test::total_connections;
using test::unique_name;
using test::wait_elsewhere;
using test::WaitOutcome;

constexpr std::chrono::milliseconds kForever{600'000};  // longer than any test may run

std::string pki(const std::string& file) { return secure_dir() + "/pki/" + file; }
std::string secret(const std::string& name) { return secure_file("secrets/" + name); }

// The NKey seed ("SU...") of a .creds file.
std::string seed_of(const std::string& creds) {
  const std::string text = secure_file("creds/" + creds);
  const auto at = text.find("\nSU");
  return text.substr(at + 1, text.find('\n', at + 1) - at - 1);
}

// Every secret of the fixture: none may appear in a message.
std::vector<std::string> all_secrets() {
  return {secret("alice"),
          secret("bob"),
          secret("carol"),
          secret("token"),
          secure_file("nkey/user.seed"),
          seed_of("user.creds"),
          seed_of("rogue.creds")};
}

void expect_no_secret(const std::string& text, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> secrets = all_secrets();
  secrets.insert(secrets.end(), extra.begin(), extra.end());
  for (const std::string& s : secrets) {
    EXPECT_EQ(text.find(s), std::string::npos) << "a secret in: " << text;
  }
}

// TLS to fixture server `name`, verified against the fixture's CA; generous timeouts (a refusal
// must come from the server, never from a timeout).
ConnectOptions tls_to(const std::string& name) {
  ConnectOptions c;
  c.url = secure_server(name).url;
  c.tls.ca_file = pki("ca.pem");
  c.connect_timeout = 20s;
  c.request_timeout = kForever;
  return c;
}

ConnectOptions as_alice() {
  ConnectOptions c = tls_to("auth");
  c.user = "alice";
  c.password = secret("alice");
  return c;
}

ConnectOptions as(const std::string& user) {
  ConnectOptions c = tls_to("auth");
  c.user = user;
  c.password = secret(user);
  return c;
}

// The same identity for the test's own nats.c connection.
void configure(natsOptions* o, const ConnectOptions& c) {
  if (!c.user.empty()) natsOptions_SetUserInfo(o, c.user.c_str(), c.password.c_str());
  if (!c.token.empty()) natsOptions_SetToken(o, c.token.c_str());
  if (!c.nkey.empty()) natsOptions_SetNKeyFromSeed(o, c.nkey.c_str(), c.nkey_seed_file.c_str());
  if (!c.creds_file.empty()) {
    natsOptions_SetUserCredentialsFromFiles(o, c.creds_file.c_str(), nullptr);
  }
  if (!c.tls.ca_file.empty()) natsOptions_LoadCATrustedCertificates(o, c.tls.ca_file.c_str());
  if (!c.tls.cert_file.empty()) {
    natsOptions_LoadCertificatesChain(o, c.tls.cert_file.c_str(), c.tls.key_file.c_str());
  }
}

Admin admin_as(const ConnectOptions& c) {
  return Admin(c.url, [&](natsOptions* o) { configure(o, c); });
}

SourceOptions source_on(const ConnectOptions& c, const std::string& stream,
                        const std::string& consumer) {
  SourceOptions o;
  o.connection = c;
  o.stream = stream;
  o.consumer = consumer;
  o.ack_wait = 60s;
  o.poll = 100ms;
  return o;
}

PoolOptions pool_of(std::size_t consumers) {
  PoolOptions p;
  p.consumers = consumers;
  p.max_demand = 2;
  p.pin = false;
  return p;
}

// ---- every kind of credentials, end to end ----

struct Credentials {
  const char* kind;
  const char* server;
  std::function<void(ConnectOptions&)> set;
  bool signs = false;  // the client signs the server's nonce (NKey, .creds)
};

std::vector<Credentials> credential_kinds() {
  return {
      {"user and password", "auth",
       [](ConnectOptions& c) {
         c.user = "alice";
         c.password = secret("alice");
       }},
      {"user and password in the url", "auth",
       [](ConnectOptions& c) { c.url.replace(0, 6, "tls://alice:" + secret("alice") + "@"); }},
      {"token", "token", [](ConnectOptions& c) { c.token = secret("token"); }},
      {"nkey", "auth",
       [](ConnectOptions& c) {
         c.nkey = secure_file("nkey/user.pub");
         c.nkey_seed_file = secure_dir() + "/nkey/user.seed";
       },
       true},
      {".creds (JWT + NKey)", "jwt",
       [](ConnectOptions& c) { c.creds_file = secure_dir() + "/creds/user.creds"; }, true},
      {"client certificate (mutual TLS)", "mtls",
       [](ConnectOptions& c) {
         c.tls.cert_file = pki("client.pem");
         c.tls.key_file = pki("client-key.pem");
       }},
  };
}

TEST(NatsSecurity, EveryKindOfCredentialsWorksEndToEnd) {
  constexpr int kMessages = 20;
  for (const Credentials& k : credential_kinds()) {
    SCOPED_TRACE(k.kind);
    std::printf("[credentials] %s, server %s\n", k.kind, k.server);
    std::fflush(stdout);
    ConnectOptions c = tls_to(k.server);
    k.set(c);
    const std::string monitor = secure_server(k.server).monitor;
    const std::string stream = unique_name("SEC");
    Admin admin = admin_as(c);
    admin.add_stream(stream, stream + ".>");
    const std::uint64_t before = total_connections(monitor);
    {
      SinkOptions so;
      so.connection = c;
      so.subject = stream + ".in";
      Sink sink(so);
      for (int i = 0; i < kMessages; ++i) sink.publish(std::to_string(i));
      ASSERT_TRUE(sink.flush(60s));
      EXPECT_EQ(sink.stats().acked, static_cast<std::uint64_t>(kMessages));
      EXPECT_EQ(sink.stats().failed, 0U);
    }
    std::mutex m;
    std::map<std::string, int> handled;
    {
      Pipeline p(source_on(c, stream, "c"), pool_of(2), [&](Message& msg) {
        const std::lock_guard lock(m);
        ++handled[std::string(msg.data())];
      });
      ASSERT_TRUE(eventually([&] {
        const test::ConsumerState s = admin.consumer(stream, "c");
        return s.ack_floor == kMessages && s.ack_pending == 0;
      })) << "not every message was acked";
      p.stop();
      EXPECT_EQ(p.source_stats().acked, static_cast<std::uint64_t>(kMessages));
      EXPECT_EQ(p.source_stats().reconnects, 0U);
    }
    EXPECT_EQ(handled.size(), static_cast<std::size_t>(kMessages));
    for (const auto& [data, times] : handled) EXPECT_EQ(times, 1) << data;
    admin.delete_stream(stream);
    // The Sink's connection and the Source's: nothing reconnected. A signing kind may connect
    // again when a signature starts with a zero byte (client.hpp, Signatures): 1 in 256 each.
    const std::uint64_t made = total_connections(monitor) - before;
    EXPECT_GE(made, 2U);
    EXPECT_LE(made, k.signs ? 4U : 2U);
  }
}

// ---- refusals at connection: one attempt, a clear cause, no secret ----

struct Refusal {
  std::string what;
  int status = 0;
  std::uint64_t attempts = 0;
};

// Builds a Sink (or, with `source`, a Source) that the server must refuse, after one attempt;
// credentials that sign (NKey, .creds) may take two (client.hpp, Signatures: 1 in 256).
Refusal refused(const char* name, const std::string& monitor, const ConnectOptions& c,
                bool source = false) {
  const bool signs = !c.nkey.empty() || !c.creds_file.empty();
  Refusal r;
  const std::uint64_t before = total_connections(monitor);
  try {
    if (source) {
      Dispatcher<Message> d;
      Source s(d, 1, source_on(c, "ANY", "c"));
    } else {
      SinkOptions so;
      so.connection = c;
      Sink sink(so);
    }
    ADD_FAILURE() << name << ": the server accepted the connection";
  } catch (const Error& e) {
    r.what = e.what();
    r.status = e.status();
  }
  r.attempts = total_connections(monitor) - before;
  std::printf("[refusal] %s: %llu connection attempt(s): %s\n", name,
              static_cast<unsigned long long>(r.attempts), r.what.c_str());
  EXPECT_GE(r.attempts, 1U) << name;
  EXPECT_LE(r.attempts, signs ? 2U : 1U) << name;
  expect_no_secret(r.what);
  return r;
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(NatsSecurity, WrongPasswordOrUnknownUserIsRefusedAtOnce) {
  const std::string monitor = secure_server("auth").monitor;
  ConnectOptions c = as_alice();
  const std::string wrong = "wrong-" + secret("carol");  // never a valid one
  c.password = wrong;
  Refusal r = refused("wrong password", monitor, c);
  EXPECT_EQ(r.status, NATS_CONNECTION_AUTH_FAILED);
  EXPECT_TRUE(has(r.what, "Sink: cannot connect to " + secure_server("auth").url +
                              " as user 'alice': authentication failed: the server refused these "
                              "credentials (server: Authorization Violation)"))
      << r.what;
  EXPECT_FALSE(has(r.what, wrong)) << r.what;

  r = refused("wrong password, through a Source", monitor, c, /*source=*/true);
  EXPECT_TRUE(has(r.what, "Source: cannot connect to")) << r.what;
  EXPECT_TRUE(has(r.what, "authentication failed")) << r.what;

  c.user = "mallory";
  r = refused("unknown user", monitor, c);
  EXPECT_EQ(r.status, NATS_CONNECTION_AUTH_FAILED);
  EXPECT_TRUE(has(r.what, "as user 'mallory': authentication failed")) << r.what;

  // In the URL: printed redacted.
  ConnectOptions in_url = tls_to("auth");
  in_url.url.replace(0, 6, "tls://alice:" + wrong + "@");
  r = refused("wrong password in the url", monitor, in_url);
  EXPECT_TRUE(has(r.what, "cannot connect to tls://alice:***@127.0.0.1:")) << r.what;
  EXPECT_TRUE(has(r.what, "as user 'alice' (from the url): authentication failed")) << r.what;
  EXPECT_FALSE(has(r.what, wrong)) << r.what;
}

TEST(NatsSecurity, WrongTokenNKeyOrCredsAreRefusedAtOnce) {
  ConnectOptions t = tls_to("token");
  t.token = secret("alice");  // a token, just not this server's
  Refusal r = refused("wrong token", secure_server("token").monitor, t);
  EXPECT_EQ(r.status, NATS_CONNECTION_AUTH_FAILED);
  EXPECT_TRUE(has(r.what, "with a token: authentication failed")) << r.what;

  // The NKey user's public key, signed with another key's seed.
  const std::string other_seed = std::filesystem::temp_directory_path() / unique_name("seed");
  {
    std::ofstream out(other_seed);
    out << seed_of("rogue.creds") << "\n";
  }
  ConnectOptions n = tls_to("auth");
  n.nkey = secure_file("nkey/user.pub");
  n.nkey_seed_file = other_seed;
  r = refused("nkey signed with the wrong seed", secure_server("auth").monitor, n);
  std::filesystem::remove(other_seed);
  EXPECT_EQ(r.status, NATS_CONNECTION_AUTH_FAILED);
  EXPECT_TRUE(has(r.what, "as NKey user " + n.nkey + ": authentication failed")) << r.what;

  for (const char* creds : {"expired.creds", "rogue.creds"}) {
    ConnectOptions j = tls_to("jwt");
    j.creds_file = secure_dir() + "/creds/" + creds;
    r = refused(creds, secure_server("jwt").monitor, j);
    EXPECT_EQ(r.status, NATS_CONNECTION_AUTH_FAILED);
    EXPECT_TRUE(
        has(r.what, "with the credentials of '" + j.creds_file + "': authentication failed"))
        << r.what;
  }
}

TEST(NatsSecurity, ServerCertificateIsVerified) {
  const std::string monitor = secure_server("auth").monitor;
  ConnectOptions c = as_alice();
  c.tls.ca_file = pki("other-ca.pem");
  Refusal r = refused("server certificate from an unknown CA", monitor, c);
  EXPECT_EQ(r.status, NATS_SSL_ERROR);
  EXPECT_TRUE(has(r.what,
                  "TLS handshake failed: the server's certificate is not signed by a CA "
                  "of tls.ca_file '" +
                      pki("other-ca.pem") + "'"))
      << r.what;

  ConnectOptions e = tls_to("expired");
  r = refused("expired server certificate", secure_server("expired").monitor, e);
  EXPECT_EQ(r.status, NATS_SSL_ERROR);
  EXPECT_TRUE(has(r.what, "TLS handshake failed: the server's certificate has expired")) << r.what;

  c = as_alice();
  c.tls.server_name = "wrong.example";
  r = refused("server certificate for another name", monitor, c);
  EXPECT_EQ(r.status, NATS_SSL_ERROR);
  EXPECT_TRUE(has(r.what,
                  "the server's certificate is not for 'wrong.example' "
                  "(tls.server_name)"))
      << r.what;

  // By default the name checked is the URL's host: the certificate names 127.0.0.1 only.
  c = as_alice();
  c.url.replace(c.url.find("127.0.0.1"), 9, "localhost");
  r = refused("server certificate not for the URL's host", monitor, c);
  EXPECT_EQ(r.status, NATS_SSL_ERROR);
  EXPECT_TRUE(has(r.what, "the server's certificate is not for the URL's host")) << r.what;
}

// How many lines of the fixture server's log hold `text`.
std::size_t log_lines(const std::string& server, const std::string& text) {
  std::ifstream in(secure_dir() + "/" + server + "/server.log");
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) n += has(line, text) ? 1 : 0;
  return n;
}

TEST(NatsSecurity, ClientCertificateIsRequiredAndVerified) {
  const std::string monitor = secure_server("mtls").monitor;
  struct Case {
    const char* name;
    const char* cert;  // nullptr: none
    const char* server_says;
  };
  for (const Case& k :
       {Case{"no client certificate", nullptr, "didn't provide a certificate"},
        Case{"expired client certificate", "expired-client", "certificate has expired"},
        Case{"client certificate from an unknown CA", "rogue-client",
             "certificate signed by unknown authority"}}) {
    SCOPED_TRACE(k.name);
    ConnectOptions c = tls_to("mtls");
    if (k.cert != nullptr) {
      c.tls.cert_file = pki(std::string(k.cert) + ".pem");
      c.tls.key_file = pki(std::string(k.cert) + "-key.pem");
    }
    const std::size_t logged = log_lines("mtls", k.server_says);
    const Refusal r = refused(k.name, monitor, c);
    EXPECT_TRUE(has(r.what, "the server closed the connection while setting up TLS")) << r.what;
    EXPECT_TRUE(has(r.what, k.cert == nullptr ? std::string("none is given")
                                              : "it refuses tls.cert_file '" + c.tls.cert_file))
        << r.what;
    // The client only sees the connection closed (TLS 1.3); the server says why.
    EXPECT_TRUE(eventually([&] { return log_lines("mtls", k.server_says) > logged; }))
        << "the server did not log '" << k.server_says << "'";
  }
}

TEST(NatsSecurity, PlainConnectionToATlsOnlyServerIsRefused) {
  ConnectOptions c = as_alice();
  c.url.replace(0, 3, "nats");  // tls:// -> nats://
  c.tls = TlsOptions{};
  const Refusal r =
      refused("plain connection to a TLS-only server", secure_server("auth").monitor, c);
  EXPECT_EQ(r.status, NATS_SSL_ERROR);
  EXPECT_TRUE(has(r.what, "the server requires TLS, and this connection is not configured for it"))
      << r.what;

  // The other way round: TLS asked of a server that has none.
  test::LocalServer plain(std::string{});
  ConnectOptions t;
  t.url = "tls://127.0.0.1:" + std::to_string(plain.port());
  t.tls.ca_file = pki("ca.pem");
  const Refusal p = refused("TLS to a server without TLS", plain.monitor(), t);
  EXPECT_EQ(p.status, NATS_SECURE_CONNECTION_WANTED);
  EXPECT_TRUE(has(p.what, "but the server does not offer it")) << p.what;
}

// ---- refusals of a subject: the connection stays, the refused work fails at once ----

TEST(NatsSecurity, PublishToAForbiddenSubjectFailsAtOnceAndSettlesItsInput) {
  const std::string monitor = secure_server("auth").monitor;
  Admin admin = admin_as(as_alice());
  const std::string tag = unique_name("t");
  const std::string secret_stream = unique_name("SECRET");
  const std::string open_stream = unique_name("OPEN");
  admin.add_stream(secret_stream, "secret." + tag + ".>");
  admin.add_stream(open_stream, "open." + tag + ".>");
  admin.publish("open." + tag + ".in", "input");  // a message for a Source to hand over

  const std::uint64_t before = total_connections(monitor);
  std::mutex m;
  std::vector<Error> reported;
  SinkOptions so;
  so.connection = as("bob");
  so.ack_timeout = kForever;  // a refusal must not wait for the acknowledgement timeout
  so.on_error = [&](const Error& e) {
    const std::lock_guard lock(m);
    reported.push_back(e);
  };
  Sink sink(so);
  sink.publish("secret." + tag + ".x", "refused");
  ASSERT_TRUE(sink.flush(60s)) << "the refused publish waited for its acknowledgement";
  EXPECT_EQ(sink.stats().failed, 1U);
  EXPECT_EQ(sink.stats().acked, 0U);
  {
    const std::lock_guard lock(m);
    ASSERT_EQ(reported.size(), 1U);
    const std::string what = reported[0].what();
    std::printf("[refusal] publish to a forbidden subject: %s\n", what.c_str());
    EXPECT_EQ(reported[0].status(), NATS_NOT_PERMITTED);
    EXPECT_TRUE(has(what, "Sink: publish to 'secret." + tag +
                              ".x' failed: not permitted by the server: Permissions Violation "
                              "for Publish to \"secret." +
                              tag + ".x\""))
        << what;
    expect_no_secret(what);
  }
  // The connection is fine for what bob may do.
  sink.publish("open." + tag + ".y", "allowed");
  ASSERT_TRUE(sink.flush(60s));
  EXPECT_EQ(sink.stats().acked, 1U);

  // With an input: the input is failed (nak'ed, redelivered), as for any output not stored.
  {
    Dispatcher<Message> d;
    Source source(d, 1, source_on(as_alice(), open_stream, "c"));
    auto consumer = d.consumer();
    std::optional<Message> input = consumer.pop_for(60s);
    ASSERT_TRUE(input.has_value());
    sink.publish("secret." + tag + ".z", "refused", std::move(*input));
    ASSERT_TRUE(sink.flush(60s));
    EXPECT_TRUE(eventually([&] { return source.stats().naked == 1; }));
    EXPECT_EQ(source.stats().acked, 0U);
    source.stop();
  }
  EXPECT_EQ(sink.stats().failed, 2U);
  EXPECT_EQ(admin.stream_messages(secret_stream), 0U);
  // The Sink and the Source: one connection each, none reconnected.
  EXPECT_EQ(total_connections(monitor) - before, 2U);
  admin.delete_stream(secret_stream);
  admin.delete_stream(open_stream);
}

// The refusal is reported on nats.c's callback thread, where the Sink fails the input and drops
// it; when that was the last reference to a stopped Source's core, the core's connection closes
// on that very thread, and must not wait there for a callback that this thread would deliver.
TEST(NatsSecurity, ARefusalThatDropsTheLastMessageOfAStoppedSourceDoesNotHang) {
  Admin admin = admin_as(as_alice());
  const std::string tag = unique_name("t");
  const std::string stream = unique_name("LAST");
  admin.add_stream(stream, "open." + tag + ".>");
  admin.publish("open." + tag + ".in", "input");
  std::optional<Message> input;
  {
    Dispatcher<Message> d;
    Source source(d, 1, source_on(as_alice(), stream, "c"));
    auto consumer = d.consumer();
    input = consumer.pop_for(60s);
    ASSERT_TRUE(input.has_value());
  }  // the Source is gone; `input` holds the last reference to its core
  std::atomic<bool> done{false};
  std::thread worker([&] {
    SinkOptions so;
    so.connection = as("bob");
    so.ack_timeout = kForever;
    Sink sink(so);
    sink.publish("secret." + tag + ".x", "refused", std::move(*input));
    (void)sink.flush(60s);
    done = true;
  });
  const bool finished = eventually([&] { return done.load(); });
  if (!finished) {  // hung for good: nothing can end the test normally
    std::fprintf(stderr, "closing the Source's connection on nats.c's callback thread hung\n");
    std::_Exit(1);
  }
  worker.join();
  // The input was failed (nak'ed): the broker delivers it again, at once.
  {
    Dispatcher<Message> d;
    Source source(d, 1, source_on(as_alice(), stream, "c"));
    auto consumer = d.consumer();
    std::optional<Message> again = consumer.pop_for(60s);
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(again->data(), "input");
    EXPECT_EQ(again->deliveries(), 2U);
    again->ack();
  }
  admin.delete_stream(stream);
}

TEST(NatsSecurity, FetchThroughAForbiddenConsumerStopsTheSourceAndLosesNothing) {
  const std::string monitor = secure_server("auth").monitor;
  Admin admin = admin_as(as_alice());
  const std::string stream = unique_name("NONEXT");
  admin.add_stream(stream, stream + ".>");
  admin.publish_ids(stream + ".x", 1, 5);
  const std::uint64_t before = total_connections(monitor);
  std::atomic<int> handled{0};
  // bob may look the stream up and create the consumer, but not fetch through it.
  Pipeline p(source_on(as("bob"), stream, "denied"), pool_of(1), [&](Message&) { ++handled; });
  const WaitOutcome w = wait_elsewhere(p);
  const std::string& error = w.error;
  if (w.threw) {
    EXPECT_EQ(w.status, NATS_NOT_PERMITTED);
  }
  ASSERT_TRUE(w.returned) << "the source kept going after the server refused its fetches";
  std::printf("[refusal] fetch through a forbidden consumer: %llu connection attempt(s): %s\n",
              static_cast<unsigned long long>(total_connections(monitor) - before), error.c_str());
  EXPECT_TRUE(has(error, "Source: the server at " + secure_server("auth").url +
                             " refused a request of consumer 'denied' of stream '" + stream +
                             "'; stopped: Permissions Violation for Publish to "
                             "\"$JS.API.CONSUMER.MSG.NEXT." +
                             stream + ".denied\""))
      << error;
  expect_no_secret(error);
  EXPECT_EQ(handled.load(), 0);
  EXPECT_EQ(p.source_stats().fetched, 0U);
  EXPECT_TRUE(p.source_stats().stopped);
  EXPECT_EQ(total_connections(monitor) - before, 1U);
  // Nothing was taken: every message still waits for a consumer that may fetch.
  const test::ConsumerState s = admin.consumer(stream, "denied");
  EXPECT_EQ(s.pending, 5U);
  EXPECT_EQ(s.ack_floor, 0U);
  admin.delete_stream(stream);
}

TEST(NatsSecurity, ForbiddenLookupOrReplyInboxFailsTheSourceAtOnce) {
  // request_timeout is ten minutes (tls_to): only the server's refusal can end these in time.
  const std::string monitor = secure_server("auth").monitor;
  struct Case {
    const char* name;
    const char* user;
    const char* expect;
  };
  for (const Case& k :
       {Case{"lookup of a forbidden stream", "bob",
             "Source: cannot look up stream 'LOCKED' on %URL%: not permitted by the server: "
             "Permissions Violation for Publish to \"$JS.API.STREAM.INFO.LOCKED\""},
        Case{"subscription to the reply inbox", "carol",
             "Source: cannot look up stream 'LOCKED' on %URL%: not permitted by the server: "
             "Permissions Violation for Subscription to \"_INBOX."}}) {
    SCOPED_TRACE(k.name);
    std::string expect = k.expect;
    expect.replace(expect.find("%URL%"), 5, secure_server("auth").url);
    const std::uint64_t before = total_connections(monitor);
    std::string what;
    try {
      Dispatcher<Message> d;
      Source s(d, 1, source_on(as(k.user), "LOCKED", "c"));
      ADD_FAILURE() << "the source started";
    } catch (const Error& e) {
      what = e.what();
      EXPECT_EQ(e.status(), NATS_NOT_PERMITTED);
    }
    const std::uint64_t attempts = total_connections(monitor) - before;
    std::printf("[refusal] %s: %llu connection attempt(s): %s\n", k.name,
                static_cast<unsigned long long>(attempts), what.c_str());
    EXPECT_EQ(attempts, 1U);
    EXPECT_TRUE(has(what, expect)) << what;
    expect_no_secret(what);
  }
}

TEST(NatsSecurity, ForbiddenReplyInboxFailsEveryPublishOfTheSink) {
  const std::string monitor = secure_server("auth").monitor;
  Admin admin = admin_as(as_alice());
  const std::string tag = unique_name("t");
  const std::string stream = unique_name("INBOX");
  admin.add_stream(stream, "open." + tag + ".>");
  const std::uint64_t before = total_connections(monitor);
  std::mutex m;
  std::vector<std::string> reported;
  SinkOptions so;
  so.connection = as("carol");
  so.ack_timeout = kForever;
  so.on_error = [&](const Error& e) {
    const std::lock_guard lock(m);
    reported.emplace_back(e.what());
  };
  Sink sink(so);
  sink.publish("open." + tag + ".x", "unconfirmed");
  ASSERT_TRUE(sink.flush(60s)) << "the publish waited for an acknowledgement that cannot come";
  EXPECT_EQ(sink.stats().failed, 1U);
  {
    const std::lock_guard lock(m);
    ASSERT_EQ(reported.size(), 1U);
    std::printf("[refusal] subscription to the acknowledgements' inbox: %s\n", reported[0].c_str());
    EXPECT_TRUE(has(reported[0], "Sink: publish to 'open." + tag +
                                     ".x' failed: not permitted by the server: Permissions "
                                     "Violation for Subscription to \"_INBOX."))
        << reported[0];
    expect_no_secret(reported[0]);
  }
  try {
    sink.publish("open." + tag + ".y", "refused at once");
    ADD_FAILURE() << "a publish was accepted that can never be confirmed";
  } catch (const Error& e) {
    std::printf("[refusal] publish after the inbox was refused: %s\n", e.what());
    EXPECT_EQ(e.status(), NATS_NOT_PERMITTED);
    EXPECT_TRUE(has(e.what(), "Sink: the server at " + secure_server("auth").url +
                                  " refuses the subscription to the acknowledgements' inbox, so "
                                  "no publish can be confirmed: Permissions Violation for "
                                  "Subscription to \"_INBOX."))
        << e.what();
  }
  EXPECT_EQ(total_connections(monitor) - before, 1U);
  // The first publish was stored; only its acknowledgement could not arrive. Reported failed, it
  // would be published again by whoever retries it: at least once, as after a lost ack.
  EXPECT_EQ(admin.stream_messages(stream), 1U);
  admin.delete_stream(stream);
}

// ---- a signature that nats.c 3.4.1 would send empty ----

std::string base64url(const unsigned char* data, int n) {
  static const char* const kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  for (int i = 0; i < n; ++i) {
    buffer = (buffer << 8) | data[i];
    bits += 8;
    for (; bits >= 6; bits -= 6) out += kAlphabet[(buffer >> (bits - 6)) & 63];
  }
  if (bits > 0) out += kAlphabet[(buffer << (6 - bits)) & 63];
  return out;
}

// A nonce whose signature by `seed` starts with a zero byte (`zero`) or does not.
std::string nonce_whose_signature(const std::string& seed, bool zero, std::string* encoded) {
  for (int i = 0;; ++i) {
    const std::string nonce = "nonce" + std::to_string(i);
    unsigned char* sig = nullptr;
    int n = 0;
    EXPECT_EQ(nats_Sign(seed.c_str(), nonce.c_str(), &sig, &n), NATS_OK);
    const bool starts_with_zero = n > 0 && sig[0] == 0;
    if (encoded != nullptr) *encoded = base64url(sig, n);
    std::free(sig);
    if (starts_with_zero == zero) return nonce;
  }
}

// Just enough of a NATS server for a client's handshake, one connection after the other: INFO
// with the next of `nonces`, then CONNECT and PING read; PONG when CONNECT holds a signature,
// -ERR 'Authorization Violation' when not; then it waits for the client to close.
class HandshakeServer {
 public:
  explicit HandshakeServer(std::vector<std::string> nonces) : nonces_(std::move(nonces)) {
    listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (listener_ < 0 || bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        listen(listener_, 4) != 0 ||
        getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      throw std::runtime_error("test setup: cannot listen");
    }
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~HandshakeServer() {
    shutdown(listener_, SHUT_RDWR);  // ends an accept() still waiting
    thread_.join();
    close(listener_);
  }
  HandshakeServer(const HandshakeServer&) = delete;
  HandshakeServer& operator=(const HandshakeServer&) = delete;

  int port() const { return port_; }
  // Per connection: the "sig" of its CONNECT ("" when empty or absent), or "(no CONNECT)".
  std::vector<std::string> signatures() {
    const std::lock_guard lock(mu_);
    return signatures_;
  }

 private:
  void serve() {
    for (const std::string& nonce : nonces_) {
      const int fd = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      const std::string info =
          "INFO {\"server_id\":\"HANDSHAKE\",\"version\":\"2.9.10\",\"proto\":1,"
          "\"host\":\"127.0.0.1\",\"port\":" +
          std::to_string(port_) +
          ",\"headers\":true,\"max_payload\":1048576,\"auth_required\":true,"
          "\"nonce\":\"" +
          nonce + "\"}\r\n";
      (void)!write(fd, info.data(), info.size());
      std::string in;
      char buf[4096];
      ssize_t got = 0;
      while (in.find("PING\r\n") == std::string::npos && (got = read(fd, buf, sizeof buf)) > 0) {
        in.append(buf, static_cast<std::size_t>(got));
      }
      std::string sig = "(no CONNECT)";
      if (const auto c = in.find("CONNECT "); c != std::string::npos) {
        sig.clear();
        const std::string key = "\"sig\":\"";
        if (const auto k = in.find(key, c); k != std::string::npos) {
          sig = in.substr(k + key.size(), in.find('"', k + key.size()) - k - key.size());
        }
        const std::string reply = sig.empty() ? "-ERR 'Authorization Violation'\r\n" : "PONG\r\n";
        (void)!write(fd, reply.data(), reply.size());
      }
      {
        const std::lock_guard lock(mu_);
        signatures_.push_back(sig);
      }
      while (read(fd, buf, sizeof buf) > 0) {  // until the client closes
      }
      close(fd);
    }
  }

  std::vector<std::string> nonces_;
  int listener_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> signatures_;  // guarded by mu_
};

// nats.c 3.4.1 base64-encodes a signature whose first byte is 0 as nothing, so the server refuses
// the NKey (or .creds) of 1 connection in 256. Here the first nonce is such a one: the client
// must not send an empty signature, but connect again and sign the second nonce.
TEST(NatsSecurity, ASignatureStartingWithAZeroByteIsSignedAgainNotRefused) {
  ASSERT_EQ(nats_Open(-1), NATS_OK);
  const std::string seed = secure_file("nkey/user.seed");
  const std::string unlucky = nonce_whose_signature(seed, true, nullptr);
  std::string expected;
  const std::string lucky = nonce_whose_signature(seed, false, &expected);
  HandshakeServer server({unlucky, lucky});
  SinkOptions so;
  so.connection.url = "nats://127.0.0.1:" + std::to_string(server.port());
  so.connection.nkey = secure_file("nkey/user.pub");
  so.connection.nkey_seed_file = secure_dir() + "/nkey/user.seed";
  so.connection.connect_timeout = 20s;
  try {
    Sink sink(so);
  } catch (const Error& e) {
    ADD_FAILURE() << "refused: " << e.what();
  }
  const std::vector<std::string> sigs = server.signatures();
  ASSERT_EQ(sigs.size(), 2U);
  EXPECT_EQ(sigs[0], "(no CONNECT)") << "the zero-led signature was sent";
  EXPECT_EQ(sigs[1], expected);
}

// ---- credentials revoked while running: the source stops, nothing acknowledged comes back ----

std::string server_config(const std::string& password) {
  const std::string p = secure_dir() + "/pki/";
  return "tls { cert_file: \"" + p + "server.pem\"\n key_file: \"" + p +
         "server-key.pem\"\n ca_file: \"" + p + "ca.pem\"\n timeout: 5 }\n" +
         "authorization { users = [ { user: alice, password: \"" + password + "\" } ] }\n";
}

TEST(NatsSecurity, RevokedCredentialsStopTheSourceWithoutAStormOrARedelivery) {
  const std::string old_password = "old-" + secret("alice");
  const std::string new_password = "new-" + secret("alice");
  test::LocalServer server(server_config(old_password));
  ConnectOptions c;
  c.url = "tls://127.0.0.1:" + std::to_string(server.port());
  c.tls.ca_file = pki("ca.pem");
  c.user = "alice";
  c.password = old_password;
  c.reconnect_wait = 20ms;  // forever (max_reconnects -1), quickly: a storm would show
  const std::string stream = unique_name("REVOKED");
  std::mutex m;
  std::multiset<std::string> handled;
  const auto handler = [&](Message& msg) {
    const std::lock_guard lock(m);
    handled.insert(std::string(msg.data()));
  };
  {
    Admin admin = admin_as(c);
    admin.add_stream(stream, stream + ".>", /*file_storage=*/true);
    admin.publish_ids(stream + ".x", 1, 10);
  }
  Pipeline p(source_on(c, stream, "c"), pool_of(2), handler);
  ASSERT_TRUE(eventually([&] { return p.source_stats().acked == 10; }));
  {
    Admin admin = admin_as(c);
    ASSERT_TRUE(eventually([&] { return admin.consumer(stream, "c").ack_floor == 10; }));
  }
  const std::uint64_t before = total_connections(server.monitor());
  server.reload(server_config(new_password));  // alice's password changes: she is cut off
  const WaitOutcome w = wait_elsewhere(p);
  const std::string& error = w.error;
  ASSERT_TRUE(w.returned) << "the source kept reconnecting with refused credentials";
  const std::uint64_t attempts = total_connections(server.monitor()) - before;
  std::printf("[refusal] credentials revoked while running: %llu reconnection attempt(s): %s\n",
              static_cast<unsigned long long>(attempts), error.c_str());
  EXPECT_TRUE(has(error, "is closed for good")) << error;
  EXPECT_TRUE(has(error, "Authorization Violation")) << error;
  EXPECT_FALSE(has(error, old_password)) << error;
  // nats.c gives up when the server refuses the same credentials twice in a row.
  EXPECT_LE(attempts, 2U);
  EXPECT_FALSE(p.source_stats().connected);

  // With the new password: exactly what came after, nothing of what was acknowledged.
  c.password = new_password;
  {
    Admin admin = admin_as(c);
    admin.publish_ids(stream + ".x", 11, 5);
  }
  {
    Pipeline again(source_on(c, stream, "c"), pool_of(2), handler);
    ASSERT_TRUE(eventually([&] { return again.source_stats().acked == 5; }));
    again.stop();
    EXPECT_EQ(again.source_stats().redelivered, 0U);
  }
  const std::lock_guard lock(m);
  EXPECT_EQ(handled.size(), 15U);
  for (int i = 1; i <= 15; ++i) EXPECT_EQ(handled.count(std::to_string(i)), 1U) << i;
}

}  // namespace
}  // namespace pushstage::nats
