# Installs the colora build tree into SCRATCH_DIR/prefix, then configures,
# builds and runs the consumer project against it.
file(REMOVE_RECURSE ${SCRATCH_DIR})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${COLORA_BINARY_DIR} --prefix ${SCRATCH_DIR}/prefix
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "consumer test: installing colora failed (${rc})")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${SCRATCH_DIR}/build
                        -DCMAKE_PREFIX_PATH=${SCRATCH_DIR}/prefix -DCMAKE_BUILD_TYPE=Release
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "consumer test: find_package(colora) configuration failed (${rc})")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${SCRATCH_DIR}/build RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "consumer test: build failed (${rc})")
endif()
execute_process(COMMAND ${SCRATCH_DIR}/build/consumer RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "consumer test: the consumer program failed (${rc})")
endif()
