// nats_test_support.hpp: what the NATS tests share: the fixture servers' URLs and files, unique
// names, a raw nats.c client for setting up streams and looking at consumers, a server's count of
// connections, servers and child processes that a test owns (and that die with it).
#pragma once

#include <nats/nats.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pushstage::nats::test {

using namespace std::chrono_literals;

// The nats_server fixture's URL ($PUSHSTAGE_NATS_URL overrides it). Fails the test when neither
// is there (run the tests through ctest, which starts the fixture).
std::string server_url();

// The nats_secure fixture (nats_secure.sh): its directory, and `file` read whole (a secret, a key,
// a URL), without the trailing newline. Fails the test when the fixture is not there.
std::string secure_dir();
std::string secure_file(const std::string& file);
// One of its servers (auth, token, mtls, jwt, expired): URL and monitoring URL.
struct SecureServer {
  std::string url;      // tls://127.0.0.1:PORT
  std::string monitor;  // http://127.0.0.1:PORT
};
SecureServer secure_server(const std::string& name);

// How many client connections the server at `monitor` (http://host:port) has accepted since it
// started (/varz total_connections): each attempt counts, refused or not.
std::uint64_t total_connections(const std::string& monitor);

// A name no other test (or earlier run against the same server) uses: PREFIX_<pid>_<n>.
std::string unique_name(std::string_view prefix);

// Waits until pred() holds, polling every few ms; false after `limit`. The limit only guards
// against a hang: no test asserts how fast anything happens.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = 60s);

struct ConsumerState {
  std::int64_t ack_pending = 0;  // delivered, not yet acked
  std::uint64_t pending = 0;     // not yet delivered
  std::int64_t redelivered = 0;  // delivered more than once (and still unacked)
  std::uint64_t ack_floor = 0;   // stream sequence below which everything is acked
  std::int64_t waiting = 0;      // pull requests waiting at the broker
};

// A plain nats.c connection for the test's own setup and inspection.
class Admin {
 public:
  explicit Admin(const std::string& url);
  // Connects with options that `configure` sets on top of the URL (credentials, TLS).
  Admin(const std::string& url, const std::function<void(natsOptions*)>& configure);
  ~Admin();
  Admin(const Admin&) = delete;
  Admin& operator=(const Admin&) = delete;

  // A stream on `subjects` (one subject or wildcard). File storage survives a server restart.
  void add_stream(const std::string& name, const std::string& subjects, bool file_storage = false);
  void delete_stream(const std::string& name);
  // Publishes and waits for every acknowledgement.
  void publish(const std::string& subject, std::string_view data);
  void publish_ids(const std::string& subject, int first, int count);  // payloads "first".."last"
  std::uint64_t stream_messages(const std::string& stream);
  ConsumerState consumer(const std::string& stream, const std::string& consumer);
  // The stored payload at `seq`.
  std::string message_at(const std::string& stream, std::uint64_t seq);

 private:
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
};

// A nats-server this test owns: its own port and store, stopped and restarted at will.
class LocalServer {
 public:
  explicit LocalServer(bool jetstream = true);
  // Configured by a file: `config` (tls, authorization, ...) after the listen address, a
  // monitoring port and JetStream, all set here. Its count of connections (total_connections)
  // holds the one start() made to see it listen.
  explicit LocalServer(const std::string& config);
  ~LocalServer();
  LocalServer(const LocalServer&) = delete;
  LocalServer& operator=(const LocalServer&) = delete;

  std::string url() const;
  int port() const { return port_; }
  // Its monitoring endpoint (configured servers only).
  std::string monitor() const;
  // Rewrites the configuration (as in the constructor) and has the server reload it (SIGHUP).
  void reload(const std::string& config);
  void start();   // same port, same store; returns once it accepts connections
  void stop();    // SIGTERM, waits for it to exit
  void pause();   // SIGSTOP: connections stay open, nothing is answered
  void resume();  // SIGCONT

 private:
  void write_config(const std::string& config);

  bool jetstream_;
  bool configured_ = false;
  int port_ = 0;
  int monitor_port_ = 0;
  std::string dir_;
  pid_t pid_ = -1;
};

// A child process running `argv` (argv[0] is the path), killed if the test process dies first.
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // The next line of its stdout (without the newline); nullopt at end of output or after
  // `limit`.
  std::optional<std::string> read_line(std::chrono::milliseconds limit = 60s);
  void kill(int signal);
  // Waits for it to exit; the wait status.
  int wait();

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  std::string buffer_;
  bool exited_ = false;
};

}  // namespace pushstage::nats::test
