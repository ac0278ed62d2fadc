# tests/realprog.cmake - real programs under the shim: byte-identical stdout
# and the same exit code with and without LD_PRELOAD, and every report parses
# with non-zero counts. Once with default sampling, once in exact mode.
# Driver: tests/realprog_run.sh; the cases are tests/realprog_*.
find_program(VKM_RP_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT VKM_RP_PYTHON)
  find_program(VKM_RP_PYTHON NAMES python3)
endif()
find_program(VKM_RP_BASH bash)

set(VKM_RP_NEEDS_bash bash)
set(VKM_RP_NEEDS_python "")
set(VKM_RP_NEEDS_sqlite sqlite3)
set(VKM_RP_NEEDS_git git)
set(VKM_RP_NEEDS_perl perl)
set(VKM_RP_NEEDS_pipeline awk)
set(VKM_RP_NEEDS_gcc gcc)
set(VKM_RP_NEEDS_node node)
set(VKM_RP_NEEDS_java javac java)
set(VKM_RP_NEEDS_cpython "")

if(VKM_RP_PYTHON AND VKM_RP_BASH)
  foreach(rp_case bash python sqlite git perl pipeline gcc node java cpython)
    set(rp_ok TRUE)
    foreach(tool ${VKM_RP_NEEDS_${rp_case}})
      find_program(VKM_RP_TOOL_${tool} ${tool})
      if(NOT VKM_RP_TOOL_${tool})
        set(rp_ok FALSE)
        message(STATUS "realprog: ${tool} not found, realprog_${rp_case} skipped")
      endif()
    endforeach()
    if(rp_case STREQUAL "cpython")
      # CPython's test package (Debian: libpython3.X-testsuite, which
      # .ci/setup --with-tests installs).
      execute_process(COMMAND ${VKM_RP_PYTHON} -c "import test.libregrtest" RESULT_VARIABLE rp_rc OUTPUT_QUIET ERROR_QUIET)
      if(NOT rp_rc EQUAL 0)
        set(rp_ok FALSE)
        message(STATUS "realprog: ${VKM_RP_PYTHON} has no test package, realprog_cpython skipped")
      endif()
    endif()
    if(rp_ok)
      foreach(rp_mode sampled exact)
        add_test(NAME realprog_${rp_case}_${rp_mode}
                 COMMAND ${VKM_RP_BASH} ${CMAKE_CURRENT_SOURCE_DIR}/realprog_run.sh ${VKM_LIB} ${rp_mode}
                         ${rp_case} ${CMAKE_CURRENT_SOURCE_DIR} ${VKM_RP_PYTHON})
        set_tests_properties(realprog_${rp_case}_${rp_mode} PROPERTIES TIMEOUT 300 LABELS "realprog;preload")
      endforeach()
    endif()
  endforeach()
else()
  message(STATUS "realprog: bash or python3 not found, real-program tests skipped")
endif()
