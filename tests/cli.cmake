# tests/cli.cmake - the `valkmem` launcher: units (no shim), end-to-end
# gate/run/diff/export/view runs under the shim, and libFuzzer targets.

set(VKM_CLI_DIR ${CMAKE_SOURCE_DIR}/agent/cli)
set(VKM_CLI_UNIT_SRC
    ${VKM_CLI_DIR}/alloc.c ${VKM_CLI_DIR}/util.c ${VKM_CLI_DIR}/size.c ${VKM_CLI_DIR}/launch.c
    ${VKM_CLI_DIR}/report.c ${VKM_CLI_DIR}/suppress.c ${VKM_CLI_DIR}/config.c
    ${VKM_CLI_DIR}/gate_eval.c ${VKM_CLI_DIR}/gate_out.c ${VKM_CLI_DIR}/gate_text.c ${VKM_CLI_DIR}/gate_ci.c ${VKM_CLI_DIR}/run.c
    ${CMAKE_SOURCE_DIR}/agent/sys_${VKM_PLATFORM}.c)

# --- units: parsers, matching, verdicts, escaping -------------------------
vkm_test_exe(cli_units ${CMAKE_SOURCE_DIR}/tests/cli_units.c ${CMAKE_SOURCE_DIR}/tests/cli_stubs.c ${VKM_CLI_UNIT_SRC})
add_test(NAME cli_units COMMAND cli_units)
set_tests_properties(cli_units PROPERTIES TIMEOUT 60)

# --- planted programs for the gate ----------------------------------------
foreach(prog gate_clean gate_leak gate_allocs gate_grow gate_crash gate_exit gate_sites)
  vkm_test_exe(${prog} ${CMAKE_SOURCE_DIR}/tests/${prog}.c)
  # Source paths in stacks: keep debug info.
  target_compile_options(${prog} PRIVATE -g)
endforeach()

# --- end to end under the shim --------------------------------------------
find_package(Python3 COMPONENTS Interpreter)
if(TARGET valkmem-cli AND Python3_FOUND AND EXISTS ${CMAKE_SOURCE_DIR}/tests/cli_e2e.py)
  add_test(NAME cli_e2e
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tests/cli_e2e.py
                   --cli $<TARGET_FILE:valkmem-cli> --lib $<TARGET_FILE:valkmem>
                   --bindir $<TARGET_FILE_DIR:gate_clean> --srcdir ${CMAKE_SOURCE_DIR}
                   --workdir ${CMAKE_CURRENT_BINARY_DIR}/cli_e2e)
  set_tests_properties(cli_e2e PROPERTIES TIMEOUT 300)
endif()

# --- libFuzzer targets (clang -fsanitize=fuzzer,address) -------------------
# Built with clang outside the main (gcc) toolchain by a custom command; a
# machine without clang or libFuzzer skips them (exit 77).
find_program(VKM_CLANG NAMES clang clang-16 clang-15 clang-14)
# clang without its libFuzzer runtime (libclang-rt-*-dev) counts as absent:
# probe once at configure time rather than break the build.
if(VKM_CLANG AND NOT DEFINED VKM_CLANG_FUZZER_OK)
  set(probe ${CMAKE_CURRENT_BINARY_DIR}/fuzz_probe.c)
  file(WRITE ${probe} "#include <stddef.h>\nint LLVMFuzzerTestOneInput(const unsigned char *d, size_t n) { (void)d; (void)n; return 0; }\n")
  execute_process(COMMAND ${VKM_CLANG} -fsanitize=fuzzer,address,undefined -o ${CMAKE_CURRENT_BINARY_DIR}/fuzz_probe ${probe}
                  RESULT_VARIABLE probe_rc OUTPUT_QUIET ERROR_QUIET)
  if(probe_rc EQUAL 0)
    set(VKM_CLANG_FUZZER_OK ON CACHE INTERNAL "clang can build libFuzzer targets")
  else()
    set(VKM_CLANG_FUZZER_OK OFF CACHE INTERNAL "clang can build libFuzzer targets")
    message(STATUS "clang cannot link -fsanitize=fuzzer (install libclang-rt-dev): CLI fuzz tests skipped")
  endif()
endif()
if(NOT VKM_CLANG_FUZZER_OK)
  set(VKM_CLANG "")
endif()
set(VKM_FUZZ_SEEDS_size "24 MB" "512KiB" "1.5GB" "0" "100" "10,64KiB")
set(VKM_FUZZ_SEEDS_config "{\"max_leak\": \"0\", \"max_peak\": \"24 MB\", \"max_allocs\": 100, \"suppressions\": [\"leak:foo\"], \"tolerance\": \"10,1KiB\", \"sampled\": true}")
set(VKM_FUZZ_SEEDS_suppress "# c\nleak:foo\nleak:^_dl_*object$\nleak:a*b*c\n")
set(VKM_FUZZ_SEEDS_report "{\"schema\":\"valkmem.report/1\",\"totals\":{\"alloc_count\":5,\"alloc_bytes\":100},\"live\":{\"bytes\":10,\"count\":1},\"peak\":{\"live_bytes\":50,\"rss_bytes\":4096},\"sites\":[{\"id\":\"a\",\"frames\":[{\"function\":\"leaky\",\"module\":\"/x/app\",\"file\":\"/w/a.c\",\"line\":3},{\"function\":\"main\"}],\"alloc_bytes\":100,\"alloc_count\":5,\"live_bytes\":10,\"live_count\":1}]}")
foreach(target size config suppress report)
  set(fz ${CMAKE_CURRENT_BINARY_DIR}/fuzz_${target})
  if(VKM_CLANG)
    add_custom_command(
      OUTPUT ${fz}
      COMMAND ${VKM_CLANG} -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
              -D_GNU_SOURCE -I${CMAKE_SOURCE_DIR}/agent -I${CMAKE_SOURCE_DIR}/interpose ${CJSON_CFLAGS}
              -o ${fz} ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_${target}.c ${CMAKE_SOURCE_DIR}/tests/cli_stubs.c ${VKM_CLI_UNIT_SRC} ${CJSON_LDFLAGS}
      DEPENDS ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_${target}.c ${VKM_CLI_UNIT_SRC} ${VKM_CLI_DIR}/cli.h
      COMMENT "libFuzzer: fuzz_${target}")
    add_custom_target(fuzz_${target}_build ALL DEPENDS ${fz})
    # Seeds: a few valid inputs, so the fuzzer starts from the grammar.
    set(corpus ${CMAKE_CURRENT_BINARY_DIR}/fuzz_${target}_corpus)
    file(MAKE_DIRECTORY ${corpus})
    set(i 0)
    foreach(seed ${VKM_FUZZ_SEEDS_${target}})
      file(WRITE ${corpus}/seed_${i} "${seed}")
      math(EXPR i "${i} + 1")
    endforeach()
    add_test(NAME cli_fuzz_${target}
             COMMAND ${fz} -max_total_time=10 -rss_limit_mb=1024 -timeout=5
                     -artifact_prefix=${CMAKE_CURRENT_BINARY_DIR}/fuzz_${target}_ ${corpus})
  else()
    add_test(NAME cli_fuzz_${target} COMMAND sh -c "echo 'clang not found: fuzz_${target} skipped'; exit 77")
    set_tests_properties(cli_fuzz_${target} PROPERTIES SKIP_RETURN_CODE 77)
  endif()
  set_tests_properties(cli_fuzz_${target} PROPERTIES TIMEOUT 120)
endforeach()
