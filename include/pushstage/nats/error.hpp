// pushstage/nats/error.hpp: what a NATS or JetStream failure looks like to a pushstage user.
// Threading: a plain value type; copy it freely.
#pragma once

#include <stdexcept>
#include <string>

namespace pushstage::nats {

// A failure reported by the NATS client or the JetStream broker. what() is one line that names
// what was attempted, on which server, and why ("... : stream 'ORDERS' not found (JetStream error
// 10059)"). Options that are out of range throw std::invalid_argument instead, before any I/O.
class Error : public std::runtime_error {
 public:
  // status: the nats.c natsStatus (0 when the failure is not the client's); js_code: JetStream's
  // error code (0 when the broker sent none).
  explicit Error(const std::string& what, int status = 0, int js_code = 0)
      : std::runtime_error(what), status_(status), js_code_(js_code) {}

  [[nodiscard]] int status() const noexcept { return status_; }
  [[nodiscard]] int js_code() const noexcept { return js_code_; }

 private:
  int status_;
  int js_code_;
};

}  // namespace pushstage::nats
