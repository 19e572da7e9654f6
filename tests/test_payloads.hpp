// test_payloads.hpp: payloads that make leaks, double destroys and hidden copies visible.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace pushstage::test {

// Counts live instances: constructed minus destroyed must be 0 at the end of a test.
struct Counted {
  static inline std::atomic<std::int64_t> live{0};
  static inline std::atomic<std::int64_t> copies{0};
  std::uint64_t value = 0;
  bool moved_from = false;

  explicit Counted(std::uint64_t v) : value(v) { live.fetch_add(1, std::memory_order_relaxed); }
  Counted(const Counted& o) : value(o.value) {
    live.fetch_add(1, std::memory_order_relaxed);
    copies.fetch_add(1, std::memory_order_relaxed);
  }
  Counted(Counted&& o) noexcept : value(o.value) {
    o.moved_from = true;
    live.fetch_add(1, std::memory_order_relaxed);
  }
  Counted& operator=(const Counted& o) {
    value = o.value;
    copies.fetch_add(1, std::memory_order_relaxed);
    return *this;
  }
  Counted& operator=(Counted&& o) noexcept {
    value = o.value;
    o.moved_from = true;
    return *this;
  }
  ~Counted() { live.fetch_sub(1, std::memory_order_relaxed); }
  static void reset() {
    live = 0;
    copies = 0;
  }
};

// Move-only and not default-constructible: proves that nothing is copied or default-built.
struct MoveOnly {
  std::unique_ptr<std::uint64_t> value;
  explicit MoveOnly(std::uint64_t v) : value(std::make_unique<std::uint64_t>(v)) {}
  MoveOnly(MoveOnly&&) noexcept = default;
  MoveOnly& operator=(MoveOnly&&) noexcept = default;
  MoveOnly(const MoveOnly&) = delete;
  MoveOnly& operator=(const MoveOnly&) = delete;
};

}  // namespace pushstage::test
