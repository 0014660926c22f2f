# The plugin boundary stays narrow (run by CTest as plugin_headers): sources of
# the accelerator plugins (cuda/, opencl/) include from the core only the
# frozen src/bp_abi.h, so a change to CPU-side internals (kernels, quantizers,
# the pool) cannot silently change what a plugin was built against.
# Usage: cmake -DROOT=<source dir> -P check_plugin_headers.cmake
cmake_minimum_required(VERSION 3.20)
file(GLOB core_headers RELATIVE ${ROOT}/src ${ROOT}/src/*.h)
list(APPEND core_headers cpu_kernel.h)
list(REMOVE_ITEM core_headers bp_abi.h bp_mem.h)
file(GLOB_RECURSE sources RELATIVE ${ROOT}
  ${ROOT}/cuda/*.c ${ROOT}/cuda/*.h ${ROOT}/cuda/*.cu ${ROOT}/opencl/*.c ${ROOT}/opencl/*.h)
set(problems "")
foreach(f IN LISTS sources)
  file(STRINGS ${ROOT}/${f} includes REGEX "^#include \"")
  foreach(line IN LISTS includes)
    foreach(h IN LISTS core_headers)
      if(line MATCHES "[\"/]${h}\"")
        string(APPEND problems "${f} includes the core-internal ${h}; plugins see only bp_abi.h\n")
      endif()
    endforeach()
  endforeach()
endforeach()
if(problems)
  message(FATAL_ERROR "${problems}")
endif()
