// driver.cpp: see driver.hpp.
#include "harness/driver.hpp"

#include <unistd.h>

#include <cinttypes>
#include <cstdio>

namespace pushstage::bench {
namespace {

const std::int64_t g_program_start_ns = now_ns();

bool stderr_is_a_terminal() {
  static const bool tty = isatty(STDERR_FILENO) == 1;
  return tty;
}

}  // namespace

void progress(std::string_view label, std::uint64_t done, std::uint64_t total, std::int64_t t0) {
  if (!stderr_is_a_terminal() || now_ns() - g_program_start_ns < 2'000'000'000) return;
  std::fprintf(stderr, "\r\033[K%.*s: %" PRIu64 "/%" PRIu64 " events, %.1f s",
               static_cast<int>(label.size()), label.data(), done, total,
               static_cast<double>(now_ns() - t0) / 1e9);
  std::fflush(stderr);
}

void clear_progress() {
  if (stderr_is_a_terminal()) std::fputs("\r\033[K", stderr);
}

}  // namespace pushstage::bench
