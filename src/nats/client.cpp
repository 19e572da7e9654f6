// client.cpp: see client.hpp.
#include "client.hpp"

#include <cctype>
#include <cstring>
#include <stdexcept>
#include <string>

namespace pushstage::nats::detail {
namespace {

std::string ms_text(std::chrono::milliseconds v) { return std::to_string(v.count()) + " ms"; }

// Frees a natsOptions however the constructor leaves.
struct OptionsGuard {
  natsOptions* o = nullptr;
  ~OptionsGuard() { natsOptions_Destroy(o); }
};

void check(natsStatus s, std::string_view owner, const std::string& what) {
  if (s != NATS_OK) throw make_error(std::string(owner) + ": " + what, s);
}

}  // namespace

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
  const std::string p = std::string(owner) + "::connection.";
  if (o.url.empty()) {
    throw std::invalid_argument("pushstage::nats: " + p +
                                "url must be a NATS URL such as nats://127.0.0.1:4222; got ''");
  }
  using std::chrono::milliseconds;
  constexpr milliseconds kTenMinutes{600'000};
  check_duration(p + "connect_timeout", o.connect_timeout, milliseconds(1), kTenMinutes);
  check_count(p + "max_reconnects", o.max_reconnects, -1, 1'000'000);
  check_duration(p + "reconnect_wait", o.reconnect_wait, milliseconds(1), kTenMinutes);
  check_duration(p + "request_timeout", o.request_timeout, milliseconds(1), kTenMinutes);
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

Client::Client(std::string_view owner, const ConnectOptions& o, const jsOptions* js) : url_(o.url) {
  OptionsGuard opts;
  check(natsOptions_Create(&opts.o), owner, "cannot create connection options");
  check(natsOptions_SetURL(opts.o, o.url.c_str()), owner, "invalid URL '" + o.url + "'");
  if (!o.name.empty()) check(natsOptions_SetName(opts.o, o.name.c_str()), owner, "invalid name");
  check(natsOptions_SetTimeout(opts.o, o.connect_timeout.count()), owner, "connect_timeout");
  check(natsOptions_SetMaxReconnect(opts.o, o.max_reconnects), owner, "max_reconnects");
  check(natsOptions_SetReconnectWait(opts.o, o.reconnect_wait.count()), owner, "reconnect_wait");
  // JetStream API requests fail at once when the connection drops, instead of at their timeout.
  check(natsOptions_SetFailRequestsOnDisconnect(opts.o, true), owner, "fail requests");
  check(natsOptions_SetSendAsap(opts.o, o.send_asap), owner, "send_asap");
  const natsStatus s = natsConnection_Connect(&nc_, opts.o);
  if (s != NATS_OK) {
    throw make_error(std::string(owner) + ": cannot connect to " + o.url, s);
  }
  jsOptions jo;
  if (js != nullptr) {
    jo = *js;
  } else {
    jsOptions_Init(&jo);
  }
  jo.Wait = o.request_timeout.count();
  const natsStatus j = natsConnection_JetStream(&js_, nc_, &jo);
  if (j != NATS_OK) {
    const Error e = make_error(std::string(owner) + ": cannot open JetStream on " + o.url, j);
    natsConnection_Destroy(nc_);
    throw e;
  }
}

Client::~Client() {
  jsCtx_Destroy(js_);
  natsConnection_Close(nc_);
  natsConnection_Destroy(nc_);
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

}  // namespace pushstage::nats::detail
