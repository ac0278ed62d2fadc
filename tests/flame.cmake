# flame.cmake - the flame graph, heap-by-site and pinned-baseline views of
# the dashboard (viewer/flame.js, viewer/pin.js) against flame_prog, a
# program with planted sites of known sizes (one growing, others flat), in
# headless Chromium (tests/browser/flame.js; see tests/browser/README.md).
# Screenshots of each view go to <build>/browser-artifacts/flame/.
vkm_test_exe(flame_prog ${CMAKE_CURRENT_SOURCE_DIR}/flame_prog.c)

if(NOT VALKMEM_ASAN)
  find_program(VKM_NODE_FLAME node)
  if(VKM_NODE_FLAME)
    add_test(NAME browser_flame
             COMMAND ${VKM_NODE_FLAME} ${CMAKE_SOURCE_DIR}/tests/browser/flame.js
                     --prog $<TARGET_FILE:flame_prog> --lib ${VKM_LIB}
                     --artifacts ${CMAKE_BINARY_DIR}/browser-artifacts/flame)
  else()
    add_test(NAME browser_flame COMMAND sh -c "echo 'SKIP: node not found'; exit 77")
  endif()
  # Alone: it measures event handling, frame rate and JS heap.
  set_tests_properties(browser_flame PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE LABELS browser)
endif()
