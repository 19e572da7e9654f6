# Findconcurrentqueue.cmake: moodycamel::ConcurrentQueue as Debian's libconcurrentqueue-dev ships
# it (headers under <concurrentqueue/...>, no CMake config file of its own).
# Defines concurrentqueue_FOUND, concurrentqueue_INCLUDE_DIR and the imported target
# concurrentqueue::concurrentqueue.
find_path(concurrentqueue_INCLUDE_DIR NAMES concurrentqueue/concurrentqueue.h
  DOC "Directory holding concurrentqueue/concurrentqueue.h (moodycamel)")
mark_as_advanced(concurrentqueue_INCLUDE_DIR)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(concurrentqueue
  REQUIRED_VARS concurrentqueue_INCLUDE_DIR
  REASON_FAILURE_MESSAGE "install it with: apt-get install libconcurrentqueue-dev")

if(concurrentqueue_FOUND AND NOT TARGET concurrentqueue::concurrentqueue)
  add_library(concurrentqueue::concurrentqueue INTERFACE IMPORTED)
  set_target_properties(concurrentqueue::concurrentqueue PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${concurrentqueue_INCLUDE_DIR}")
endif()
