# cmake -DBRIDGE_DIR=<bridge/> -P check_layering.cmake
cmake_minimum_required(VERSION 3.20)
# Fails when a file of one bridge/ folder includes a header of a folder it may not use. The
# arrows are the ones bridge/CMakeLists.txt links and docs/architecture.md draws.
set(allowed_common common)
set(allowed_auth auth common)
set(allowed_storage storage common)
set(allowed_ingest ingest auth storage common)
set(allowed_statistics statistics auth storage common)
set(jobs common auth storage ingest statistics)

set(violations "")
foreach(job IN LISTS jobs)
  file(GLOB_RECURSE files
    ${BRIDGE_DIR}/include/meshhook/bridge/${job}/*.h ${BRIDGE_DIR}/src/${job}/*.h
    ${BRIDGE_DIR}/src/${job}/*.cpp)
  foreach(f IN LISTS files)
    file(STRINGS ${f} lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"meshhook/bridge/")
    foreach(line IN LISTS lines)
      string(REGEX MATCH "meshhook/bridge/([a-z_]+)/" _ "${line}")
      set(used "${CMAKE_MATCH_1}")
      if(used STREQUAL "" OR NOT used IN_LIST allowed_${job})
        file(RELATIVE_PATH rel ${BRIDGE_DIR} ${f})
        string(APPEND violations "  ${rel}: ${job} may not include \"${line}\" (it may use: ${allowed_${job}})\n")
      endif()
    endforeach()
  endforeach()
endforeach()
# Anything directly under include/meshhook/bridge/ or src/ belongs to no job.
file(GLOB stray ${BRIDGE_DIR}/include/meshhook/bridge/*.h ${BRIDGE_DIR}/src/*.cpp ${BRIDGE_DIR}/src/*.h)
foreach(f IN LISTS stray)
  file(RELATIVE_PATH rel ${BRIDGE_DIR} ${f})
  string(APPEND violations "  ${rel}: outside the job folders (${jobs})\n")
endforeach()

if(violations)
  message(FATAL_ERROR "bridge layering broken:\n${violations}")
endif()
message(STATUS "bridge layering: ok")
