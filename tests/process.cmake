# process.cmake - what the host process sees of the shim (tests/proc_test.py):
# no thread, no signal handler, no descriptor, no output, no library state of
# its own in the program; reports for every process of a tree however it
# ends (SIGKILL included) and a gate that checks each of them.
# Driver: proc_test.py LIB CLI BINDIR CASE; helpers tests/proc_*.c.
find_package(Python3 COMPONENTS Interpreter QUIET)
foreach(prog proc_prog proc_cjson proc_clean proc_leaky proc_seq proc_jail proc_attachee proc_clone proc_peak)
  vkm_test_exe(${prog} ${CMAKE_CURRENT_SOURCE_DIR}/${prog}.c)
endforeach()
if(Python3_FOUND AND TARGET valkmem-cli)
  set(VKM_PROC_CASES single_thread pthread_exit_main setxid_caps signals_default cjson_host
      stderr_clean fd_reuse sigkill_report gate_tree chromium sandbox_adopt attach tree_dashboard
      report_at_exit heap_untouched agent_gone alloc_errno malloc_debug raw_clone peak agent_replaced sweep pid1_init env_no_follow rlimit_as url_first other_user)
  foreach(case ${VKM_PROC_CASES})
    add_test(NAME proc_${case}
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/proc_test.py
                     $<TARGET_FILE:valkmem> $<TARGET_FILE:valkmem-cli> $<TARGET_FILE_DIR:proc_prog> ${case})
    set_tests_properties(proc_${case} PROPERTIES TIMEOUT 300)
  endforeach()
  # Under sanitizers only cases that run nothing but our own programs: an
  # uninstrumented program (python3, bash, sh, /bin/true) cannot load a TSan
  # build of the library, and the TSan runtime may run a thread of its own
  # (single_thread, setxid_caps and pthread_exit_main would then fail without
  # the shim too).
  set_tests_properties(proc_cjson_host proc_sigkill_report proc_peak PROPERTIES LABELS "preload")
  set_tests_properties(proc_signals_default proc_stderr_clean proc_fd_reuse proc_report_at_exit proc_agent_replaced proc_sweep PROPERTIES LABELS "realprog")
  set_tests_properties(proc_chromium PROPERTIES LABELS "realprog;nosan" TIMEOUT 180)
  # Another allocator behind ours.
  set_tests_properties(proc_alloc_errno proc_malloc_debug PROPERTIES LABELS "nosan")
endif()
