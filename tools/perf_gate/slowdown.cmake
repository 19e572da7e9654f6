# tools/perf_gate/slowdown.cmake: the deliberate slowdowns of the perf gate's self-test, put into
# the gate's own builds only; the library has no option for them. perf_gate.py configures a build
# with
#   cmake ... -DCMAKE_PROJECT_INCLUDE=<this file> -DPUSHSTAGE_PERF_GATE_SLOW_<WHERE>=<spins>
# and this file, once the top-level CMakeLists.txt has defined every target, adds the private
# compile definition PUSHSTAGE_PERF_GATE_SLOW_<WHERE>=<spins> to the one source file or the
# targets that compile the hook: an #ifdef'd loop of <spins> volatile increments at
#   PUSH  every push (include/pushstage/dispatcher.hpp, Dispatcher::push_one): a header template,
#         so the executables that instantiate it get the definition
#   WAKE  Parking::wake, between claiming a parked consumer and its futex wake (src/core/parking.cpp)
#   LOOP  every event of ConsumerPool's one-at-a-time loop (include/pushstage/pool/pool_core.hpp,
#         PoolCore::consume): a header template, likewise
# A header hook's executables each instantiate it for event types of their own, so no template is
# compiled both with and without the definition.
# Configuring fails when a slowdown is asked for and its hook is not where this file says (moved or
# renamed: carry the #ifdef and update the path here).
include_guard(GLOBAL)

# WHERE, the file that holds its #ifdef, and for a header the executables that get the definition.
set(_pushstage_perf_gate_hooks
  "PUSH include/pushstage/dispatcher.hpp perf_gate_icount dispatcher_bench consumer_pool_bench pushstage-bench"
  "WAKE src/core/parking.cpp"
  "LOOP include/pushstage/pool/pool_core.hpp consumer_pool_bench pushstage-bench")

function(_pushstage_perf_gate_slowdown)
  foreach(hook IN LISTS _pushstage_perf_gate_hooks)
    separate_arguments(hook UNIX_COMMAND "${hook}")
    list(GET hook 0 where)
    list(GET hook 1 file)
    list(REMOVE_AT hook 0 1)  # what is left: the executables
    set(macro "PUSHSTAGE_PERF_GATE_SLOW_${where}")
    if(NOT DEFINED ${macro})
      continue()
    endif()
    if(NOT "${${macro}}" MATCHES "^[1-9][0-9]*$")
      message(FATAL_ERROR "perf gate: ${macro}=${${macro}}: want a count of spins (1 or more)")
    endif()
    file(STRINGS "${CMAKE_SOURCE_DIR}/${file}" found REGEX "#ifdef ${macro}")
    if(NOT found)
      message(FATAL_ERROR "perf gate: ${file} has no '#ifdef ${macro}' (the hook moved? see "
                          "tools/perf_gate/slowdown.cmake)")
    endif()
    if(file MATCHES "\\.cpp$")
      set_property(SOURCE "${file}" TARGET_DIRECTORY pushstage APPEND PROPERTY
        COMPILE_DEFINITIONS "${macro}=${${macro}}")
    else()
      foreach(target IN LISTS hook)
        if(TARGET ${target})
          target_compile_definitions(${target} PRIVATE "${macro}=${${macro}}")
        endif()
      endforeach()
    endif()
    message(STATUS "perf gate: deliberate slowdown ${macro}=${${macro}} (${file})")
  endforeach()
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _pushstage_perf_gate_slowdown)
