// user_code.hpp: what README.md's C++ examples take from the program around them: the user's
// types and functions (declared only: an example that uses a name declared nowhere fails to
// compile, and nothing here is ever linked or run), and the objects the text before an example
// has made (rows, o, two, ...). Every extracted example includes it (see CMakeLists.txt).
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pushstage/pushstage.hpp"

using namespace std::chrono_literals;  // 10ms, 1s: as a user's file would have it

// The user's types.
struct Job {
  int id;
  void run();
};
struct Row {
  int user;
  std::string text;
};
struct Order {
  long account;
};
struct Event {
  int id;
};
struct Client {  // an asynchronous client: done() runs once r was sent
  void send(const Row& r, std::function<void()> done);
};

// The user's functions.
void log(std::exception_ptr error);
void log_dropped(const Row& r, pushstage::DropReason why);
void insert_rows(std::span<const Row> batch);
void save(const Row& r);
void write(const Row& r);
void update_view(const Row& r);
void apply(const Order& order);
void park_for_later(const Row& r, pushstage::FailureKind kind, unsigned attempts);
void handle(std::string_view data);
void report(const pushstage::DispatcherStats& stats);  // to the user's metrics
void park(const Row& r, std::string_view reason);
std::vector<Row> load_backlog();

// What the text before an example has made. An example may declare one of these names anew (its
// own `o` or `rows`), so the examples compile without -Wshadow.
extern pushstage::Dispatcher<Row> rows;
extern pushstage::PoolOptions o;
extern const pushstage::PoolOptions two;    // consumers = 2
extern const pushstage::PoolOptions three;  // consumers = 3
extern const pushstage::PoolOptions four;   // consumers = 4
extern Event e;
extern Row row;
extern Client client;
