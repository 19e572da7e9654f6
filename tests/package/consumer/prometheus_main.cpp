// A user's program that links pushstage::prometheus: an exporter on a free loopback port, and
// options out of range refused naming the field.
#include <cstdio>
#include <pushstage/prometheus/exporter.hpp>
#include <stdexcept>
#include <string>

int main() {
  pushstage::prometheus::ExporterOptions options;
  options.bind = "127.0.0.1:0";
  {
    const pushstage::prometheus::Exporter exporter(options);
    if (exporter.port() == 0 || exporter.observer() == nullptr) return 1;
    std::printf("serving on 127.0.0.1:%u\n", static_cast<unsigned>(exporter.port()));
  }
  options.threads = 0;
  try {
    const pushstage::prometheus::Exporter exporter(options);
    return 1;
  } catch (const std::invalid_argument& e) {
    std::printf("refused: %s\n", e.what());
    return std::string(e.what()).find("ExporterOptions::threads") == std::string::npos ? 1 : 0;
  }
}
