// machine.hpp: the machine line every report carries (CPUs, CPU model, kernel, compiler, the
// commit the binary was built from), for the terminal and for --json.
// Threading: plain functions.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>

namespace pushstage::bench {

struct MachineInfo {
  std::size_t cpus = 0;  // this process may use
  std::string cpu_model;
  std::string kernel;
  std::string compiler;
  std::string commit;
  double spin_iters_per_ns = 0;
};
[[nodiscard]] MachineInfo machine_info();

void print_machine(std::ostream& out, const MachineInfo& m);
[[nodiscard]] nlohmann::json machine_to_json(const MachineInfo& m);

}  // namespace pushstage::bench
