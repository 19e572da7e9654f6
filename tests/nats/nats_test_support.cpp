// nats_test_support.cpp: see nats_test_support.hpp.
#include "nats_test_support.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <thread>

#ifndef PUSHSTAGE_NATS_FIXTURE_DIR
#error "PUSHSTAGE_NATS_FIXTURE_DIR: the nats_server fixture's directory (tests/nats/CMakeLists.txt)"
#endif
#ifndef PUSHSTAGE_NATS_SERVER
#error "PUSHSTAGE_NATS_SERVER: the nats-server executable (tests/nats/CMakeLists.txt)"
#endif
#ifndef PUSHSTAGE_NATS_SECURE_DIR
#error "PUSHSTAGE_NATS_SECURE_DIR: the nats_secure fixture's directory (tests/nats/CMakeLists.txt)"
#endif

namespace pushstage::nats::test {
namespace {

void check(natsStatus s, const std::string& what) {
  if (s != NATS_OK) {
    throw std::runtime_error(
        "test setup: " + what + ": " + natsStatus_GetText(s) + " (" +
        (nats_GetLastError(nullptr) != nullptr ? nats_GetLastError(nullptr) : "") + ")");
  }
}

int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    throw std::runtime_error("test setup: no free port");
  }
  close(fd);
  return ntohs(a.sin_port);
}

bool accepts(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

// fork + exec, the child killed when this process dies. Only async-signal-safe calls in the child
// (the test process has threads: nats.c's, the pool's).
pid_t spawn(const std::vector<std::string>& args, int stdout_fd, int stderr_fd) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("test setup: fork failed");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    if (stdout_fd >= 0) dup2(stdout_fd, 1);
    if (stderr_fd >= 0) dup2(stderr_fd, 2);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

std::string read_whole(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("test setup: cannot read " + path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

}  // namespace

std::string secure_dir() {
  const std::string dir = PUSHSTAGE_NATS_SECURE_DIR;
  if (!std::filesystem::exists(dir + "/auth/url")) {
    throw std::runtime_error(
        "no secure NATS servers: run this test through ctest (fixture nats_secure starts them)");
  }
  return dir;
}

std::string secure_file(const std::string& file) { return read_whole(secure_dir() + "/" + file); }

SecureServer secure_server(const std::string& name) {
  return SecureServer{secure_file(name + "/url"), secure_file(name + "/monitor")};
}

std::uint64_t total_connections(const std::string& monitor) {
  const auto colon = monitor.rfind(':');
  const int port = std::stoi(monitor.substr(colon + 1));
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (fd >= 0) close(fd);
    throw std::runtime_error("test setup: cannot reach the monitoring endpoint " + monitor);
  }
  const std::string request = "GET /varz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    close(fd);
    throw std::runtime_error("test setup: cannot send to " + monitor);
  }
  std::string reply;
  char buf[4096];
  for (ssize_t got = 0; (got = read(fd, buf, sizeof buf)) > 0;) {
    reply.append(buf, static_cast<std::size_t>(got));
  }
  close(fd);
  const std::string key = "\"total_connections\":";
  const auto at = reply.find(key);
  if (at == std::string::npos) {
    throw std::runtime_error("test setup: no total_connections in " + monitor + "/varz");
  }
  return std::stoull(reply.substr(at + key.size()));
}

std::string server_url() {
  if (const char* env = std::getenv("PUSHSTAGE_NATS_URL"); env != nullptr && *env != 0) return env;
  std::ifstream in(std::string(PUSHSTAGE_NATS_FIXTURE_DIR) + "/url");
  std::string url;
  if (!(in >> url)) {
    throw std::runtime_error(
        "no NATS server: run this test through ctest (fixture nats_server starts one) or set "
        "PUSHSTAGE_NATS_URL");
  }
  return url;
}

std::string unique_name(std::string_view prefix) {
  static std::atomic<int> n{0};
  return std::string(prefix) + "_" + std::to_string(getpid()) + "_" +
         std::to_string(n.fetch_add(1, std::memory_order_relaxed));
}

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// ---- Admin ----

Admin::Admin(const std::string& url) {
  check(natsConnection_ConnectTo(&nc_, url.c_str()), "connect to " + url);
  check(natsConnection_JetStream(&js_, nc_, nullptr), "JetStream context");
}

Admin::Admin(const std::string& url, const std::function<void(natsOptions*)>& configure) {
  natsOptions* o = nullptr;
  check(natsOptions_Create(&o), "options");
  natsStatus s = natsOptions_SetURL(o, url.c_str());
  configure(o);
  // nats.c 3.4.1 sends an NKey or JWT user's signature empty when its first byte is 0, and the
  // server refuses it: 1 connection in 256 (pushstage's Client signs by itself; see client.hpp).
  for (int attempt = 1; s == NATS_OK || s == NATS_CONNECTION_AUTH_FAILED; ++attempt) {
    s = natsConnection_Connect(&nc_, o);
    if (s != NATS_CONNECTION_AUTH_FAILED || attempt == 4) break;
  }
  natsOptions_Destroy(o);
  check(s, "connect to " + url);
  check(natsConnection_JetStream(&js_, nc_, nullptr), "JetStream context");
}

Admin::~Admin() {
  jsCtx_Destroy(js_);
  natsConnection_Destroy(nc_);
}

void Admin::add_stream(const std::string& name, const std::string& subjects, bool file_storage) {
  jsStreamConfig sc;
  jsStreamConfig_Init(&sc);
  sc.Name = name.c_str();
  const char* subj[] = {subjects.c_str()};
  sc.Subjects = subj;
  sc.SubjectsLen = 1;
  sc.Storage = file_storage ? js_FileStorage : js_MemoryStorage;
  jsStreamInfo* si = nullptr;
  check(js_AddStream(&si, js_, &sc, nullptr, nullptr), "add stream " + name);
  jsStreamInfo_Destroy(si);
}

void Admin::delete_stream(const std::string& name) {
  (void)js_DeleteStream(js_, name.c_str(), nullptr, nullptr);
}

void Admin::publish(const std::string& subject, std::string_view data) {
  check(js_Publish(nullptr, js_, subject.c_str(), data.data(), static_cast<int>(data.size()),
                   nullptr, nullptr),
        "publish to " + subject);
}

void Admin::publish_ids(const std::string& subject, int first, int count) {
  for (int i = first; i < first + count; ++i) {
    const std::string id = std::to_string(i);
    check(js_PublishAsync(js_, subject.c_str(), id.data(), static_cast<int>(id.size()), nullptr),
          "publish to " + subject);
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 30000;
  check(js_PublishAsyncComplete(js_, &po), "publish acknowledgements on " + subject);
}

std::uint64_t Admin::stream_messages(const std::string& stream) {
  jsStreamInfo* si = nullptr;
  check(js_GetStreamInfo(&si, js_, stream.c_str(), nullptr, nullptr), "stream info " + stream);
  const std::uint64_t n = si->State.Msgs;
  jsStreamInfo_Destroy(si);
  return n;
}

ConsumerState Admin::consumer(const std::string& stream, const std::string& consumer) {
  jsConsumerInfo* ci = nullptr;
  check(js_GetConsumerInfo(&ci, js_, stream.c_str(), consumer.c_str(), nullptr, nullptr),
        "consumer info " + consumer);
  ConsumerState s;
  s.ack_pending = ci->NumAckPending;
  s.pending = ci->NumPending;
  s.redelivered = ci->NumRedelivered;
  s.ack_floor = ci->AckFloor.Stream;
  s.waiting = ci->NumWaiting;
  jsConsumerInfo_Destroy(ci);
  return s;
}

std::string Admin::message_at(const std::string& stream, std::uint64_t seq) {
  natsMsg* m = nullptr;
  check(js_GetMsg(&m, js_, stream.c_str(), seq, nullptr, nullptr), "get message");
  std::string out(natsMsg_GetData(m), static_cast<std::size_t>(natsMsg_GetDataLength(m)));
  natsMsg_Destroy(m);
  return out;
}

// ---- LocalServer ----

LocalServer::LocalServer(bool jetstream) : jetstream_(jetstream), port_(free_port()) {
  char tmpl[] = "/tmp/pushstage-nats-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) throw std::runtime_error("test setup: mkdtemp failed");
  dir_ = tmpl;
  start();
}

LocalServer::LocalServer(const std::string& config)
    : jetstream_(true), configured_(true), port_(free_port()), monitor_port_(free_port()) {
  char tmpl[] = "/tmp/pushstage-nats-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) throw std::runtime_error("test setup: mkdtemp failed");
  dir_ = tmpl;
  write_config(config);
  start();
}

void LocalServer::write_config(const std::string& config) {
  std::ofstream out(dir_ + "/server.conf", std::ios::trunc);
  out << "listen: 127.0.0.1:" << port_ << "\nhttp: 127.0.0.1:" << monitor_port_
      << "\njetstream { store_dir: \"" << dir_ << "/store\" }\n"
      << config << "\n";
  if (!out) throw std::runtime_error("test setup: cannot write " + dir_ + "/server.conf");
}

std::string LocalServer::monitor() const {
  return "http://127.0.0.1:" + std::to_string(monitor_port_);
}

void LocalServer::reload(const std::string& config) {
  write_config(config);
  if (pid_ > 0) ::kill(pid_, SIGHUP);
}

LocalServer::~LocalServer() {
  if (pid_ > 0) {
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string LocalServer::url() const { return "nats://127.0.0.1:" + std::to_string(port_); }

void LocalServer::start() {
  if (pid_ > 0) return;
  std::vector<std::string> args = {PUSHSTAGE_NATS_SERVER, "-a", "127.0.0.1", "-p",
                                   std::to_string(port_)};
  if (configured_) {
    args = {PUSHSTAGE_NATS_SERVER, "-c", dir_ + "/server.conf"};
  } else if (jetstream_) {
    args.insert(args.end(), {"-js", "-sd", dir_ + "/store"});
  }
  const int log =
      open((dir_ + "/server.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  pid_ = spawn(args, log, log);
  close(log);
  if (!eventually([&] { return accepts(port_); }, 20s)) {
    throw std::runtime_error("test setup: nats-server did not listen on " + url());
  }
  // The probe above is a connection too: once the server has counted it, a test's count of
  // connections starts from a still number.
  if (configured_ && !eventually([&] { return total_connections(monitor()) >= 1; }, 20s)) {
    throw std::runtime_error("test setup: nats-server did not count the probe connection");
  }
}

void LocalServer::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGCONT);
  ::kill(pid_, SIGTERM);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void LocalServer::pause() {
  ::kill(pid_, SIGSTOP);
  // kill() returns before the stop takes effect: wait until every thread of the server is stopped,
  // or a message sent right after pause() may still be answered.
  const std::string tasks = "/proc/" + std::to_string(pid_) + "/task";
  const bool stopped = eventually([&] {
    std::error_code ec;
    for (const auto& t : std::filesystem::directory_iterator(tasks, ec)) {
      std::ifstream in(t.path() / "stat");
      std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      const auto close = stat.rfind(')');
      if (close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] != 'T') {
        return false;
      }
    }
    return !ec;
  });
  if (!stopped) throw std::runtime_error("test setup: nats-server did not stop on SIGSTOP");
}
void LocalServer::resume() { ::kill(pid_, SIGCONT); }

// ---- Child ----

Child::Child(const std::vector<std::string>& argv) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("test setup: pipe2 failed");
  pid_ = spawn(argv, fds[1], -1);
  close(fds[1]);
  out_ = fds[0];
}

Child::~Child() {
  if (!exited_) {
    ::kill(pid_, SIGKILL);
    (void)wait();
  }
  close(out_);
}

std::optional<std::string> Child::read_line(std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    const auto nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{out_, POLLIN, 0};
    const int r = poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return std::nullopt;
    char buf[4096];
    const ssize_t got = read(out_, buf, sizeof buf);
    if (got <= 0) return std::nullopt;
    buffer_.append(buf, static_cast<std::size_t>(got));
  }
}

void Child::kill(int signal) { ::kill(pid_, signal); }

int Child::wait() {
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  exited_ = true;
  return status;
}

}  // namespace pushstage::nats::test
