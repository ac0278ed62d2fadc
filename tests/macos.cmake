# macos.cmake - the macOS build, checked on Linux without a Mac:
# tests/macos_check.py cross-compiles, with Zig 0.11 from npm (installed
# into the build directory when missing), every source the APPLE branch of
# CMakeLists.txt selects (vkm_platform_sources), for arm64 and x86_64,
# links libvalkmem.dylib and the valkmem executable, and reads both as
# Mach-O (architecture, the __interpose table, undefined symbols). Label
# "macos", not "preload": the sanitizer passes do not repeat it. Skipped
# (77) only when npm is missing. About a minute on two cores.
find_package(Python3 COMPONENTS Interpreter)
find_file(VKM_CJSON_H cJSON.h HINTS ${CJSON_INCLUDE_DIRS} PATH_SUFFIXES cjson)
if(NOT APPLE AND Python3_FOUND AND VKM_CJSON_H)
  vkm_platform_sources(darwin VKM_MAC_LIB VKM_MAC_AGENT)
  file(GLOB VKM_MAC_CLI CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/agent/cli/*.c)
  set(VKM_MAC_LIST "")
  foreach(f ${VKM_MAC_LIB})
    string(APPEND VKM_MAC_LIST "lib ${f}\n")
  endforeach()
  foreach(f ${VKM_MAC_AGENT} ${VKM_MAC_CLI} ${CMAKE_BINARY_DIR}/vkm_assets.c)
    string(APPEND VKM_MAC_LIST "exe ${f}\n")
  endforeach()
  file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/macos_sources.txt "${VKM_MAC_LIST}")
  # The agent's third-party headers, as Homebrew lays them out (cjson/ and
  # uthash.h in one include directory), without the rest of /usr/include.
  set(VKM_MAC_INC ${CMAKE_CURRENT_BINARY_DIR}/macos_inc)
  configure_file(${VKM_CJSON_H} ${VKM_MAC_INC}/cjson/cJSON.h COPYONLY)
  configure_file(${UTHASH_INCLUDE}/uthash.h ${VKM_MAC_INC}/uthash.h COPYONLY)
  add_test(NAME macos_cross
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tests/macos_check.py
                   --srcdir ${CMAKE_SOURCE_DIR} --sources ${CMAKE_CURRENT_BINARY_DIR}/macos_sources.txt
                   --workdir ${CMAKE_CURRENT_BINARY_DIR}/macos --zig-prefix ${CMAKE_BINARY_DIR}/zig
                   --inc ${VKM_MAC_INC})
  set_tests_properties(macos_cross PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77 LABELS "macos")
endif()
