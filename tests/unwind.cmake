# unwind.cmake - the recorder's fast stack walker (interpose/unwind_linux.c),
# compiled into the test with its frames, compared frame for frame with
# libgcc's _Unwind_Backtrace. x86-64 Linux only (elsewhere the walker
# always defers to libgcc).
if(VKM_PLATFORM STREQUAL "linux" AND CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|amd64")
  vkm_test_exe(unwind_unit unwind_unit.c unwind_unit_nofp.c ${CMAKE_SOURCE_DIR}/interpose/unwind_linux.c
               ${CMAKE_SOURCE_DIR}/interpose/${VKM_PLATFORM}.c)
  target_link_libraries(unwind_unit PRIVATE gcc_s)
  # Frames without frame pointers, optimised: the options come after the
  # target's (-O1 -fno-omit-frame-pointer), so they win.
  set_source_files_properties(${CMAKE_CURRENT_SOURCE_DIR}/unwind_unit_nofp.c PROPERTIES COMPILE_OPTIONS
                              "-O2;-fomit-frame-pointer")
  add_test(NAME unwind_unit COMMAND unwind_unit)
  set_tests_properties(unwind_unit PROPERTIES TIMEOUT 120)
endif()
