# Builds and runs tests/package/consumer against pushstage, one way per call.
#   -DMODE=find_package      installs BUILD_DIR into WORK/prefix first
#   -DMODE=add_subdirectory  uses SOURCE_DIR directly
# Also forwards the compiler and flags so sanitizer builds link.
foreach(var MODE SOURCE_DIR BUILD_DIR WORK CXX CXX_FLAGS LINKER_FLAGS BUILD_TYPE)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_consumer.cmake needs -D${var}=")
  endif()
endforeach()
file(REMOVE_RECURSE "${WORK}")
set(args -S "${SOURCE_DIR}/tests/package/consumer" -B "${WORK}/build"
  "-DCMAKE_CXX_COMPILER=${CXX}" "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}"
  "-DCMAKE_EXE_LINKER_FLAGS=${LINKER_FLAGS}" "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}"
  "-DPUSHSTAGE_MODE=${MODE}")
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
foreach(step configure build run)
  if(step STREQUAL "configure")
    set(cmd "${CMAKE_COMMAND}" ${args})
  elseif(step STREQUAL "build")
    set(cmd "${CMAKE_COMMAND}" --build "${WORK}/build" -j 2)
  else()
    set(cmd "${WORK}/build/consumer")
  endif()
  execute_process(COMMAND ${cmd} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${MODE}: ${step} failed (${rc})")
  endif()
endforeach()
