# browser.cmake - the dashboard (viewer/) in headless Chromium, driven by
# playwright-core (tests/browser/run.js): the real valkmem-demo runs under
# LD_PRELOAD=libvalkmem.so and the test reads the dashboard's URL from
# VALKMEM_URL_FILE. Needs node, `npm ci` in tests/browser and /usr/bin/chromium;
# exits 77 (skipped) only when one of those is missing.
#
# Screenshots of every profile go to tests/browser/artifacts/ (gitignored).
find_program(VKM_NODE node)

function(vkm_browser_test)
  if(VALKMEM_ASAN)
    return()            # ASan replaces malloc itself: no preload tests (CONTRIBUTING.md, "Tests")
  endif()
  if(NOT TARGET valkmem-demo)
    message(STATUS "browser test: no valkmem-demo target, not added")
    return()
  endif()
  set(cli "")
  if(TARGET valkmem-cli)
    set(cli --cli $<TARGET_FILE:valkmem-cli>)   # also test `valkmem view report.json`
  endif()
  if(VKM_NODE)
    add_test(NAME browser
             COMMAND ${VKM_NODE} ${CMAKE_SOURCE_DIR}/tests/browser/run.js
                     --demo $<TARGET_FILE:valkmem-demo> --lib $<TARGET_FILE:valkmem> ${cli}
                     --artifacts ${CMAKE_SOURCE_DIR}/tests/browser/artifacts
                     -- --mode all --leak)
  else()
    add_test(NAME browser COMMAND sh -c "echo 'SKIP: node not found'; exit 77")
  endif()
  # Run alone: it measures frame times and event handling (figures, with
  # generous bounds), and a busy machine only adds noise.
  set_tests_properties(browser PROPERTIES TIMEOUT 360 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE LABELS browser)
endfunction()

# valkmem-demo is defined by another fragment (runtime.cmake, included after
# this one): decide at the end of the directory.
if(CMAKE_VERSION VERSION_GREATER_EQUAL 3.19)
  cmake_language(DEFER CALL vkm_browser_test)
else()
  vkm_browser_test()
endif()
