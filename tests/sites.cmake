# sites.cmake - call sites, symbols, lifetimes, leaks (agent/sites.c,
# agent/symbols.c) and the pprof/folded exports (agent/pprof.c).

# Units: the agent sources compiled straight in, with stubs for the rest.
vkm_test_exe(sites_unit ${CMAKE_CURRENT_SOURCE_DIR}/sites_unit.c ${CMAKE_CURRENT_SOURCE_DIR}/sites_stubs.c
             ${CMAKE_SOURCE_DIR}/agent/sites.c ${CMAKE_SOURCE_DIR}/agent/heapprof.c ${CMAKE_SOURCE_DIR}/agent/symbols.c
             ${CMAKE_SOURCE_DIR}/agent/objfile_${VKM_PLATFORM}.c)
add_test(NAME sites_unit COMMAND sites_unit)
set_tests_properties(sites_unit PROPERTIES TIMEOUT 120)

# pprof/folded exports, read back by go tool pprof (offline: HOME, GOFLAGS,
# GOPROXY=off are set by the test itself).
vkm_test_exe(pprof_unit ${CMAKE_CURRENT_SOURCE_DIR}/pprof_unit.c ${CMAKE_CURRENT_SOURCE_DIR}/sites_stubs.c
             ${CMAKE_SOURCE_DIR}/agent/pprof.c)
add_test(NAME pprof_unit COMMAND pprof_unit)
set_tests_properties(pprof_unit PROPERTIES TIMEOUT 120)

# End to end under LD_PRELOAD: each driver runs itself as the workload child.
vkm_test_exe(attr_accuracy ${CMAKE_CURRENT_SOURCE_DIR}/attr_accuracy.c)
add_dependencies(attr_accuracy valkmem)
add_test(NAME attr_accuracy_sampled COMMAND attr_accuracy ${VKM_LIB} sampled)
add_test(NAME attr_accuracy_exact COMMAND attr_accuracy ${VKM_LIB} exact)
set_tests_properties(attr_accuracy_sampled attr_accuracy_exact PROPERTIES TIMEOUT 180)

vkm_test_exe(attr_threads ${CMAKE_CURRENT_SOURCE_DIR}/attr_threads.c)
add_dependencies(attr_threads valkmem)
add_test(NAME attr_threads COMMAND attr_threads ${VKM_LIB})
set_tests_properties(attr_threads PROPERTIES TIMEOUT 120)

# Leak detection at the default rate: ~20-45 s each (stops once flagged).
vkm_test_exe(attr_leak ${CMAKE_CURRENT_SOURCE_DIR}/attr_leak.c)
add_dependencies(attr_leak valkmem)
add_test(NAME attr_leak_time COMMAND attr_leak ${VKM_LIB} time)
add_test(NAME attr_leak_gc COMMAND attr_leak ${VKM_LIB} gc)
set_tests_properties(attr_leak_time attr_leak_gc PROPERTIES TIMEOUT 120)

# The ELF/DWARF reader against damaged copies of a binary; with ASan/UBSan
# unless the build already selects a sanitizer.
vkm_test_exe(sites_symfuzz ${CMAKE_CURRENT_SOURCE_DIR}/sites_symfuzz.c ${CMAKE_CURRENT_SOURCE_DIR}/sites_stubs.c
             ${CMAKE_SOURCE_DIR}/agent/symbols.c ${CMAKE_SOURCE_DIR}/agent/objfile_${VKM_PLATFORM}.c)
if(NOT VALKMEM_ASAN AND NOT VALKMEM_TSAN AND NOT VALKMEM_UBSAN)
  target_compile_options(sites_symfuzz PRIVATE -fsanitize=address,undefined -fno-sanitize-recover=undefined)
  target_link_options(sites_symfuzz PRIVATE -fsanitize=address,undefined)
endif()
add_test(NAME sites_symfuzz COMMAND sites_symfuzz)
set_tests_properties(sites_symfuzz PROPERTIES TIMEOUT 120)
