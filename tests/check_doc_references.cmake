# Documentation references in the code stay true (run by CTest as
# doc_references): no comment cites the retired "DESIGN §" notes, every
# docs/<name>.md that a source file, the README or a header names exists,
# and in the README and docs/*.md every relative Markdown link resolves from
# the file's directory and every `path` in backticks under a top-level
# source directory exists (CHANGELOG.md is history and may name old files),
# and the README's table of CPU paths matches the names BP_CPU accepts.
# Usage: cmake -DROOT=<source dir> -P check_doc_references.cmake
cmake_minimum_required(VERSION 3.20)
file(GLOB_RECURSE sources RELATIVE ${ROOT}
  ${ROOT}/include/*.h ${ROOT}/src/*.c ${ROOT}/src/*.h ${ROOT}/cpu/*.c ${ROOT}/cuda/*.c
  ${ROOT}/cuda/*.h ${ROOT}/cuda/*.cu ${ROOT}/opencl/*.c ${ROOT}/opencl/*.h ${ROOT}/opencl/kernels/*.cl
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

file(GLOB notes RELATIVE ${ROOT} ${ROOT}/docs/*.md)
foreach(f IN LISTS notes ITEMS README.md)
  file(READ ${ROOT}/${f} text)
  get_filename_component(dir ${ROOT}/${f} DIRECTORY)
  # Markdown links to local files: ](target) or ](target#anchor). "]" would
  # upset CMake's list splitting, so the link opener becomes a plain marker.
  string(REPLACE "](" "<link>" marked "${text}")
  string(REGEX MATCHALL "<link>[^):# ]+[)#]" links "${marked}")
  foreach(l IN LISTS links)
    string(REGEX REPLACE "^<link>([^):# ]+)[)#]$" "\\1" target "${l}")
    if(NOT EXISTS ${dir}/${target})
      string(APPEND problems "${f} links to ${target}, which does not exist\n")
    endif()
  endforeach()
  # `paths` in backticks under the source tree's top-level directories.
  string(REGEX MATCHALL
    "`(\\.ci|bench|cmake|cpu|cuda|docs|include|opencl|python-bindings|src|tests)/[A-Za-z0-9_./-]+`"
    paths "${text}")
  foreach(p IN LISTS paths)
    string(REPLACE "`" "" p "${p}")
    if(NOT EXISTS ${ROOT}/${p})
      string(APPEND problems "${f} names `${p}`, which does not exist\n")
    endif()
  endforeach()
endforeach()

# The README's table of CPU paths (`BP_CPU=`) names exactly the paths
# cpu/cpu_dispatch.c accepts.
file(READ ${ROOT}/cpu/cpu_dispatch.c dispatch)
string(REGEX MATCHALL "{\"[a-z0-9-]+\", BP_CPU_KERNEL_" accepted "${dispatch}")
string(REGEX REPLACE "{\"([a-z0-9-]+)\", BP_CPU_KERNEL_" "\\1" accepted "${accepted}")
file(READ ${ROOT}/README.md readme)
string(REGEX MATCHALL "\n\\| `[a-z0-9-]+`[^|\n]*\\| `cpu/" rows "${readme}")
set(documented "")
foreach(r IN LISTS rows)
  string(REGEX REPLACE "^\n\\| `([a-z0-9-]+)`.*$" "\\1" name "${r}")
  list(APPEND documented ${name})
endforeach()
if(NOT accepted)
  string(APPEND problems "no CPU path names found in cpu/cpu_dispatch.c\n")
endif()
foreach(name IN LISTS accepted)
  if(NOT name IN_LIST documented)
    string(APPEND problems "README's CPU path table lacks `${name}` (cpu/cpu_dispatch.c)\n")
  endif()
endforeach()
foreach(name IN LISTS documented)
  if(NOT name IN_LIST accepted)
    string(APPEND problems "README's CPU path table names `${name}`, which BP_CPU does not accept\n")
  endif()
endforeach()

if(problems)
  message(FATAL_ERROR "${problems}")
endif()
list(LENGTH sources n)
message(STATUS "doc references: ${n} files checked")
