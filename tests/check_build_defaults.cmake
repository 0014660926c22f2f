# Build defaults (run by CTest as build_defaults):
#  1. Included with add_subdirectory, bitplane configures with its tests and
#     benchmark off.
#  2. As the top-level project, a machine without Criterion and OpenBLAS
#     still configures: tests and benchmark are skipped with a message.
# Usage: cmake -DROOT=<source dir> -DWORK=<scratch dir> -P check_build_defaults.cmake
cmake_minimum_required(VERSION 3.20)
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
set(_common -DBP_CUDA=OFF -DBP_OPENCL=OFF -DBP_PYTHON=OFF)

execute_process(
  COMMAND ${CMAKE_COMMAND} -S ${ROOT}/tests/subproject -B ${WORK}/sub -DBP_ROOT=${ROOT} ${_common}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "configuring bitplane as a subproject failed:\n${out}\n${err}")
endif()
file(STRINGS ${WORK}/sub/CMakeCache.txt cache REGEX "^BP_BUILD_(TESTS|BENCH):BOOL=")
foreach(want "BP_BUILD_TESTS:BOOL=OFF" "BP_BUILD_BENCH:BOOL=OFF")
  if(NOT want IN_LIST cache)
    message(FATAL_ERROR "as a subproject, bitplane should default to ${want}; cache has: ${cache}")
  endif()
endforeach()
if(EXISTS ${WORK}/sub/bitplane/tests OR EXISTS ${WORK}/sub/bitplane/bench)
  message(FATAL_ERROR "as a subproject, bitplane configured its tests or benchmark")
endif()

# No pkg-config executable, and find_library/find_path confined to an empty
# root: neither Criterion nor OpenBLAS can be found.
execute_process(
  COMMAND ${CMAKE_COMMAND} -S ${ROOT} -B ${WORK}/top ${_common}
    -DPKG_CONFIG_EXECUTABLE=${WORK}/no-pkg-config -DCMAKE_FIND_ROOT_PATH=${WORK}/empty
    -DCMAKE_FIND_ROOT_PATH_MODE_LIBRARY=ONLY -DCMAKE_FIND_ROOT_PATH_MODE_INCLUDE=ONLY
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "configuring without Criterion and OpenBLAS failed:\n${out}\n${err}")
endif()
foreach(msg "skipping the Criterion test suites" "skipping bitplane-bench")
  string(FIND "${out}${err}" "${msg}" at)
  if(at LESS 0)
    message(FATAL_ERROR "configure did not say '${msg}':\n${out}\n${err}")
  endif()
endforeach()
file(STRINGS ${WORK}/top/CMakeCache.txt cache REGEX "^BP_BUILD_TESTS:BOOL=")
if(NOT "BP_BUILD_TESTS:BOOL=ON" IN_LIST cache)
  message(FATAL_ERROR "as the top-level project, BP_BUILD_TESTS should default to ON: ${cache}")
endif()
file(REMOVE_RECURSE ${WORK})
message(STATUS "build defaults: subproject off; missing Criterion and OpenBLAS skipped")
