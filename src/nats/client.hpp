// client.hpp: what Source and Sink share about nats.c: option checks, error text, and a
// connection with its JetStream context that closes itself.
#pragma once

#include <nats/nats.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

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
void check_connect_options(std::string_view owner, const ConnectOptions& o);

// ---- errors ----

// The most precise text nats.c has for a failure that returned `s` on this thread: its last error
// (without the "(file.c:123): " location) or the status' name.
std::string status_text(natsStatus s);
// Error("pushstage::nats: <what>: <status_text(s)>", s, js_code).
Error make_error(const std::string& what, natsStatus s, int js_code = 0);

// ---- a connection and its JetStream context ----

class Client {
 public:
  // Connects (no retry: a bad URL or a server that is down fails within connect_timeout) and
  // opens a JetStream context; `js` may add publish-async settings. Throws Error naming `owner`.
  Client(std::string_view owner, const ConnectOptions& o, const jsOptions* js = nullptr);
  // Closes the connection (nats.c flushes what is buffered, e.g. acks), frees both.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  [[nodiscard]] natsConnection* nc() const noexcept { return nc_; }
  [[nodiscard]] jsCtx* js() const noexcept { return js_; }
  [[nodiscard]] const std::string& url() const noexcept { return url_; }
  [[nodiscard]] bool connected() const noexcept;
  [[nodiscard]] bool closed() const noexcept;
  [[nodiscard]] std::uint64_t reconnects() const noexcept;

 private:
  std::string url_;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
};

}  // namespace pushstage::nats::detail
