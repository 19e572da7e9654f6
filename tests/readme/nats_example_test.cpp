// nats_example_test.cpp: README.md's complete NATS example (a pipeline fed by the JetStream stream
// ORDERS whose named batcher appends to orders.log), built from the README's text as it stands
// (CMakeLists.txt), run against the nats_server fixture: every order published before it starts
// ends up in orders.log exactly once and is acked (nothing pending, nothing redelivered), and
// SIGTERM stops it with exit status 0. Waits only guard against hangs.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "nats_test_support.hpp"

namespace pushstage::nats {
namespace {

// The names the example uses as written.
constexpr const char* kStream = "ORDERS";
constexpr const char* kConsumer = "archiver";

TEST(ReadmeNatsExample, ArchivesEachPublishedOrderOnceAndStopsOnSigterm) {
  constexpr int kOrders = 7;
  const std::string url = test::server_url();
  test::Admin admin(url);
  admin.delete_stream(kStream);  // left by an earlier run against the same server, if any
  admin.add_stream(kStream, "orders.>");
  std::vector<std::string> orders;
  for (int i = 1; i <= kOrders; ++i) {
    orders.push_back("order-" + std::to_string(i));
    admin.publish("orders.new", orders.back());
  }
  // orders.log goes to the example's working directory: a fresh one.
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / test::unique_name("pushstage-readme-nats");
  ASSERT_TRUE(std::filesystem::create_directory(dir));
  {
    test::Child example(
        {"/usr/bin/env", "-C", dir.string(), "NATS_URL=" + url, PUSHSTAGE_README_NATS_EXAMPLE});
    // A batch is acked after handle_batch wrote and flushed it: once the broker has every order
    // acked, orders.log holds them all.
    const bool acked = test::eventually([&] {
      try {
        const test::ConsumerState c = admin.consumer(kStream, kConsumer);
        return c.ack_floor == static_cast<std::uint64_t>(kOrders) && c.ack_pending == 0;
      } catch (const std::exception&) {
        return false;  // the example has not created its consumer yet
      }
    });
    ASSERT_TRUE(acked) << "the example did not ack every order";
    example.kill(SIGTERM);
    const int status = example.wait();
    ASSERT_TRUE(WIFEXITED(status)) << "wait status " << status;
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }
  std::ifstream log(dir / "orders.log");
  ASSERT_TRUE(log.is_open());
  std::vector<std::string> written;
  for (std::string line; std::getline(log, line);) written.push_back(line);
  std::sort(written.begin(), written.end());  // two processors: no order across them
  std::sort(orders.begin(), orders.end());
  EXPECT_EQ(written, orders);
  const test::ConsumerState c = admin.consumer(kStream, kConsumer);
  EXPECT_EQ(c.ack_pending, 0);
  EXPECT_EQ(c.pending, 0U);
  EXPECT_EQ(c.redelivered, 0);
  std::filesystem::remove_all(dir);
  admin.delete_stream(kStream);
}

}  // namespace
}  // namespace pushstage::nats
