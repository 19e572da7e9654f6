// machine.cpp: see machine.hpp.
#include "report/machine.hpp"

#include <sys/utsname.h>

#include <fstream>

#include "pushstage/cpus.hpp"

namespace pushstage::bench {

extern const char* const kGitCommit;  // generated at build time (tools/CMakeLists.txt)

MachineInfo machine_info() {
  MachineInfo m;
  m.cpus = allowed_cpus().size();
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) m.cpu_model = line.substr(colon + 2);
      break;
    }
  }
  utsname u{};
  if (uname(&u) == 0) m.kernel = std::string(u.sysname) + " " + u.release + " " + u.machine;
  m.compiler = __VERSION__;
#if defined(__clang__)
  m.compiler = "clang " + m.compiler;
#elif defined(__GNUC__)
  m.compiler = "gcc " + m.compiler;
#endif
  m.commit = kGitCommit;
  return m;
}

void print_machine(std::ostream& out, const MachineInfo& m) {
  out << "machine: " << m.cpus << " CPUs, " << (m.cpu_model.empty() ? "unknown CPU" : m.cpu_model)
      << "; " << m.kernel << "; " << m.compiler << "; commit " << m.commit << "\n";
}

nlohmann::json machine_to_json(const MachineInfo& m) {
  return {{"cpus", m.cpus},     {"cpu_model", m.cpu_model},
          {"kernel", m.kernel}, {"compiler", m.compiler},
          {"commit", m.commit}, {"spin_iterations_per_ns", m.spin_iters_per_ns}};
}

}  // namespace pushstage::bench
