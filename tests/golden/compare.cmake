# cmake -DPROGRAM=<exposition_golden> -DFORMAT=prom|om -DGOLDEN=<file> -P compare.cmake
#
# Runs the golden program and compares its output byte for byte with GOLDEN. To accept a
# deliberate change of the exposition, run the tests with MESHHOOK_UPDATE_GOLDEN=1 in the
# environment: the golden files are then rewritten instead of compared (review the diff).
execute_process(COMMAND ${PROGRAM} ${FORMAT} OUTPUT_VARIABLE actual RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} ${FORMAT} failed: ${rc}")
endif()
if("$ENV{MESHHOOK_UPDATE_GOLDEN}" STREQUAL "1")
  file(WRITE ${GOLDEN} "${actual}")
  message(STATUS "rewrote ${GOLDEN}")
  return()
endif()
file(READ ${GOLDEN} expected)
if(NOT actual STREQUAL expected)
  get_filename_component(name ${GOLDEN} NAME)
  set(actual_file ${CMAKE_CURRENT_BINARY_DIR}/${name}.actual)
  file(WRITE ${actual_file} "${actual}")
  execute_process(COMMAND diff -u ${GOLDEN} ${actual_file})
  message(FATAL_ERROR "exposition differs from ${GOLDEN} (actual output in ${actual_file}); "
                      "if the change is intended, rerun with MESHHOOK_UPDATE_GOLDEN=1")
endif()
