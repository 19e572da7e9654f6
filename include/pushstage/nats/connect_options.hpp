// pushstage/nats/connect_options.hpp: how a Source or Sink connects to a NATS server: where, as
// whom (one of four kinds of credentials), and over what (TLS, verified by default).
// Threading: plain value types. Every field is validated when a Source or Sink is built
//            (std::invalid_argument naming the field and what it accepts), before any I/O.
// Secrets:   passwords, tokens and the user:password@ of a URL never appear in what pushstage
//            reports: error messages (Error::what, std::invalid_argument), on_error callbacks,
//            stats. URLs are printed as redacted_url() prints them; files (seeds, keys, .creds)
//            are named by their path, never read into a message. pushstage writes no logs.
// Failure:   a connection the server refuses (credentials, TLS, a certificate) fails once, at
//            construction, with an Error naming the cause; it is not retried. (With an NKey or
//            .creds, a signature that nats.c 3.4.1 would send empty, 1 in 256, is made again on a
//            new connection before the server sees it.)
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace pushstage::nats {

// TLS: on when `enabled`, when a URL says tls://, or when any file below is set. A server that
// requires TLS refuses a connection without it (the Error says so). With TLS on, the server's
// certificate must chain to a CA of ca_file and name the server (server_name, else the URL's host),
// unless skip_verify.
struct TlsOptions {
  bool enabled = false;
  // PEM file of the CAs that sign the server's certificate; required unless skip_verify (no
  // CA is trusted by default: for a publicly signed server, the system bundle, e.g. Debian's
  // /etc/ssl/certs/ca-certificates.crt).
  std::string ca_file;
  // The name the server's certificate must carry; empty: the host of the URL.
  std::string server_name;
  // Mutual TLS: this client's certificate chain and private key (PEM files); both or neither.
  std::string cert_file;
  std::string key_file;
  // INSECURE: accept any certificate, from any server. Traffic is encrypted but anyone on the path
  // can impersonate the server and read it. For throwaway test setups only (README: Security).
  bool skip_verify = false;
};

struct ConnectOptions {
  // One server URL, or several separated by commas: [nats|tls]://[user:password@|token@]host[:port]
  // (host a name, an IPv4 address or a bracketed IPv6 address; a password holding ',' cannot be
  // given here: use `password`). Must not be empty.
  std::string url = "nats://127.0.0.1:4222";
  // The connection's name as the server shows it (monitoring, logs); may be empty.
  std::string name;
  // How long the first connection may take before the constructor throws. [1 ms, 10 min].
  std::chrono::milliseconds connect_timeout{2000};
  // After a connection is lost: attempts to reconnect (-1: forever) and the wait between them.
  // max_reconnects in [-1, 1000000]; reconnect_wait in [1 ms, 10 min]. Once the attempts are used
  // up the connection is closed for good and the Source or Sink reports it (never hangs). A server
  // that refuses the credentials twice in a row ends the attempts at once (nats.c's rule).
  int max_reconnects = -1;
  std::chrono::milliseconds reconnect_wait{250};
  // How long a JetStream API request (stream and consumer lookups) may take. [1 ms, 10 min].
  std::chrono::milliseconds request_timeout{5000};
  // true: every publish, ack and fetch request goes to the socket at once (a system call each).
  // false: nats.c's flusher thread batches writes, about a millisecond later. A Source waits for
  // a fetch round trip after each settlement, so batching slows it down: measured here with two
  // consumers and no work, 1.0 k messages/s batched against 5-6 k/s sent at once.
  bool send_asap = true;

  // ---- who this client is: at most one kind (none: the server must allow anonymous clients) ----
  // User and password, both non-empty; or in the URL (not both).
  std::string user;
  std::string password;
  // A token (the server's `authorization { token }`); or in the URL as token@host (not both).
  std::string token;
  // An NKey user: its public key ("U" and 55 more characters) and the file that holds its seed.
  std::string nkey;
  std::string nkey_seed_file;
  // Decentralized auth: a .creds file (the user's JWT and NKey seed, as `nsc` writes it), read at
  // each connection.
  std::string creds_file;

  TlsOptions tls;
};

// `url` as pushstage prints it: the password of each user:password@ and every token@ replaced by
// "***"; an item that is not a URL is shown as written when `url` holds no '@', else replaced by
// "***" whole (it might hold a secret). For logging a configuration.
[[nodiscard]] std::string redacted_url(std::string_view url) noexcept;

}  // namespace pushstage::nats
