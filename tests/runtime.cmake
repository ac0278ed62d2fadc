# tests/runtime.cmake - the runtime API (include/valkmem.h, interpose/api.c),
# its aggregation (agent/runtime.c) and the demo runtime program.

# Unit: api.c + runtime.c compiled in, fake clock and counters, exact figures.
vkm_test_exe(runtime_unit runtime_unit.c ${CMAKE_SOURCE_DIR}/agent/runtime.c ${CMAKE_SOURCE_DIR}/interpose/api.c
             ${CMAKE_SOURCE_DIR}/interpose/${VKM_PLATFORM}.c)
target_compile_definitions(runtime_unit PRIVATE VALKMEM_BUILDING_LIBRARY=1)
add_test(NAME runtime_unit COMMAND runtime_unit)
set_tests_properties(runtime_unit PROPERTIES TIMEOUT 30)

# Known truth through the public header only: without the library every call
# is a no-op and the program exits 0; under LD_PRELOAD its snapshot and exit
# report show exactly the figures it reported.
vkm_test_exe(runtime_api runtime_api.c)
add_test(NAME runtime_api_nolib COMMAND runtime_api --workload)
set_tests_properties(runtime_api_nolib PROPERTIES TIMEOUT 30)
# Preload tests: none under ASan (it replaces malloc itself, CONTRIBUTING.md,
# "Tests"). Labelled "preload" for the TSan and UBSan passes too (sanitizer
# builds copy ring records word by word, see interpose/ring.c).
set(VKM_RT_PRELOAD_LABELS "runtime;preload")
if(NOT VALKMEM_ASAN)
  add_test(NAME runtime_api_preload COMMAND runtime_api --drive ${VKM_LIB})
  # (select_top no longer copies from an empty site array: UBSan-clean.)
  set_tests_properties(runtime_api_preload PROPERTIES TIMEOUT 60 LABELS "runtime;preload")
endif()

# The demo runtime program (public header only): README's demo command.
add_executable(valkmem-demo demo/demo.c demo/vm.c demo/modes.c)
target_include_directories(valkmem-demo PRIVATE ${CMAKE_SOURCE_DIR}/include)
target_compile_definitions(valkmem-demo PRIVATE _GNU_SOURCE)
target_link_libraries(valkmem-demo PRIVATE pthread)
# Frame pointers and no inlining of the named sites keep stacks readable.
target_compile_options(valkmem-demo PRIVATE -fno-omit-frame-pointer)
install(TARGETS valkmem-demo RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# The demo: runs without the library; under it, its planted leak is flagged
# within 5 GC cycles and nothing is flagged without --leak.
add_test(NAME runtime_demo_nolib COMMAND valkmem-demo --seconds 1)
set_tests_properties(runtime_demo_nolib PROPERTIES TIMEOUT 30)
vkm_test_exe(runtime_demo runtime_demo.c)
if(NOT VALKMEM_ASAN)
  add_test(NAME runtime_demo_leak COMMAND runtime_demo ${VKM_LIB} $<TARGET_FILE:valkmem-demo> --leak)
  add_test(NAME runtime_demo_noleak COMMAND runtime_demo ${VKM_LIB} $<TARGET_FILE:valkmem-demo>)
  set_tests_properties(runtime_demo_leak runtime_demo_noleak PROPERTIES TIMEOUT 120 LABELS "${VKM_RT_PRELOAD_LABELS}")
endif()
