# minik_add_test(NAME SOURCES... LIBS ... LABELS ... TIMEOUT n): one Catch2 test
# binary registered with ctest under a label (unit, integration, e2e) and a timeout.
function(minik_add_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} minik_catch_main)
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS "${T_LABELS}"
    ENVIRONMENT "MINIK_BIN=$<TARGET_FILE:minik>;MINIK_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endfunction()
