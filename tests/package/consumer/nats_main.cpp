// A user's program that links pushstage::nats: no server needed, only the library and libnats.
// Options out of range are refused before any I/O; an unreachable server is a clear Error.
#include <cstdio>
#include <pushstage/nats/nats.hpp>
#include <stdexcept>
#include <string>

#include "pushstage/dispatcher.hpp"

int main() {
  pushstage::Dispatcher<pushstage::nats::Message> messages;
  pushstage::nats::SourceOptions options;
  options.connection.url = "nats://127.0.0.1:1";
  options.stream = "ORDERS";
  options.consumer = "workers";
  options.max_deliver = 0;
  try {
    pushstage::nats::Source source(messages, 1, options);
    return 1;
  } catch (const std::invalid_argument& e) {
    std::printf("refused: %s\n", e.what());
  }
  options.max_deliver = 3;
  try {
    pushstage::nats::Source source(messages, 1, options);
    return 1;
  } catch (const pushstage::nats::Error& e) {
    std::printf("failed: %s\n", e.what());
    return std::string(e.what()).find("nats://127.0.0.1:1") == std::string::npos ? 1 : 0;
  }
}
