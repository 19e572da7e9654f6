// A user's program: push events, let a pool handle them, check that every one arrived.
#include <atomic>
#include <cstdio>
#include <pushstage/pushstage.hpp>
#include <vector>

int main() {
  pushstage::Dispatcher<int> events;
  std::atomic<long> sum{0};
  pushstage::PoolOptions options;
  options.consumers = 2;
  pushstage::ConsumerPool<int> pool(events, options, [&](int& e) { sum.fetch_add(e); });
  auto producer = events.producer();
  for (int i = 1; i <= 500; ++i) {
    if (producer.push(i) != pushstage::PushResult::Pushed) return 1;
  }
  std::vector<int> rest;
  for (int i = 501; i <= 1000; ++i) rest.push_back(i);
  if (producer.push_bulk(rest.begin(), rest.end()) != rest.size()) return 1;
  events.close();
  pool.join();
  std::printf("handled sum %ld\n", sum.load());
  return sum.load() == 1000L * 1001 / 2 ? 0 : 1;
}
