# One test executable per module, registered with a timeout (as nng does).
# tern_add_unit_test(NAME SOURCE [TIMEOUT seconds])
function(tern_add_unit_test name src)
  cmake_parse_arguments(T "" "TIMEOUT" "" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 60)
  endif()
  add_executable(${name} ${src})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/libtern/src
                                             ${PROJECT_SOURCE_DIR}/tests/unit)
  target_link_libraries(${name} PRIVATE tern PkgConfig::CMOCKA)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS unit
    ENVIRONMENT "TERN_TESTDATA=${TERN_TESTDATA};TERN_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endfunction()

# tern_add_script_test(NAME SCRIPT [TIMEOUT seconds]): a shell test against the built binaries.
function(tern_add_script_test name script)
  cmake_parse_arguments(T "" "TIMEOUT" "" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  add_test(NAME ${name} COMMAND bash ${script})
  set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS integration
    ENVIRONMENT "TERN=$<TARGET_FILE:tern-cli>;TERN_BIN_DIR=${PROJECT_BINARY_DIR};TERN_SOURCE_DIR=${PROJECT_SOURCE_DIR};TERN_TESTDATA=${TERN_TESTDATA}")
endfunction()
