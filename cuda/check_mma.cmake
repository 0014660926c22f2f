# ctest -R cuda_mma_instructions: the plugin must carry, for every
# architecture it was built for, the PTX instruction
#   mma.sync.aligned.m16n8k256.row.col.s32.b1.b1.s32.and.popc
# and its machine code (SASS BMMA.168256.AND.POPC). Needs cuobjdump and
# nvdisasm (the CUDA toolkit, or the PyPI wheels nvidia-cuda-cuobjdump and
# nvidia-cuda-nvdisasm that .ci/install-deps.sh installs); skips without them.
#   cmake -DLIB=<libbitplane_cuda.so> -DARCHS="80;86;89;90" [-DCUDA_BIN=dir] -P check_mma.cmake
find_program(CUOBJDUMP cuobjdump HINTS ${CUDA_BIN} $ENV{BP_CUDA_TOOLS} /opt/bitplane-cuda-tools/bin)
get_filename_component(_tools_dir "${CUOBJDUMP}" DIRECTORY)
find_program(NVDISASM nvdisasm HINTS ${CUDA_BIN} ${_tools_dir} $ENV{BP_CUDA_TOOLS})
if(NOT CUOBJDUMP OR NOT NVDISASM)
  message("SKIP: cuobjdump/nvdisasm not found (install the CUDA toolkit's binary utilities or "
    "pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm and set BP_CUDA_TOOLS)")
  return()
endif()
get_filename_component(_nvdisasm_dir "${NVDISASM}" DIRECTORY)
set(ENV{PATH} "${_nvdisasm_dir}:$ENV{PATH}")
set(_ptx_insn "mma.sync.aligned.m16n8k256.row.col.s32.b1.b1.s32.and.popc")
foreach(_arch IN LISTS ARCHS)
  string(REGEX REPLACE "-(real|virtual)$" "" _arch "${_arch}")
  execute_process(COMMAND ${CUOBJDUMP} -ptx -arch sm_${_arch} ${LIB}
    OUTPUT_VARIABLE _ptx ERROR_VARIABLE _err RESULT_VARIABLE _rc)
  string(FIND "${_ptx}" "${_ptx_insn}" _at)
  if(NOT _rc EQUAL 0 OR _at EQUAL -1)
    message(FATAL_ERROR "sm_${_arch}: no '${_ptx_insn}' in the plugin's PTX (${_rc}: ${_err})")
  endif()
  execute_process(COMMAND ${CUOBJDUMP} -sass -arch sm_${_arch} ${LIB}
    OUTPUT_VARIABLE _sass ERROR_VARIABLE _err RESULT_VARIABLE _rc)
  string(REGEX MATCHALL "BMMA\\.168256\\.AND\\.POPC" _bmma "${_sass}")
  list(LENGTH _bmma _n)
  if(NOT _rc EQUAL 0 OR _n EQUAL 0)
    message(FATAL_ERROR "sm_${_arch}: no BMMA.168256.AND.POPC in the plugin's SASS (${_rc}: ${_err})")
  endif()
  message(STATUS "sm_${_arch}: PTX has ${_ptx_insn}; SASS has ${_n} BMMA.168256.AND.POPC")
endforeach()
