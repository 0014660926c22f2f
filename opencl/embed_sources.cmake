# Turns the OpenCL C files into one C file of byte arrays, so the library
# carries its kernels and never reads files at run time. Bytes rather than
# string literals: no escaping rules, no compiler limit on literal length.
#   cmake -DOUT=<file.c> -DSOURCES="<a.cl>;<b.cl>" -P embed_sources.cmake
# The sources are concatenated in the order given into one program.
set(_body "/* Generated from the files in opencl/kernels by embed_sources.cmake. Do not edit. */\n")
string(APPEND _body "#include \"ocl_sources.h\"\n\n")
set(_names "")
set(_index 0)
foreach(_src IN LISTS SOURCES)
  file(READ "${_src}" _hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," _bytes "${_hex}")
  # Line breaks every 24 bytes keep the generated file readable in a diff.
  string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){24})" "\\1\n    " _bytes "${_bytes}")
  get_filename_component(_name "${_src}" NAME)
  string(APPEND _body "static const char source_${_index}[] = {\n    ${_bytes}0x00};\n")
  string(APPEND _names "    {\"${_name}\", source_${_index}},\n")
  math(EXPR _index "${_index} + 1")
endforeach()
string(APPEND _body "\nconst bp_ocl_source bp__ocl_sources[] = {\n${_names}};\n")
string(APPEND _body "const unsigned bp__ocl_source_count = ${_index};\n")
# Rewrite only on change, so unrelated reconfigures do not rebuild.
if(EXISTS "${OUT}")
  file(READ "${OUT}" _old)
  if(_old STREQUAL _body)
    return()
  endif()
endif()
file(WRITE "${OUT}" "${_body}")
