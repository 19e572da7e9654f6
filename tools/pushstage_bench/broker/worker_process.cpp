// worker_process.cpp: see worker_process.hpp.
#include "broker/worker_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "report/results_json.hpp"

namespace pushstage::bench {

// The keys are the field names, each field once.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(WorkerReport, handled, ids, latency, first_start, last_end,
                                   fetches, redelivered, max_in_flight, cpu_ns, consumer_events)

nlohmann::json worker_report_to_json(const WorkerReport& r) { return r; }

WorkerReport worker_report_from_json(const nlohmann::json& j) { return j.get<WorkerReport>(); }

std::optional<std::string> WorkerProcess::line(std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  std::size_t nl = 0;
  while ((nl = buffer.find('\n')) == std::string::npos) {
    if (!read_more(deadline)) return std::nullopt;
  }
  std::string l = buffer.substr(0, nl);
  buffer.erase(0, nl + 1);
  return l;
}

bool WorkerProcess::read_more(std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{out, POLLIN, 0};
    const int r = poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    char buf[1 << 16];
    const ssize_t got = read(out, buf, sizeof buf);
    if (got <= 0) return false;
    buffer.append(buf, static_cast<std::size_t>(got));
    return true;
  }
}

void WorkerProcess::stop() {
  if (in >= 0) close(in);
  in = -1;
}

int WorkerProcess::wait_exit() {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  close(out);
  return status;
}

WorkerProcess spawn_worker(const std::vector<std::string>& args, const std::string& broker_url) {
  int in[2];
  int out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
    throw std::runtime_error("--broker: pipe2 failed");
  }
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const std::string url_entry = std::string(kBrokerUrlVariable) + "=" + broker_url;
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, kBrokerUrlVariable, std::strlen(kBrokerUrlVariable)) != 0) {
      envp.push_back(*e);
    }
  }
  envp.push_back(const_cast<char*>(url_entry.c_str()));
  envp.push_back(nullptr);
  const pid_t parent = getpid();
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("--broker: fork failed");
  if (pid == 0) {  // async-signal-safe calls only until exec: this process has nats.c threads
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(in[0], 0);
    dup2(out[1], 1);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  return WorkerProcess{pid, in[1], out[0], {}};
}

}  // namespace pushstage::bench
