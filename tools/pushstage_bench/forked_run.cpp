// forked_run.cpp: see forked_run.hpp.
#include "forked_run.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "report/results_json.hpp"

namespace pushstage::bench {
namespace {

void write_all(int fd, const std::string& s) {
  std::size_t done = 0;
  while (done < s.size()) {
    const ssize_t w = write(fd, s.data() + done, s.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    done += static_cast<std::size_t>(w);
  }
}

std::string read_all(int fd) {
  std::string text;
  char buf[1 << 16];
  for (;;) {
    const ssize_t got = read(fd, buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return text;
    text.append(buf, static_cast<std::size_t>(got));
  }
}

RunResult failed_run(Impl impl, std::size_t rep, std::string failure) {
  RunResult r;
  r.impl = std::string(info(impl).name);
  r.rep = rep;
  r.ok = false;
  r.failure = std::move(failure);
  return r;
}

}  // namespace

RunResult run_in_child(const RunConfig& config, const Plan& plan, Impl impl, std::size_t rep,
                       std::string_view progress_label) {
  std::fflush(stdout);
  std::fflush(stderr);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    close(fds[0]);
    RunResult r;
    try {
      r = run_once(config, plan, impl, rep, progress_label);
    } catch (const std::exception& e) {
      r = failed_run(impl, rep, std::string("the run threw: ") + e.what());
    }
    write_all(fds[1], to_json(r).dump());
    close(fds[1]);
    std::fflush(stdout);
    _exit(0);
  }
  close(fds[1]);
  const std::string text = read_all(fds[0]);
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status)) {
    return failed_run(impl, rep,
                      "the child process died of signal " + std::to_string(WTERMSIG(status)) +
                          " (" + strsignal(WTERMSIG(status)) + ")");
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || text.empty()) {
    return failed_run(
        impl, rep, "the child process exited with status " + std::to_string(WEXITSTATUS(status)));
  }
  try {
    return from_json(nlohmann::json::parse(text));
  } catch (const std::exception& e) {
    return failed_run(impl, rep, std::string("unreadable result from the child: ") + e.what());
  }
}

}  // namespace pushstage::bench
