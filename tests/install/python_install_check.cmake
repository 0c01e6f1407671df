# ctest python_install: `cmake --install <build> --component python` into a
# scratch prefix, then `import colora` from there (not from the build tree) and
# one small fit. Variables: BUILD_DIR, SCRATCH, PYTHON, INSTALL_DIR (the
# package directory relative to the prefix, COLORA_PYTHON_INSTALL_DIR).
include("${CMAKE_CURRENT_LIST_DIR}/install_component.cmake")
colora_install_component(python)
set(pkg "${SCRATCH}/${INSTALL_DIR}")
if(NOT EXISTS "${pkg}/colora/__init__.py")
  message(FATAL_ERROR "the install put no colora/__init__.py under ${pkg}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -E env --unset=PYTHONPATH "PYTHONPATH=${pkg}"
                ${PYTHON} -c "import colora, os; assert os.path.dirname(colora.__file__) == os.path.join('${pkg}', 'colora'), colora.__file__; pb = colora.generate(tasks=10, p=8, q=6, rank=2, samples=20); m = colora.CoLoRA(rank=2).fit(pb.Xs, pb.Ys); print('installed colora', colora.__version__, m.status_)"
                WORKING_DIRECTORY "${SCRATCH}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "import colora from the installed package failed (${rc}):\n${out}\n${err}")
endif()
message(STATUS "${out}")
