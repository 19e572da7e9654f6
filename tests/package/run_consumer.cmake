# Builds and runs tests/package/consumer against pushstage, one way per call.
#   -DMODE=find_package      installs BUILD_DIR into WORK/prefix first
#   -DMODE=add_subdirectory  uses SOURCE_DIR directly
#   -DWITH_NATS=AUTO|OFF     PUSHSTAGE_WITH_NATS for add_subdirectory
#   -DEXPECT_NATS=ON|OFF     whether pushstage::nats must exist (then its program runs too)
#   -DEXPECT_PROMETHEUS=ON|OFF  the same for pushstage::prometheus
# Also forwards the compiler and flags so sanitizer builds link.
foreach(var MODE SOURCE_DIR BUILD_DIR WORK CXX CXX_FLAGS LINKER_FLAGS BUILD_TYPE WITH_NATS
            EXPECT_NATS EXPECT_PROMETHEUS)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_consumer.cmake needs -D${var}=")
  endif()
endforeach()
file(REMOVE_RECURSE "${WORK}")
set(args -S "${SOURCE_DIR}/tests/package/consumer" -B "${WORK}/build"
  "-DCMAKE_CXX_COMPILER=${CXX}" "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}"
  "-DCMAKE_EXE_LINKER_FLAGS=${LINKER_FLAGS}" "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}"
  "-DPUSHSTAGE_MODE=${MODE}" "-DPUSHSTAGE_EXPECT_NATS=${EXPECT_NATS}"
  "-DPUSHSTAGE_WITH_NATS=${WITH_NATS}" "-DPUSHSTAGE_EXPECT_PROMETHEUS=${EXPECT_PROMETHEUS}")
if(MODE STREQUAL "find_package")
  execute_process(COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${WORK}/prefix"
    RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "install failed (${rc})")
  endif()
  list(APPEND args "-DCMAKE_PREFIX_PATH=${WORK}/prefix")
else()
  list(APPEND args "-DPUSHSTAGE_SOURCE_DIR=${SOURCE_DIR}")
endif()
set(steps configure build run)
if(EXPECT_NATS)
  list(APPEND steps run_nats)
endif()
if(EXPECT_PROMETHEUS)
  list(APPEND steps run_prometheus)
endif()
foreach(step IN LISTS steps)
  if(step STREQUAL "configure")
    set(cmd "${CMAKE_COMMAND}" ${args})
  elseif(step STREQUAL "build")
    set(cmd "${CMAKE_COMMAND}" --build "${WORK}/build" -j 2)
  elseif(step STREQUAL "run")
    set(cmd "${WORK}/build/consumer")
  elseif(step STREQUAL "run_nats")
    set(cmd "${WORK}/build/nats_consumer")
  else()
    set(cmd "${WORK}/build/prometheus_consumer")
  endif()
  execute_process(COMMAND ${cmd} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${MODE}: ${step} failed (${rc})")
  endif()
endforeach()
