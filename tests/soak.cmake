# tests/soak.cmake - the soak suite, quick form (tests/soak/README.md has the
# long form): fault and stress programs with exact counts, real servers
# under load. Every case has a TIMEOUT, and soak_check.py / servers.py put
# their own timeout on every process they start.
find_program(VKM_SOAK_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT VKM_SOAK_PYTHON)
  find_program(VKM_SOAK_PYTHON NAMES python3)
endif()
set(VKM_SOAK_DIR ${CMAKE_CURRENT_SOURCE_DIR}/soak)

foreach(prog realloc large rlimit signals threads fork dlopen classes)
  vkm_test_exe(soak_${prog} ${VKM_SOAK_DIR}/soak_${prog}.c)
  # -fno-builtin: the compiler must not fold or drop the allocations whose
  # failure or count the test is about.
  target_compile_options(soak_${prog} PRIVATE -fno-builtin)
endforeach()
add_library(soak_dlib MODULE ${VKM_SOAK_DIR}/soak_dlib.c)
target_compile_options(soak_dlib PRIVATE -O1 -fno-builtin)
target_compile_definitions(soak_dlib PRIVATE _GNU_SOURCE)
set_target_properties(soak_dlib PROPERTIES C_VISIBILITY_PRESET hidden)
add_library(soak_slowdl MODULE ${VKM_SOAK_DIR}/soak_slowdl.c)
target_link_libraries(soak_slowdl PRIVATE ${CMAKE_DL_LIBS})
set_target_properties(soak_slowdl PROPERTIES C_VISIBILITY_PRESET hidden)

if(NOT VKM_SOAK_PYTHON)
  message(STATUS "soak: python3 not found, soak tests skipped")
  return()
endif()

# Under TSan, two runs of soak_threads and soak_dlopen (programs with a
# second thread that exits) have twice ended with 2 small blocks (48 B)
# more or fewer live than planted, while every size-class marker was exact;
# never in the plain build, where the deltas stay exact. The TSan runtime
# and glibc allocate around thread start and exit at times that depend on
# scheduling; the cause was not pinned down. The TSan pass is there for
# races, so it allows that much, and says so when it uses it.
set(VKM_SOAK_SLACK "")
if(VALKMEM_TSAN)
  set(VKM_SOAK_SLACK --slack-blocks 4)
endif()

# vkm_soak(name timeout [soak_check options] -- program args...)
function(vkm_soak name timeout)
  add_test(NAME soak_${name}
           COMMAND ${VKM_SOAK_PYTHON} ${VKM_SOAK_DIR}/soak_check.py --lib ${VKM_LIB} --timeout ${timeout}
                   ${VKM_SOAK_SLACK} ${ARGN})
  math(EXPR whole "${timeout} * 4 + 30")
  set_tests_properties(soak_${name} PROPERTIES TIMEOUT ${whole} LABELS "soak;preload")
endfunction()

foreach(mode sampled exact)
  vkm_soak(realloc_${mode} 120 --mode ${mode} --scale-arg 0 -- $<TARGET_FILE:soak_realloc> 20000)
  vkm_soak(large_${mode} 120 --mode ${mode} --scale-arg 1 -- $<TARGET_FILE:soak_large> big 2)
  vkm_soak(alloc_fail_${mode} 60 --mode ${mode} --scale-arg 1 -- $<TARGET_FILE:soak_large> fail 3)
  vkm_soak(rlimit_${mode} 60 --mode ${mode} --scale-arg 0 -- $<TARGET_FILE:soak_rlimit> 10)
  vkm_soak(threads_${mode} 120 --mode ${mode} --scale-arg 0 -- $<TARGET_FILE:soak_threads> 5 10000)
  # 500 forks, then 1000 (sampled); exact mode waits for the agent more: 200, then 400.
  if(mode STREQUAL "exact")
    vkm_soak(fork_${mode} 120 --mode ${mode} --scale-arg 0 -- $<TARGET_FILE:soak_fork> 200 20)
  else()
    vkm_soak(fork_${mode} 120 --mode ${mode} --scale-arg 0 -- $<TARGET_FILE:soak_fork> 500 20)
  endif()
  vkm_soak(dlopen_${mode} 120 --mode ${mode} --scale-arg 0 -- $<TARGET_FILE:soak_dlopen> 500 $<TARGET_FILE:soak_dlib> 5)
  vkm_soak(classes_${mode} 120 --mode ${mode} --scale-arg 0 -- $<TARGET_FILE:soak_classes> 3)
endforeach()
# valkmem's own mimalloc as the backing allocator: its size classes come
# from mi_good_size.
vkm_soak(classes_own_mimalloc 120 --env VALKMEM_ALLOCATOR=mimalloc --scale-arg 0 -- $<TARGET_FILE:soak_classes> 3)
# Exact mode captures a stack per allocation: fewer rounds, same checks.
vkm_soak(signals_sampled 120 --mode sampled --scale-arg 0 -- $<TARGET_FILE:soak_signals> 1000000)
vkm_soak(signals_exact 120 --mode exact --scale-arg 0 -- $<TARGET_FILE:soak_signals> 100000)
# Forks while the agent works: JIT-like call sites (in no module) lead the
# live ranking and a report is written every tick, so the agent keeps
# walking the loader's module list (soak_fork.c, "jit"), and soak_slowdl
# makes each walk hold the loader's lock for 2 ms. Before the fork
# handshake (agent.c, "fork") a fork that copied the agent mid-walk left a
# child hanging on that lock, and one that copied it mid-update of its site
# table left a child crashing in vkm_sites_init.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  vkm_soak(fork_slowdl 120 --mode exact --lib $<TARGET_FILE:soak_slowdl>:${VKM_LIB}
           --env VALKMEM_CHECKPOINT_MS=1 --env VALKMEM_TICK_MS=10 --scale-arg 0 -- $<TARGET_FILE:soak_fork> 300 20 jit)
  set_property(TEST soak_fork_slowdl APPEND PROPERTY LABELS nosan)
endif()
# Forked children write their own reports (%p): each shows its own work only.
vkm_soak(fork_child_reports 120 --child-reports --no-delta -- $<TARGET_FILE:soak_fork> 50 20)
# Not under sanitizers: TSan cannot start threads in the child of a
# multi-threaded fork (the child's agent is one), and its shadow memory does
# not fit under the soak's RLIMIT_AS.
set_property(TEST soak_fork_sampled soak_fork_exact soak_fork_child_reports soak_rlimit_sampled soak_rlimit_exact
             APPEND PROPERTY LABELS nosan)

find_program(VKM_SOAK_REDIS redis-server)
find_program(VKM_SOAK_REDIS_BENCH redis-benchmark)
if(VKM_SOAK_REDIS AND VKM_SOAK_REDIS_BENCH)
  add_test(NAME soak_redis COMMAND ${VKM_SOAK_PYTHON} ${VKM_SOAK_DIR}/servers.py redis --lib ${VKM_LIB}
                                   --rounds 1 --requests 20000)
  set_tests_properties(soak_redis PROPERTIES TIMEOUT 300 LABELS "soak;preload;server")
else()
  message(STATUS "soak: redis-server/redis-benchmark not found, soak_redis skipped")
endif()
find_program(VKM_SOAK_NGINX nginx PATHS /usr/sbin)
find_program(VKM_SOAK_WRK wrk)
if(VKM_SOAK_NGINX AND VKM_SOAK_WRK)
  add_test(NAME soak_nginx COMMAND ${VKM_SOAK_PYTHON} ${VKM_SOAK_DIR}/servers.py nginx --lib ${VKM_LIB}
                                   --rounds 1 --duration 3)
  set_tests_properties(soak_nginx PROPERTIES TIMEOUT 300 LABELS "soak;preload;server")
else()
  message(STATUS "soak: nginx/wrk not found, soak_nginx skipped")
endif()

# The same exactness under allocators that are not glibc's: the shim must get
# usable sizes right from whatever malloc comes next (README.md, "Performance").
foreach(alloc jemalloc tcmalloc_minimal mimalloc)
  find_library(VKM_SOAK_LIB_${alloc} NAMES lib${alloc}.so.2 lib${alloc}.so.4 ${alloc})
  if(VKM_SOAK_LIB_${alloc})
    set(pre "${VKM_LIB}:${VKM_SOAK_LIB_${alloc}}")
    vkm_soak(realloc_${alloc} 120 --lib ${pre} --scale-arg 0 -- $<TARGET_FILE:soak_realloc> 20000)
    vkm_soak(large_${alloc} 120 --lib ${pre} --scale-arg 1 -- $<TARGET_FILE:soak_large> big 1)
    vkm_soak(threads_${alloc} 120 --lib ${pre} --scale-arg 0 -- $<TARGET_FILE:soak_threads> 5 2000)
    vkm_soak(signals_${alloc} 120 --lib ${pre} --scale-arg 0 -- $<TARGET_FILE:soak_signals> 200000)
    vkm_soak(classes_${alloc} 120 --lib ${pre} --scale-arg 0 -- $<TARGET_FILE:soak_classes> 3)
    # A sanitizer must own malloc to see heap reuse: with another allocator
    # behind the shim, TSan reports every reused block as a race.
    set_property(TEST soak_realloc_${alloc} soak_large_${alloc} soak_threads_${alloc} soak_signals_${alloc}
                 soak_classes_${alloc} APPEND PROPERTY LABELS nosan)
  else()
    message(STATUS "soak: lib${alloc} not found, soak tests under it skipped")
  endif()
endforeach()
