# tests/runtime.cmake - the runtime API (include/valkmem.h, interpose/api.c),
# its aggregation (agent/runtime.c) and the demo runtime program.

# Unit: api.c + runtime.c compiled in, fake clock and counters, exact figures.
vkm_test_exe(runtime_unit runtime_unit.c ${CMAKE_SOURCE_DIR}/agent/runtime.c ${CMAKE_SOURCE_DIR}/interpose/api.c)
target_compile_definitions(runtime_unit PRIVATE VALKMEM_BUILDING_LIBRARY=1)
add_test(NAME runtime_unit COMMAND runtime_unit)
set_tests_properties(runtime_unit PROPERTIES TIMEOUT 30)
