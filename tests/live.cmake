# live.cmake - the live agent's readers: history rings, OS readers,
# allocator statistics. Units compile the agent sources directly with
# tests/live_stubs.c, so they never wait for the whole library.
set(VKM_LIVE_AGENT ${CMAKE_SOURCE_DIR}/agent)

vkm_test_exe(live_history live_history.c live_stubs.c ${VKM_LIVE_AGENT}/history.c
             ${CMAKE_SOURCE_DIR}/interpose/${VKM_PLATFORM}.c)
add_test(NAME live_history COMMAND live_history)
set_tests_properties(live_history PROPERTIES TIMEOUT 60)

if(VKM_PLATFORM STREQUAL "linux")
  vkm_test_exe(live_os live_os.c live_stubs.c ${VKM_LIVE_AGENT}/os_linux.c ${VKM_LIVE_AGENT}/os.c
               ${CMAKE_SOURCE_DIR}/interpose/${VKM_PLATFORM}.c)
  add_test(NAME live_os COMMAND live_os)
  set_tests_properties(live_os PROPERTIES TIMEOUT 60)
endif()

# The app's malloc is glibc's here: this executable must not link mimalloc
# (libmimalloc.so exports malloc and would come first), so mi_process_info
# is stubbed.
vkm_test_exe(live_allocstats live_allocstats.c live_stubs.c ${VKM_LIVE_AGENT}/allocstats.c
             ${VKM_LIVE_AGENT}/os_${VKM_PLATFORM}.c ${CMAKE_SOURCE_DIR}/interpose/${VKM_PLATFORM}.c)
target_compile_definitions(live_allocstats PRIVATE LIVE_STUB_MIMALLOC=1)
add_test(NAME live_allocstats COMMAND live_allocstats glibc)
set_tests_properties(live_allocstats PROPERTIES TIMEOUT 60)

# Linked with mimalloc, whose malloc then is the next one: without
# VALKMEM_ALLOCATOR the source must be "none"; with it, "mimalloc".
vkm_test_exe(live_allocstats_mi live_allocstats.c live_stubs.c ${VKM_LIVE_AGENT}/allocstats.c
             ${VKM_LIVE_AGENT}/os_${VKM_PLATFORM}.c ${CMAKE_SOURCE_DIR}/interpose/${VKM_PLATFORM}.c)
target_link_libraries(live_allocstats_mi PRIVATE mimalloc)
target_link_options(live_allocstats_mi PRIVATE -Wl,--no-as-needed)
add_test(NAME live_allocstats_none COMMAND live_allocstats_mi none)
add_test(NAME live_allocstats_mimalloc COMMAND live_allocstats_mi mimalloc)
set_tests_properties(live_allocstats_none live_allocstats_mimalloc PROPERTIES TIMEOUT 60)

# End to end under the shim: planted heap, anon and thread stacks, checked
# in the exit report (smaps vs RSS, glibc fragmentation, history sums).
# Not under ASan: it replaces malloc itself (CONTRIBUTING.md, "Tests").
if(VKM_PLATFORM STREQUAL "linux" AND NOT VALKMEM_ASAN)
  vkm_test_exe(live_preload live_preload.c)
  add_test(NAME live_preload COMMAND live_preload ${VKM_LIB})
  set_tests_properties(live_preload PROPERTIES TIMEOUT 60)
  # The program's descriptors survive the agent's own file table: forks,
  # the server's shutdown at exit, stdout flushed after it.
  vkm_test_exe(live_fds live_fds.c)
  add_test(NAME live_fds COMMAND live_fds ${VKM_LIB})
  set_tests_properties(live_fds PROPERTIES TIMEOUT 60)
  # Stack capture touches no descriptor: after closefrom(3), a pipe on 3
  # and 4 and a file on a low number carry the program's bytes intact
  # through thousands of captures in exact mode (interpose/sample.c).
  vkm_test_exe(live_nofd live_nofd.c)
  add_test(NAME live_nofd COMMAND live_nofd ${VKM_LIB})
  set_tests_properties(live_nofd PROPERTIES TIMEOUT 60 LABELS "preload")
  # Another allocator behind the shim: allocator source "none", the rest holds.
  find_library(VKM_LIVE_JEMALLOC NAMES libjemalloc.so.2 jemalloc)
  find_library(VKM_LIVE_TCMALLOC NAMES libtcmalloc_minimal.so.4 tcmalloc_minimal)
  foreach(other jemalloc tcmalloc)
    string(TOUPPER ${other} up)
    if(VKM_LIVE_${up})
      add_test(NAME live_preload_${other} COMMAND live_preload ${VKM_LIB} ${VKM_LIVE_${up}})
      set_tests_properties(live_preload_${other} PROPERTIES TIMEOUT 60)
    endif()
  endforeach()
endif()
