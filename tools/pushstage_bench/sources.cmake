# pushstage-bench's sources, listed once for the CLI (tools/CMakeLists.txt) and for its fuzz target
# (tests/fuzz/CMakeLists.txt, which builds all of it but main.cpp and the broker).
#   pushstage_bench_sources         all but main.cpp, bench_core.cpp (a library of its own, also
#                                   compiled into bench_core_test) and the broker
#   pushstage_bench_broker_sources  --broker (built when pushstage::nats is)
set(pushstage_bench_sources
  backends/peer_backend.cpp
  backends/pipeline_backend.cpp
  backends/pipeline_front_backend.cpp
  backends/source_backend.cpp
  command_line.cpp
  forked_run.cpp
  harness/analysis.cpp
  harness/clocks.cpp
  harness/driver.cpp
  harness/work.cpp
  report/case_json.cpp
  report/format.cpp
  report/machine.cpp
  report/results_json.cpp
  report/summary.cpp
  report/svg.cpp
  report/table.cpp
  run.cpp
  scenario_targets.cpp
  scenarios.cpp)
set(pushstage_bench_broker_sources
  broker/broker.cpp
  broker/broker_case.cpp
  broker/broker_report.cpp
  broker/jetstream_admin.cpp
  broker/worker_main.cpp
  broker/worker_process.cpp)
list(TRANSFORM pushstage_bench_sources PREPEND "${CMAKE_CURRENT_LIST_DIR}/")
list(TRANSFORM pushstage_bench_broker_sources PREPEND "${CMAKE_CURRENT_LIST_DIR}/")
