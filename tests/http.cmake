# http.cmake - tests for the HTTP/SSE server (agent/http.c), its request
# parser (agent/http_parse.c) and the Prometheus exposition (agent/metrics.c).
#
#   http_unit     parser, query/cookie decoding, Host and token checks;
#                 metrics lines from known snapshots
#   http_server   the poll loop against stub documents (tests/http_driver.c),
#                 driven by tests/http_test.py: every endpoint, SSE, hostile
#                 clients, token, listen forms, fork
#   http_preload  the same client against a real program under LD_PRELOAD
#   http_fuzz     libFuzzer on the parser for 20 s (skipped without clang)
find_package(Python3 COMPONENTS Interpreter QUIET)
find_program(VKM_PROMTOOL promtool)

vkm_test_exe(http_unit ${CMAKE_CURRENT_SOURCE_DIR}/http_unit.c ${CMAKE_SOURCE_DIR}/agent/http_parse.c
             ${CMAKE_SOURCE_DIR}/agent/metrics.c)
add_test(NAME http_unit COMMAND http_unit)
set_tests_properties(http_unit PROPERTIES TIMEOUT 30)

vkm_test_exe(http_driver ${CMAKE_CURRENT_SOURCE_DIR}/http_driver.c ${CMAKE_SOURCE_DIR}/agent/http.c ${CMAKE_SOURCE_DIR}/agent/http_listen.c
             ${CMAKE_SOURCE_DIR}/agent/http_parse.c ${CMAKE_SOURCE_DIR}/agent/metrics.c ${CMAKE_SOURCE_DIR}/agent/tree.c
             ${CMAKE_SOURCE_DIR}/agent/sys_${VKM_PLATFORM}.c)

if(Python3_FOUND)
  add_test(NAME http_server
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/http_test.py --mode driver
                   --promtool "${VKM_PROMTOOL}" -- $<TARGET_FILE:http_driver>)
  # RUN_SERIAL: the attack test counts ticks on one good stream while 200
  # clients misbehave; a CPU-starved runner (fuzzers beside it) can delay
  # the attackers enough to crowd the stream out of its slot.
  set_tests_properties(http_server PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77 RUN_SERIAL ON)

  # ASan replaces malloc itself: no preload test under it (CONTRIBUTING.md, "Tests").
  if(NOT VALKMEM_ASAN)
    vkm_test_exe(http_app ${CMAKE_CURRENT_SOURCE_DIR}/http_app.c)
    add_dependencies(http_app valkmem)
    add_test(NAME http_preload
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/http_test.py --mode preload
                     --promtool "${VKM_PROMTOOL}" --preload ${VKM_LIB} -- $<TARGET_FILE:http_app>)
    set_tests_properties(http_preload PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77 RUN_SERIAL ON)
  endif()
endif()

# The fuzz target needs clang's libFuzzer runtime, whatever compiler builds
# the rest, so it is built by a custom command rather than add_executable.
# clang without its libFuzzer runtime (libclang-rt-*-dev) counts as absent,
# so a machine lacking it still builds everything and skips this test.
find_program(VKM_HTTP_CLANG NAMES clang clang-16 clang-15 clang-14)
if(VKM_HTTP_CLANG AND NOT DEFINED VKM_HTTP_FUZZ_OK)
  set(probe ${CMAKE_CURRENT_BINARY_DIR}/http_fuzz_probe.c)
  file(WRITE ${probe} "#include <stddef.h>\nint LLVMFuzzerTestOneInput(const unsigned char *d, size_t n) { (void)d; (void)n; return 0; }\n")
  execute_process(COMMAND ${VKM_HTTP_CLANG} -fsanitize=fuzzer,address,undefined -o ${CMAKE_CURRENT_BINARY_DIR}/http_fuzz_probe
                          ${probe} RESULT_VARIABLE probe_rc OUTPUT_QUIET ERROR_QUIET)
  if(probe_rc EQUAL 0)
    set(VKM_HTTP_FUZZ_OK ON CACHE INTERNAL "clang can build the HTTP libFuzzer target")
  else()
    set(VKM_HTTP_FUZZ_OK OFF CACHE INTERNAL "clang can build the HTTP libFuzzer target")
    message(STATUS "clang cannot link -fsanitize=fuzzer (install libclang-rt-dev): http_fuzz skipped")
  endif()
endif()
set(VKM_FUZZ_HTTP "")
if(VKM_HTTP_CLANG AND VKM_HTTP_FUZZ_OK)
  set(VKM_FUZZ_HTTP ${CMAKE_CURRENT_BINARY_DIR}/fuzz_http)
  add_custom_command(
    OUTPUT ${VKM_FUZZ_HTTP}
    COMMAND ${VKM_HTTP_CLANG} -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE
            -I${CMAKE_SOURCE_DIR}/agent ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_http.c
            ${CMAKE_SOURCE_DIR}/agent/http_parse.c -o ${VKM_FUZZ_HTTP}
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_http.c ${CMAKE_SOURCE_DIR}/agent/http_parse.c
            ${CMAKE_SOURCE_DIR}/agent/http_parse.h
    COMMENT "Building the libFuzzer target fuzz_http")
  add_custom_target(fuzz_http ALL DEPENDS ${VKM_FUZZ_HTTP})
endif()
add_test(NAME http_fuzz
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/http_fuzz.sh "${VKM_FUZZ_HTTP}"
                 ${CMAKE_CURRENT_BINARY_DIR}/fuzz_http_corpus)
set_tests_properties(http_fuzz PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77)
