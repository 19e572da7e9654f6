// run.cpp: see run.hpp. Every implementation's name and the backend that runs it.
#include "run.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "backends/backends.hpp"
#include "results_json.hpp"

namespace pushstage::bench {

namespace {

constexpr ImplInfo kImpls[] = {
    {Impl::kPushstage, "pushstage", "pushstage",
     "pushstage Dispatcher + ConsumerPool, FIFO wake (the subject)"},
    {Impl::kPushstageLifo, "pushstage-lifo", "ps-lifo",
     "pushstage Dispatcher + ConsumerPool, LIFO wake"},
    {Impl::kBlocking, "moodycamel-blocking", "mc-blocking",
     "moodycamel BlockingConcurrentQueue, with tokens"},
    {Impl::kMutex, "mutex", "mutex+cv", "std::mutex + std::condition_variable + std::deque"},
    {Impl::kTbb, "tbb", "tbb-bounded", "oneTBB concurrent_bounded_queue (unbounded)"},
    {Impl::kSpin, "moodycamel-spin", "mc-spin",
     "raw moodycamel ConcurrentQueue, consumers spin (burns a core each)"},
    {Impl::kBlockingNoToken, "moodycamel-notoken", "mc-notoken",
     "BlockingConcurrentQueue, consumers without ConsumerToken (can starve producers)"},
    {Impl::kPipeline2, "pushstage-pipeline2", "ps-pipe2",
     "pushstage 2-stage pipeline: Stage (pass-through) -> bounded Dispatcher -> ConsumerPool"},
    {Impl::kPipeline3, "pushstage-pipeline3", "ps-pipe3",
     "pushstage 3-stage pipeline: two pass-through Stages, then the ConsumerPool"},
    {Impl::kPartition, "pushstage-partition", "ps-partition",
     "pushstage PartitionDispatcher: one partition per consumer, chosen by event id"},
    {Impl::kKeyed, "pushstage-keyed", "ps-keyed",
     "pushstage KeyedDispatcher: 64 slots by event id, any idle consumer takes a ready slot"},
    {Impl::kBroadcast, "pushstage-broadcast", "ps-broadcast",
     "pushstage BroadcastDispatcher: every consumer handles every event (1024 per subscriber)"},
};

void write_all(int fd, const std::string& s) {
  std::size_t done = 0;
  while (done < s.size()) {
    const ssize_t w = write(fd, s.data() + done, s.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    done += static_cast<std::size_t>(w);
  }
}

}  // namespace

std::span<const ImplInfo> impls() { return kImpls; }

const ImplInfo& info(Impl impl) {
  for (const ImplInfo& i : kImpls) {
    if (i.impl == impl) return i;
  }
  throw std::logic_error("unknown Impl");
}

RunResult run_once(const RunConfig& config, const Plan& plan, Impl impl, std::size_t rep,
                   std::string_view progress_label) {
  const RunRequest run{config, plan, impl, rep, progress_label};
  switch (impl) {
    case Impl::kPushstage:
      return run_pushstage(run, WakeOrder::Fifo);
    case Impl::kPushstageLifo:
      return run_pushstage(run, WakeOrder::Lifo);
    case Impl::kBlocking:
      return run_moodycamel_blocking(run);
    case Impl::kMutex:
      return run_mutex(run);
    case Impl::kTbb:
      return run_tbb(run);
    case Impl::kSpin:
      return run_moodycamel_spin(run);
    case Impl::kBlockingNoToken:
      return run_moodycamel_notoken(run);
    case Impl::kPipeline2:
      return run_pipeline(run, 2);
    case Impl::kPipeline3:
      return run_pipeline(run, 3);
    case Impl::kPartition:
      return run_partition(run);
    case Impl::kKeyed:
      return run_keyed(run);
    case Impl::kBroadcast:
      return run_broadcast(run);
  }
  throw std::logic_error("unknown Impl");
}

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
      r.impl = std::string(info(impl).name);
      r.rep = rep;
      r.ok = false;
      r.failure = std::string("the run threw: ") + e.what();
    }
    write_all(fds[1], to_json(r).dump());
    close(fds[1]);
    std::fflush(stdout);
    _exit(0);
  }
  close(fds[1]);
  std::string text;
  char buf[1 << 16];
  for (;;) {
    const ssize_t got = read(fds[0], buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    text.append(buf, static_cast<std::size_t>(got));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  RunResult dead;
  dead.impl = std::string(info(impl).name);
  dead.rep = rep;
  dead.ok = false;
  if (WIFSIGNALED(status)) {
    dead.failure = "the child process died of signal " + std::to_string(WTERMSIG(status)) + " (" +
                   strsignal(WTERMSIG(status)) + ")";
    return dead;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || text.empty()) {
    dead.failure = "the child process exited with status " + std::to_string(WEXITSTATUS(status));
    return dead;
  }
  try {
    return from_json(nlohmann::json::parse(text));
  } catch (const std::exception& e) {
    dead.failure = std::string("unreadable result from the child: ") + e.what();
    return dead;
  }
}

}  // namespace pushstage::bench
