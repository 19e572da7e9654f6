// forked_run.hpp: process isolation for the in-process runs. run_in_child() forks, runs
// run_once() in the child, and reads its RunResult back over a pipe as JSON (results_json.hpp):
// CPU time and peak RSS are then the child's alone, and a run that crashes or hangs its threads
// cannot take the next one with it. A child that dies, exits otherwise than with 0, or writes
// nothing readable comes back as a failed RunResult saying so.
// Threading: forks, so call it only while the process has a single thread.
#pragma once

#include <cstddef>
#include <string_view>

#include "bench_core.hpp"
#include "run.hpp"

namespace pushstage::bench {

[[nodiscard]] RunResult run_in_child(const RunConfig& config, const Plan& plan, Impl impl,
                                     std::size_t rep, std::string_view progress_label);

}  // namespace pushstage::bench
