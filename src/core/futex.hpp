// futex.hpp: the two Linux futex operations pushstage parks on.
// Threading: safe from any thread. Both are system calls; callers skip them
// when nobody can be waiting.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace pushstage::detail {

// Sleeps while *word == expected (checked atomically by the kernel), until futex_wake(), a signal,
// a spurious wake-up or `timeout` (nullptr: none). Returns false only on timeout. Callers loop on
// their own condition: every other return may be spurious.
bool futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                const std::chrono::nanoseconds* timeout) noexcept;

// Wakes up to `count` threads sleeping in futex_wait() on `word`.
void futex_wake(std::atomic<std::uint32_t>* word, int count) noexcept;

}  // namespace pushstage::detail
