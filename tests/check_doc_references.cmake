# Documentation references in the code stay true (run by CTest as
# doc_references): no comment cites the retired "DESIGN §" notes, and every
# docs/<name>.md that a source file, the README or a header names exists.
# Usage: cmake -DROOT=<source dir> -P check_doc_references.cmake
cmake_minimum_required(VERSION 3.20)
file(GLOB_RECURSE sources RELATIVE ${ROOT}
  ${ROOT}/include/*.h ${ROOT}/src/*.c ${ROOT}/src/*.h ${ROOT}/cpu/*.c ${ROOT}/cuda/*.c
  ${ROOT}/cuda/*.h ${ROOT}/cuda/*.cu ${ROOT}/opencl/*.c ${ROOT}/opencl/*.h ${ROOT}/opencl/*.cl
  ${ROOT}/tests/*.c ${ROOT}/tests/*.h ${ROOT}/bench/*.c ${ROOT}/bench/*.h
  ${ROOT}/python-bindings/src/*.c ${ROOT}/python-bindings/src/*.h)
list(APPEND sources README.md)
set(problems "")
foreach(f IN LISTS sources)
  file(STRINGS ${ROOT}/${f} stale REGEX "DESIGN §")
  if(stale)
    string(APPEND problems "${f} cites the retired DESIGN notes: ${stale}\n")
  endif()
  file(STRINGS ${ROOT}/${f} cited REGEX "docs/[A-Za-z0-9_-]+\\.md")
  foreach(line IN LISTS cited)
    string(REGEX MATCHALL "docs/[A-Za-z0-9_-]+\\.md" docs "${line}")
    foreach(d IN LISTS docs)
      if(NOT EXISTS ${ROOT}/${d})
        string(APPEND problems "${f} names ${d}, which does not exist\n")
      endif()
    endforeach()
  endforeach()
endforeach()
if(problems)
  message(FATAL_ERROR "${problems}")
endif()
list(LENGTH sources n)
message(STATUS "doc references: ${n} files checked")
