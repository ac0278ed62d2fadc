# fleet.cmake - valkmem scraped by the fleet tools, unchanged (README "Fleets"):
#
#   fleet_prometheus  a real Prometheus server (Debian's /usr/bin/prometheus)
#                     scrapes a program under the shim with the job of
#                     examples/prometheus.yml; its stored samples equal the
#                     agent's own snapshot (counters exactly)
#   fleet_pprof       go tool pprof reads /debug/pprof/heap and /allocs: Go's
#                     sample types in Go's order, a planted site within the
#                     stated sampling error, a ?seconds=2 delta holding only
#                     the window's allocations, -proto re-encoding
#   fleet_queries     malformed query strings: 400 and a message, never a hang;
#                     unservable profiles: 404 and one line; ?pid= in a tree
#
# Not labelled preload: they start servers and Go's toolchain, and are not
# meant for the sanitizer passes. Skipped (77) when a tool is missing.
find_package(Python3 COMPONENTS Interpreter QUIET)
if(Python3_FOUND AND NOT VALKMEM_ASAN)
  vkm_test_exe(fleet_prog ${CMAKE_CURRENT_SOURCE_DIR}/fleet_prog.c)
  add_dependencies(fleet_prog valkmem)
  foreach(part prometheus pprof queries)
    add_test(NAME fleet_${part}
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/fleet_test.py ${part}
                     --preload ${VKM_LIB} --prog $<TARGET_FILE:fleet_prog>
                     --examples ${CMAKE_SOURCE_DIR}/examples)
    set_tests_properties(fleet_${part} PROPERTIES TIMEOUT 180 SKIP_RETURN_CODE 77 LABELS fleet)
  endforeach()
endif()

# fleet_unit: the heap profile's buckets (agent/heapprof.c) on their own,
# with a table of 8 so the fallback for a full table runs.
vkm_test_exe(fleet_unit ${CMAKE_CURRENT_SOURCE_DIR}/fleet_unit.c ${CMAKE_SOURCE_DIR}/agent/heapprof.c)
target_compile_definitions(fleet_unit PRIVATE HEAPPROF_MAX=8)
add_test(NAME fleet_unit COMMAND fleet_unit)
set_tests_properties(fleet_unit PROPERTIES TIMEOUT 30 LABELS "fleet")
