# Fixtures the unit tests share (scratch directories, test-vector paths),
# built once. Outside tests/unit's test_*.c glob, so never a test itself.
function(tern_add_testutil)
  if(TARGET tern_testutil)
    return()
  endif()
  set(dir ${PROJECT_SOURCE_DIR}/tests/unit/support)
  add_library(tern_testutil STATIC ${dir}/testutil.c)
  target_include_directories(tern_testutil PUBLIC ${dir})
endfunction()

# One test executable per module, registered with a timeout (as nng does).
# tern_add_unit_test(NAME SOURCE [TIMEOUT seconds])
function(tern_add_unit_test name src)
  cmake_parse_arguments(T "" "TIMEOUT" "" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 60)
  endif()
  tern_add_testutil()
  add_executable(${name} ${src})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/libtern/src
                                             ${PROJECT_SOURCE_DIR}/tests/unit)
  target_link_libraries(${name} PRIVATE tern_testutil tern PkgConfig::CMOCKA)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS unit
    ENVIRONMENT "TERN_TESTDATA=${TERN_TESTDATA};TERN_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endfunction()

# tern_add_script_test(NAME SCRIPT [TIMEOUT seconds]): a shell test against the built binaries.
# A script that cannot run here exits 77 after saying why: ctest reports it as
# skipped, never as passed.
function(tern_add_script_test name script)
  cmake_parse_arguments(T "" "TIMEOUT" "" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  add_test(NAME ${name} COMMAND bash ${script})
  set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS integration
    SKIP_RETURN_CODE 77
    ENVIRONMENT "TERN=$<TARGET_FILE:tern-cli>;TERN_BIN_DIR=${PROJECT_BINARY_DIR};TERN_SOURCE_DIR=${PROJECT_SOURCE_DIR};TERN_TESTDATA=${TERN_TESTDATA}")
endfunction()
