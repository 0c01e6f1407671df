# ctest program_install: `cmake --install <build> --component program` into a
# scratch prefix; the installed colora runs, and nn-digits finds the installed
# data next to it (<prefix>/share/colora/digits.csv), or in COLORA_DATA_DIR
# when that is set. Variables: BUILD_DIR, SCRATCH.
include("${CMAKE_CURRENT_LIST_DIR}/install_component.cmake")
colora_install_component(program)
set(exe "${SCRATCH}/bin/colora")
foreach(f "${exe}" "${SCRATCH}/share/colora/digits.csv" "${SCRATCH}/share/colora/README.md")
  if(NOT EXISTS "${f}")
    message(FATAL_ERROR "the install did not write ${f}")
  endif()
endforeach()

function(run_checked expect_regex)
  execute_process(COMMAND ${ARGN} WORKING_DIRECTORY "${SCRATCH}"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0 OR NOT "${out}${err}" MATCHES "${expect_regex}")
    message(FATAL_ERROR "'${ARGN}' exited ${rc} without printing '${expect_regex}':\n${out}\n${err}")
  endif()
endfunction()

run_checked("colora [0-9]+\\.[0-9]+\\.[0-9]+" ${CMAKE_COMMAND} -E env --unset=COLORA_DATA_DIR "${exe}" --version)
run_checked("usage: colora" "${exe}" -h)
run_checked("default: ${SCRATCH}/share/colora/digits.csv"
            ${CMAKE_COMMAND} -E env --unset=COLORA_DATA_DIR "${exe}" nn-digits --help)
run_checked("default: /elsewhere/digits.csv" ${CMAKE_COMMAND} -E env COLORA_DATA_DIR=/elsewhere "${exe}" nn-digits --help)
# A tiny run on the installed data.
run_checked("wrote" ${CMAKE_COMMAND} -E env --unset=COLORA_DATA_DIR "${exe}" nn-digits --users 2 --samples 3 --angle-spread 0
            --n 4 --iters 2 --pretrain-iters 2 --trials 1 --test-per-user 5 --hidden 8 --rank 2 --out "${SCRATCH}/run")
