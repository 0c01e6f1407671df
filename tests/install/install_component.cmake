# Shared by the install checks: install one component of BUILD_DIR into the
# scratch prefix SCRATCH (emptied first), or stop with cmake's own output.
function(colora_install_component component)
  file(REMOVE_RECURSE "${SCRATCH}")
  execute_process(COMMAND ${CMAKE_COMMAND} --install "${BUILD_DIR}" --component ${component} --prefix "${SCRATCH}"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "cmake --install --component ${component} failed (${rc}):\n${out}\n${err}")
  endif()
endfunction()
