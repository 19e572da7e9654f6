// messages.hpp: what the option-validation tests compare error messages with.
#pragma once

#include <stdexcept>
#include <string>

#include "pushstage/cpus.hpp"

namespace pushstage::test {

// The std::invalid_argument message of make(), or "accepted" when it throws nothing.
template <class Make>
std::string message_of(Make&& make) {
  try {
    make();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "accepted";
}

// allowed_cpus() as the messages print it: "{0,1}".
inline std::string allowed_cpu_list() {
  std::string out = "{";
  for (const int cpu : allowed_cpus()) out += (out.size() > 1 ? "," : "") + std::to_string(cpu);
  return out + "}";
}

}  // namespace pushstage::test
