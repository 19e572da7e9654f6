// client.hpp: what Source and Sink share about nats.c: option checks, error text without
// secrets, and a connection with its JetStream context that closes itself.
//
// Callbacks: nats.c calls on_error and on_closed (below) on its one callback thread, with a
//   Callbacks object (client.cpp) as closure, which must outlive every call. After a connection
//   was established, nats.c posts the closed callback once, as the last callback of that
//   connection (it joins the connection's reader, which posts the others, first; and one thread
//   delivers them in order); a connection that fails at construction posts none. So the
//   destructor closes the connection and waits for on_closed before it frees the Callbacks,
//   except on that callback thread itself (a refusal handled there can drop the last Message of
//   a Source, whose Client then closes there), where on_closed cannot run until the current
//   callback returns: then the Callbacks are left for on_closed to free. Either way the
//   destructor first detaches the violation hook (under the Callbacks' lock, which a hook call
//   holds), so that no hook call reaches a destroyed owner.
// Owners: a Source or Sink declares its Client last, so that the Client is destroyed first and no
//   on_violation call can reach an owner whose other members are gone.
// Signatures: with an NKey or a .creds file the Client signs the server's nonce itself (sign(),
//   reading the seed file at each connection as nats.c would), because nats.c 3.4.1 sends an
//   empty signature when its first byte is 0, and the server then refuses the credentials: 1
//   connection in 256. sign() refuses such a signature instead, so that the attempt fails before
//   authentication; the constructor then connects again (a new nonce, kSignatureRetries at
//   most), and a reconnection simply goes on to its next attempt (a refusal by the server would
//   count towards nats.c's "refused twice: give up").
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "pushstage/nats/connect_options.hpp"
#include "pushstage/nats/error.hpp"
#include "pushstage/nats/message.hpp"

namespace pushstage::nats::detail {

// The opaque handle of message.hpp is nats.c's natsMsg.
inline natsMsg* native(RawMsg* m) noexcept { return reinterpret_cast<natsMsg*>(m); }
inline RawMsg* opaque(natsMsg* m) noexcept { return reinterpret_cast<RawMsg*>(m); }

// ---- option checks: std::invalid_argument "pushstage::nats: <field> must be in [lo, hi]; got v"

void check_count(std::string_view field, long long value, long long lo, long long hi);
void check_duration(std::string_view field, std::chrono::milliseconds value,
                    std::chrono::milliseconds lo, std::chrono::milliseconds hi);
// A stream or consumer name: 1..255 characters, none of . * > / \ or whitespace.
void check_name(std::string_view field, const std::string& value);
// Ranges, the URL list, one kind of credentials, TLS fields that go together. Messages name the
// field and never hold a secret.
void check_connect_options(std::string_view owner, const ConnectOptions& o);
// Whether `o` asks for TLS (TlsOptions: enabled, a tls:// URL, or any TLS field set).
[[nodiscard]] bool tls_wanted(const ConnectOptions& o);

// ---- errors ----

// The most precise text nats.c has for a failure that returned `s` on this thread: its last error
// (without the "(file.c:123): " location) or the status' name.
std::string status_text(natsStatus s);
// Error("pushstage::nats: <what>: <status_text(s)>", s, js_code). For failures that involve no
// connection; Client::error() for those that do (it removes the connection's secrets).
Error make_error(const std::string& what, natsStatus s, int js_code = 0);

// ---- a connection and its JetStream context ----

class Client {
 public:
  // Called on nats.c's callback thread with the server's text (secrets removed) each time it
  // refuses a publish or a subscription of this connection ("Permissions Violation for ...").
  // Must not throw; may call close().
  using ViolationHook = std::function<void(const std::string& text)>;

  // Checks that the files the options name can be read, connects (no retry: a bad URL, a server
  // that is down, refused credentials or a failed TLS handshake fail within connect_timeout,
  // after one attempt per URL) and opens a JetStream context; `js` may add publish-async
  // settings. Throws Error naming `owner` and the cause.
  Client(std::string_view owner, const ConnectOptions& o, const jsOptions* js = nullptr,
         ViolationHook on_violation = {});
  // close(), waits for nats.c's last callback of this connection, frees both.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Closes the connection now (nats.c flushes what is buffered, e.g. acks); requests in progress
  // fail at once. Idempotent; safe from any thread, nats.c's callbacks included.
  void close() noexcept;

  [[nodiscard]] natsConnection* nc() const noexcept { return nc_; }
  [[nodiscard]] jsCtx* js() const noexcept { return js_; }
  // The URL list, redacted (redacted_url()).
  [[nodiscard]] const std::string& url() const noexcept { return url_; }
  [[nodiscard]] bool connected() const noexcept;
  [[nodiscard]] bool closed() const noexcept;
  [[nodiscard]] std::uint64_t reconnects() const noexcept;
  // Why nats.c closed the connection for good (its last error on it, e.g. "Authorization
  // Violation" after the server refused the credentials twice while reconnecting); secrets
  // removed. Empty when it has none.
  [[nodiscard]] std::string closed_cause() const;

  // `text` with every secret of this connection's options (password, token, the URL's
  // user-info) replaced by "***".
  [[nodiscard]] std::string scrub(std::string text) const;
  // Error("pushstage::nats: <what>: <status_text(s)>", s, js_code), scrubbed.
  [[nodiscard]] Error error(const std::string& what, natsStatus s, int js_code = 0) const;

 private:
  struct Callbacks;  // client.cpp

  static void on_error(natsConnection* nc, natsSubscription* sub, natsStatus err, void* closure);
  static void on_closed(natsConnection* nc, void* closure);
  // nats.c's credential callbacks (Signatures, above); called on the connecting thread.
  static natsStatus user_jwt(char** jwt, char** error, void* closure);
  static natsStatus sign(char** error, unsigned char** signature, int* length, const char* nonce,
                         void* closure);
  // Closes, waits for on_closed, destroys the connection (and the context, when there is one).
  void shut() noexcept;

  static constexpr int kSignatureRetries = 3;

  std::string url_;
  std::vector<std::string> secrets_;
  std::string seed_file_;   // the NKey seed file or .creds file sign() reads; empty: none
  std::string creds_file_;  // the .creds file user_jwt() reads; empty: none
  // sign() refused a signature that starts with 0. Written by sign() and read by the constructor
  // on the constructing thread (nats.c connects on the caller's thread); sign() also runs on
  // nats.c's reconnect thread, where nobody reads it: atomic only so that those writes are not a
  // race, relaxed since it orders nothing.
  std::atomic<bool> zero_signature_{false};

  Callbacks* callbacks_ = nullptr;  // nats.c's closure for on_error and on_closed (Callbacks)
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
};

}  // namespace pushstage::nats::detail
