// client.cpp: see client.hpp.
#include "client.hpp"

#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include "creds_file.hpp"
#include "server_url.hpp"

namespace pushstage::nats::detail {
namespace {

std::string ms_text(std::chrono::milliseconds v) { return std::to_string(v.count()) + " ms"; }

// Frees a natsOptions however the constructor leaves.
struct OptionsGuard {
  natsOptions* o = nullptr;
  ~OptionsGuard() { natsOptions_Destroy(o); }
};

bool valid_nkey(const std::string& key) {
  if (key.size() != 56 || key.front() != 'U') return false;
  for (const char c : key) {
    if (!((c >= 'A' && c <= 'Z') || (c >= '2' && c <= '7'))) return false;
  }
  return true;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

bool is_nats_scheme(const ServerUrl& u) {
  const std::string_view s = u.scheme;
  return s.size() == 4 && std::tolower(static_cast<unsigned char>(s[0])) == 'n' &&
         std::tolower(static_cast<unsigned char>(s[1])) == 'a' &&
         std::tolower(static_cast<unsigned char>(s[2])) == 't' &&
         std::tolower(static_cast<unsigned char>(s[3])) == 's';
}

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

// The secrets of `o` that could reach a message: the password, the token, and from each URL its
// password or token (or the whole item, when it does not parse and the list has user-info).
std::vector<std::string> secrets_of(const ConnectOptions& o) {
  std::vector<std::string> out;
  if (!o.password.empty()) out.push_back(o.password);
  if (!o.token.empty()) out.push_back(o.token);
  const bool may_hold_secret = o.url.find('@') != std::string::npos;
  for (const std::string_view item : split_server_urls(o.url)) {
    const std::optional<ServerUrl> u = parse_server_url(item);
    if (!u) {
      if (may_hold_secret && !item.empty()) out.emplace_back(item);
      continue;
    }
    if (!u->has_userinfo) continue;
    std::string_view info = item;
    if (const auto sep = info.find("://"); sep != std::string_view::npos) {
      info.remove_prefix(sep + 3);
    }
    info = info.substr(0, info.rfind('@'));
    const std::string_view secret =
        u->has_password ? info.substr(info.find(':') + 1) : info;  // user:SECRET, or TOKEN
    if (!secret.empty()) out.emplace_back(secret);
  }
  return out;
}

// Who the client says it is, for messages ("cannot connect to URL <identity>"): never a secret.
std::string identity(const ConnectOptions& o) {
  if (!o.user.empty()) return "as user '" + o.user + "'";
  if (!o.token.empty()) return "with a token";
  if (!o.nkey.empty()) return "as NKey user " + o.nkey;
  if (!o.creds_file.empty()) return "with the credentials of '" + o.creds_file + "'";
  for (const std::string_view item : split_server_urls(o.url)) {
    const std::optional<ServerUrl> u = parse_server_url(item);
    if (u && u->has_password) return "as user '" + std::string(u->user) + "' (from the url)";
    if (u && u->has_userinfo) return "with a token (from the url)";
  }
  return "without credentials";
}

// Why a first connection failed, in the terms of the options. `text` is nats.c's.
std::string explain_connect_failure(natsStatus s, const std::string& text,
                                    const ConnectOptions& o) {
  const bool tls = tls_wanted(o);
  switch (s) {
    case NATS_CONNECTION_AUTH_FAILED:
      return "authentication failed: the server refused these credentials (server: " + text + ")";
    case NATS_SECURE_CONNECTION_WANTED:
      return "TLS is required by this connection (a tls:// URL or ConnectOptions::tls) but the "
             "server does not offer it (" +
             text + ")";
    case NATS_SSL_ERROR: {
      if (!tls) {
        return "the server requires TLS, and this connection is not configured for it (use a "
               "tls:// URL and ConnectOptions::tls.ca_file): " +
               text;
      }
      std::string why = "TLS handshake failed: ";
      if (contains(text, "certificate has expired")) {
        why += "the server's certificate has expired: ";
      } else if (contains(text, "unable to get local issuer certificate") ||
                 contains(text, "self-signed certificate") ||
                 contains(text, "self signed certificate") ||
                 contains(text, "unable to verify the first certificate")) {
        why += "the server's certificate is not signed by a CA of tls.ca_file '" + o.tls.ca_file +
               "': ";
      } else if (contains(text, "hostname mismatch") || contains(text, "IP address mismatch")) {
        why += "the server's certificate is not for " +
               (o.tls.server_name.empty() ? std::string("the URL's host")
                                          : "'" + o.tls.server_name + "' (tls.server_name)") +
               ": ";
      }
      return why + text;
    }
    case NATS_PROTOCOL_ERROR:
    case NATS_IO_ERROR:
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_STALE_CONNECTION:
      if (tls) {
        // TLS 1.3: the server checks the client's certificate after the client has finished its
        // half of the handshake, and its refusal reaches nats.c only as a closed connection.
        return "the server closed the connection while setting up TLS, as a server that requires "
               "client certificates does when " +
               (o.tls.cert_file.empty()
                    ? std::string("none is given (ConnectOptions::tls.cert_file)")
                    : "it refuses tls.cert_file '" + o.tls.cert_file +
                          "' (expired, or not signed by a CA it trusts)") +
               " (nats.c: " + text + ")";
      }
      return text;
    default:
      return text;
  }
}

// The whole file, in one allocation (so that wipe() reaches every copy of a secret in it);
// false with errno set when it cannot be read.
bool read_secret_file(const std::string& path, std::string& text) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  bool ok = std::fseek(f, 0, SEEK_END) == 0;
  const long size = ok ? std::ftell(f) : -1;
  ok = ok && size >= 0 && std::fseek(f, 0, SEEK_SET) == 0;
  if (ok) {
    text.assign(static_cast<std::size_t>(size), '\0');
    ok = std::fread(text.data(), 1, text.size(), f) == text.size();
  }
  std::fclose(f);
  return ok;
}

void wipe(std::string& secret) noexcept {
  explicit_bzero(secret.data(), secret.size());
  secret.clear();
}

// A copy for nats.c, which frees what a callback returns with free().
char* c_copy(const std::string& text) noexcept { return strdup(text.c_str()); }

// Throws Error unless `path` (the option `field`) holds what a connection will read from it: a
// seed, and with `jwt` a user JWT too.
void check_credentials_file(std::string_view owner, const char* field, const std::string& path,
                            bool jwt) {
  std::string text;
  if (!read_secret_file(path, text)) {
    const int e = errno;
    throw Error("pushstage::nats: " + std::string(owner) + ": cannot read connection." + field +
                " '" + path + "': " + std::generic_category().message(e));
  }
  const bool has_jwt = creds_block(text, "NATS USER JWT").has_value();
  const bool has_seed = creds_seed(text).has_value();
  wipe(text);
  if ((jwt && !has_jwt) || !has_seed) {
    throw Error("pushstage::nats: " + std::string(owner) + ": connection." + field + " '" + path +
                "' holds no " +
                (jwt && !has_jwt ? "user JWT (a -----BEGIN NATS USER JWT----- block)"
                                 : "NKey seed (a -----BEGIN USER NKEY SEED----- block, or the "
                                   "seed alone)"));
  }
}

// Throws Error when `path` (the option `field`) cannot be opened for reading.
void check_readable(std::string_view owner, const char* field, const std::string& path) {
  if (path.empty()) return;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    const int e = errno;
    throw Error("pushstage::nats: " + std::string(owner) + ": cannot read connection." + field +
                " '" + path + "': " + std::generic_category().message(e));
  }
  std::fclose(f);
}

std::string scrub_with(const std::vector<std::string>& secrets, std::string text) {
  for (const std::string& secret : secrets) {
    for (auto at = text.find(secret); at != std::string::npos; at = text.find(secret, at + 3)) {
      text.replace(at, secret.size(), "***");
    }
  }
  return text;
}

// This thread runs one of the Client's nats.c callbacks (Callbacks in client.hpp).
thread_local bool t_in_callback = false;

}  // namespace

// What nats.c's callbacks use (Callbacks in client.hpp): it outlives the Client when the Client is
// destroyed on nats.c's callback thread, and then on_closed frees it.
struct Client::Callbacks {
  explicit Callbacks(ViolationHook hook, std::vector<std::string> s)
      : on_violation(std::move(hook)), secrets(std::move(s)) {}

  std::mutex mu;
  std::condition_variable cv;
  bool closed = false;         // guarded by mu: nats.c has made its last callback
  bool orphaned = false;       // guarded by mu: the Client is gone, on_closed frees this
  ViolationHook on_violation;  // guarded by mu: emptied when the Client goes
  const std::vector<std::string> secrets;
};

void check_count(std::string_view field, long long value, long long lo, long long hi) {
  if (value < lo || value > hi) {
    throw std::invalid_argument("pushstage::nats: " + std::string(field) + " must be in [" +
                                std::to_string(lo) + ", " + std::to_string(hi) + "]; got " +
                                std::to_string(value));
  }
}

void check_duration(std::string_view field, std::chrono::milliseconds value,
                    std::chrono::milliseconds lo, std::chrono::milliseconds hi) {
  if (value < lo || value > hi) {
    throw std::invalid_argument("pushstage::nats: " + std::string(field) + " must be in [" +
                                ms_text(lo) + ", " + ms_text(hi) + "]; got " + ms_text(value));
  }
}

void check_name(std::string_view field, const std::string& value) {
  bool ok = !value.empty() && value.size() <= 255;
  for (const char c : value) {
    if (c == '.' || c == '*' || c == '>' || c == '/' || c == '\\' ||
        std::isspace(static_cast<unsigned char>(c)) != 0 ||
        std::iscntrl(static_cast<unsigned char>(c)) != 0) {
      ok = false;
    }
  }
  if (!ok) {
    throw std::invalid_argument("pushstage::nats: " + std::string(field) +
                                " must be 1 to 255 characters without . * > / \\ or whitespace; "
                                "got '" +
                                value + "'");
  }
}

void check_connect_options(std::string_view owner, const ConnectOptions& o) {
  const std::string field = std::string(owner) + "::connection.";
  const std::string p = "pushstage::nats: " + field;
  bool url_ok = !o.url.empty();
  bool url_credentials = false;
  for (const std::string_view item : split_server_urls(o.url)) {
    const std::optional<ServerUrl> u = parse_server_url(item);
    url_ok = url_ok && u && (u->scheme.empty() || wants_tls(*u) || is_nats_scheme(*u));
    url_credentials = url_credentials || (u && u->has_userinfo);
  }
  if (!url_ok) {
    throw std::invalid_argument(p +
                                "url must be a NATS URL such as nats://127.0.0.1:4222 "
                                "([nats|tls]://[user:password@|token@]host[:port], several "
                                "separated by commas); got '" +
                                redacted_url(o.url) + "'");
  }
  using std::chrono::milliseconds;
  constexpr milliseconds kTenMinutes{600'000};
  check_duration(field + "connect_timeout", o.connect_timeout, milliseconds(1), kTenMinutes);
  check_count(field + "max_reconnects", o.max_reconnects, -1, 1'000'000);
  check_duration(field + "reconnect_wait", o.reconnect_wait, milliseconds(1), kTenMinutes);
  check_duration(field + "request_timeout", o.request_timeout, milliseconds(1), kTenMinutes);

  std::vector<std::string> kinds;
  if (url_credentials) kinds.emplace_back("user-info in url");
  if (!o.user.empty() || !o.password.empty()) kinds.emplace_back("user/password");
  if (!o.token.empty()) kinds.emplace_back("token");
  if (!o.nkey.empty() || !o.nkey_seed_file.empty()) kinds.emplace_back("nkey");
  if (!o.creds_file.empty()) kinds.emplace_back("creds_file");
  if (kinds.size() > 1) {
    throw std::invalid_argument(p +
                                "{user and password, token, nkey, creds_file, user-info in url} "
                                "must be one kind of credentials at most; got " +
                                join(kinds));
  }
  if (o.user.empty() != o.password.empty()) {
    throw std::invalid_argument(
        p + (o.user.empty() ? "user must be set with password"
                            : "password must not be empty with user '" + o.user + "'"));
  }
  if (!o.nkey.empty() || !o.nkey_seed_file.empty()) {
    if (!valid_nkey(o.nkey)) {
      // Not shown: a seed put here by mistake would be a secret.
      throw std::invalid_argument(p +
                                  "nkey must be an NKey user's public key ('U' and 55 more of "
                                  "A-Z and 2-7; its seed goes in the file nkey_seed_file); got " +
                                  std::to_string(o.nkey.size()) + " characters (not shown)");
    }
    if (o.nkey_seed_file.empty()) {
      throw std::invalid_argument(p + "nkey_seed_file must name the file that holds the seed of " +
                                  o.nkey + "; got ''");
    }
  }
  if (o.tls.cert_file.empty() != o.tls.key_file.empty()) {
    throw std::invalid_argument(p + "tls.cert_file and tls.key_file must be set together; got " +
                                (o.tls.cert_file.empty() ? "key_file only" : "cert_file only"));
  }
  if (tls_wanted(o) && o.tls.ca_file.empty() && !o.tls.skip_verify) {
    throw std::invalid_argument(
        p +
        "tls.ca_file must name the PEM file of the CAs that sign the server's certificate "
        "when TLS is on (or set tls.skip_verify, which is insecure); got ''");
  }
}

bool tls_wanted(const ConnectOptions& o) {
  const TlsOptions& t = o.tls;
  if (t.enabled || t.skip_verify || !t.ca_file.empty() || !t.server_name.empty() ||
      !t.cert_file.empty() || !t.key_file.empty()) {
    return true;
  }
  for (const std::string_view item : split_server_urls(o.url)) {
    const std::optional<ServerUrl> u = parse_server_url(item);
    if (u && wants_tls(*u)) return true;
  }
  return false;
}

std::string status_text(natsStatus s) {
  natsStatus last = NATS_OK;
  const char* text = nats_GetLastError(&last);
  std::string out;
  if (text != nullptr && last == s && *text != '\0') {
    out = text;
    // nats.c prefixes "(file.c:123): "; users need the reason, not our dependency's line numbers.
    if (out.front() == '(') {
      const auto end = out.find("): ");
      if (end != std::string::npos) out.erase(0, end + 3);
    }
  }
  if (out.empty()) out = natsStatus_GetText(s);
  return out;
}

Error make_error(const std::string& what, natsStatus s, int js_code) {
  std::string text = "pushstage::nats: " + what + ": " + status_text(s);
  if (js_code != 0) text += " (JetStream error " + std::to_string(js_code) + ")";
  return Error(text, static_cast<int>(s), js_code);
}

Client::Client(std::string_view owner, const ConnectOptions& o, const jsOptions* js,
               ViolationHook on_violation)
    : url_(redacted_url(o.url)), secrets_(secrets_of(o)) {
  const std::string who(owner);
  // Owned here until the connection is up: nats.c makes no callback for one that failed.
  auto callbacks = std::make_unique<Callbacks>(std::move(on_violation), secrets_);
  check_readable(owner, "tls.ca_file", o.tls.ca_file);
  check_readable(owner, "tls.cert_file", o.tls.cert_file);
  check_readable(owner, "tls.key_file", o.tls.key_file);
  const auto check = [&](natsStatus s, const std::string& what) {
    if (s != NATS_OK) throw error(who + ": " + what, s);
  };
  OptionsGuard opts;
  check(natsOptions_Create(&opts.o), "cannot create connection options");
  check(natsOptions_SetURL(opts.o, o.url.c_str()), "invalid URL '" + url_ + "'");
  if (!o.name.empty()) check(natsOptions_SetName(opts.o, o.name.c_str()), "invalid name");
  check(natsOptions_SetTimeout(opts.o, o.connect_timeout.count()), "connect_timeout");
  check(natsOptions_SetMaxReconnect(opts.o, o.max_reconnects), "max_reconnects");
  check(natsOptions_SetReconnectWait(opts.o, o.reconnect_wait.count()), "reconnect_wait");
  // JetStream API requests fail at once when the connection drops, instead of at their timeout.
  check(natsOptions_SetFailRequestsOnDisconnect(opts.o, true), "fail requests");
  check(natsOptions_SetSendAsap(opts.o, o.send_asap), "send_asap");
  check(natsOptions_SetErrorHandler(opts.o, &Client::on_error, callbacks.get()), "error handler");
  check(natsOptions_SetClosedCB(opts.o, &Client::on_closed, callbacks.get()), "closed callback");
  if (!o.user.empty()) {
    check(natsOptions_SetUserInfo(opts.o, o.user.c_str(), o.password.c_str()), "user");
  }
  if (!o.token.empty()) check(natsOptions_SetToken(opts.o, o.token.c_str()), "token");
  if (!o.nkey.empty()) {
    check_credentials_file(owner, "nkey_seed_file", o.nkey_seed_file, /*jwt=*/false);
    seed_file_ = o.nkey_seed_file;
    check(natsOptions_SetNKey(opts.o, o.nkey.c_str(), &Client::sign, this), "connection.nkey");
  }
  if (!o.creds_file.empty()) {
    check_credentials_file(owner, "creds_file", o.creds_file, /*jwt=*/true);
    seed_file_ = creds_file_ = o.creds_file;
    check(natsOptions_SetUserCredentialsCallbacks(opts.o, &Client::user_jwt, this, &Client::sign,
                                                  this),
          "connection.creds_file '" + o.creds_file + "'");
  }
  if (tls_wanted(o)) {
    check(natsOptions_SetSecure(opts.o, true), "TLS");
    if (!o.tls.ca_file.empty()) {
      check(natsOptions_LoadCATrustedCertificates(opts.o, o.tls.ca_file.c_str()),
            "connection.tls.ca_file '" + o.tls.ca_file + "'");
    }
    if (!o.tls.cert_file.empty()) {
      check(
          natsOptions_LoadCertificatesChain(opts.o, o.tls.cert_file.c_str(),
                                            o.tls.key_file.c_str()),
          "connection.tls.cert_file '" + o.tls.cert_file + "' / key_file '" + o.tls.key_file + "'");
    }
    if (!o.tls.server_name.empty()) {
      check(natsOptions_SetExpectedHostname(opts.o, o.tls.server_name.c_str()),
            "connection.tls.server_name");
    }
    if (o.tls.skip_verify) {
      check(natsOptions_SkipServerVerification(opts.o, true), "connection.tls.skip_verify");
    }
  }
  natsStatus s = NATS_OK;
  for (int retry = 0;; ++retry) {  // Signatures (client.hpp): only after sign() refused one
    zero_signature_.store(false, std::memory_order_relaxed);
    s = natsConnection_Connect(&nc_, opts.o);
    if (s == NATS_OK || !zero_signature_.load(std::memory_order_relaxed) ||
        retry == kSignatureRetries) {
      break;
    }
  }
  if (s != NATS_OK) {
    nc_ = nullptr;  // nats.c has freed it, and made no callback: `callbacks` goes with this scope
    throw Error(scrub("pushstage::nats: " + who + ": cannot connect to " + url_ + " " +
                      identity(o) + ": " + explain_connect_failure(s, status_text(s), o)),
                static_cast<int>(s));
  }
  callbacks_ = callbacks.release();  // shut() frees it, or leaves it to on_closed
  jsOptions jo;
  if (js != nullptr) {
    jo = *js;
  } else {
    jsOptions_Init(&jo);
  }
  jo.Wait = o.request_timeout.count();
  const natsStatus j = natsConnection_JetStream(&js_, nc_, &jo);
  if (j != NATS_OK) {
    const Error e = error(who + ": cannot open JetStream on " + url_, j);
    shut();  // the destructor does not run for a constructor that throws
    throw e;
  }
}

Client::~Client() { shut(); }

void Client::shut() noexcept {
  if (nc_ == nullptr) return;
  jsCtx_Destroy(js_);
  js_ = nullptr;
  natsConnection_Close(nc_);
  bool free_here = true;
  {
    std::unique_lock lock(callbacks_->mu);  // waits for a hook call in progress
    callbacks_->on_violation = nullptr;
    if (!t_in_callback) {
      callbacks_->cv.wait(lock, [&] { return callbacks_->closed; });
    } else if (!callbacks_->closed) {  // on_closed runs after the current callback, on this thread
      callbacks_->orphaned = true;
      free_here = false;
    }
  }
  natsConnection_Destroy(nc_);  // nats.c keeps what its queued callbacks need
  nc_ = nullptr;
  if (free_here) delete callbacks_;
  callbacks_ = nullptr;
}

void Client::close() noexcept { natsConnection_Close(nc_); }

void Client::on_error(natsConnection* nc, natsSubscription* /*sub*/, natsStatus err,
                      void* closure) {
  if (err != NATS_NOT_PERMITTED) return;  // slow consumers and the like: not ours to act on
  auto* cb = static_cast<Callbacks*>(closure);
  t_in_callback = true;
  try {
    const char* text = nullptr;
    (void)natsConnection_GetLastError(nc, &text);
    const std::string t =
        scrub_with(cb->secrets, text != nullptr && *text != 0 ? text : "not permitted");
    const std::lock_guard lock(cb->mu);  // held during the call: shut() waits for it
    if (cb->on_violation) cb->on_violation(t);
  } catch (...) {  // std::bad_alloc: nats.c's thread must go on
  }
  t_in_callback = false;
}

void Client::on_closed(natsConnection* /*nc*/, void* closure) {
  auto* cb = static_cast<Callbacks*>(closure);
  bool orphaned = false;
  {
    const std::lock_guard lock(cb->mu);
    cb->closed = true;
    orphaned = cb->orphaned;
    cb->cv.notify_all();  // under the lock: shut() may free `cb` as soon as it returns
  }
  if (orphaned) delete cb;
}

natsStatus Client::user_jwt(char** jwt, char** error, void* closure) {
  const auto* self = static_cast<const Client*>(closure);
  std::string text;
  if (!read_secret_file(self->creds_file_, text)) {
    *error = c_copy("cannot read the .creds file '" + self->creds_file_ + "'");
    return NATS_ERR;
  }
  const std::optional<std::string_view> found = creds_block(text, "NATS USER JWT");
  *jwt = found ? strndup(found->data(), found->size()) : nullptr;
  wipe(text);
  if (*jwt == nullptr) {
    *error = c_copy("no user JWT in the .creds file '" + self->creds_file_ + "'");
    return NATS_ERR;
  }
  return NATS_OK;
}

natsStatus Client::sign(char** error, unsigned char** signature, int* length, const char* nonce,
                        void* closure) {
  auto* self = static_cast<Client*>(closure);
  std::string text;
  if (!read_secret_file(self->seed_file_, text)) {
    *error = c_copy("cannot read the seed in '" + self->seed_file_ + "'");
    return NATS_ERR;
  }
  const std::optional<std::string_view> found = creds_seed(text);
  std::string seed(found.value_or(std::string_view()));  // nats_Sign wants it NUL-terminated
  wipe(text);
  const natsStatus s = seed.empty() ? NATS_ERR : nats_Sign(seed.c_str(), nonce, signature, length);
  wipe(seed);
  if (s != NATS_OK) {
    *error = c_copy("cannot sign with the seed in '" + self->seed_file_ + "'");
    return s;
  }
  if (*length > 0 && (*signature)[0] == 0) {
    std::free(*signature);  // nats.c would send it empty: refuse it, connect again
    *signature = nullptr;
    *length = 0;
    self->zero_signature_.store(true, std::memory_order_relaxed);  // see its declaration
    *error = c_copy("the signature starts with a zero byte, which nats.c sends empty; try again");
    return NATS_ERR;
  }
  return NATS_OK;
}

bool Client::connected() const noexcept {
  return natsConnection_Status(nc_) == NATS_CONN_STATUS_CONNECTED;
}

bool Client::closed() const noexcept { return natsConnection_IsClosed(nc_); }

std::uint64_t Client::reconnects() const noexcept {
  natsStatistics* stats = nullptr;
  if (natsStatistics_Create(&stats) != NATS_OK) return 0;
  std::uint64_t reconnects = 0;
  if (natsConnection_GetStats(nc_, stats) == NATS_OK) {
    (void)natsStatistics_GetCounts(stats, nullptr, nullptr, nullptr, nullptr, &reconnects);
  }
  natsStatistics_Destroy(stats);
  return reconnects;
}

std::string Client::closed_cause() const {
  const char* text = nullptr;
  (void)natsConnection_GetLastError(nc_, &text);
  return scrub(text != nullptr ? text : "");
}

std::string Client::scrub(std::string text) const { return scrub_with(secrets_, std::move(text)); }

Error Client::error(const std::string& what, natsStatus s, int js_code) const {
  const Error e = make_error(what, s, js_code);
  return Error(scrub(e.what()), e.status(), e.js_code());
}

}  // namespace pushstage::nats::detail
