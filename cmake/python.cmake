# slidesparse Python package (python/slidesparse): PyTorch custom ops over a small C ABI, the nn
# module, Hugging Face patching and checkpoint loading. Included at the end of CMakeLists.txt.
#
# The library never sees torch headers: with CUDA on, libslidesparse_c.so (src/capi, the C ABI of
# include/slidesparse/slidesparse_c.h over slidesparse_api) is built into
# ${CMAKE_BINARY_DIR}/python/slidesparse/ together with a copy of the package's .py files, so
#   PYTHONPATH=<build>/python python3 -c "import slidesparse"
# finds both (python/README.md). Tests: tests/python/test_cpu.py (torch-free parts, label cpu, runs
# on CI) and tests/python/test_gpu.py (ops, module, patched model; label gpu; exits 77 = skipped
# without torch, CUDA or the library).

find_package(Python3 COMPONENTS Interpreter)
set(SLIDESPARSE_PY_OUT "${CMAKE_BINARY_DIR}/python")

file(GLOB SLIDESPARSE_PY_SRC CONFIGURE_DEPENDS "${CMAKE_SOURCE_DIR}/python/slidesparse/*.py")
add_custom_target(slidesparse_python ALL
  COMMAND ${CMAKE_COMMAND} -E make_directory "${SLIDESPARSE_PY_OUT}/slidesparse"
  COMMAND ${CMAKE_COMMAND} -E copy_if_different ${SLIDESPARSE_PY_SRC} "${SLIDESPARSE_PY_OUT}/slidesparse/"
  DEPENDS ${SLIDESPARSE_PY_SRC}
  COMMENT "slidesparse: Python package -> ${SLIDESPARSE_PY_OUT}/slidesparse")

if(SLIDESPARSE_ENABLE_CUDA)
  # Static libraries linked into a shared one must be position independent.
  set_target_properties(slidesparse_core_hofmt PROPERTIES POSITION_INDEPENDENT_CODE ON)
  add_library(slidesparse_c SHARED src/capi/slidesparse_c.cpp)
  target_include_directories(slidesparse_c PUBLIC include PRIVATE src)
  target_link_libraries(slidesparse_c PRIVATE slidesparse_api fmt::fmt-header-only slidesparse_warnings)
  if(SLIDESPARSE_HAVE_CUSPARSELT)
    target_include_directories(slidesparse_c PRIVATE "${SLIDESPARSE_CUSPARSELT_INCLUDE_DIR}")
  endif()
  # Export the ss_* functions only: fmt, the backends and the static cudart stay private, so the
  # library cannot clash with what torch (or anything else in the process) has loaded.
  set(_ss_map "${CMAKE_BINARY_DIR}/slidesparse_c.map")
  file(WRITE "${_ss_map}" "{ global: ss_*; local: *; };\n")
  target_link_options(slidesparse_c PRIVATE "LINKER:--version-script=${_ss_map}" "LINKER:--no-undefined")
  set_target_properties(slidesparse_c PROPERTIES
    LIBRARY_OUTPUT_DIRECTORY "${SLIDESPARSE_PY_OUT}/slidesparse"
    CXX_VISIBILITY_PRESET hidden)
  slidesparse_gpu_runpath(slidesparse_c)
  add_dependencies(slidesparse_c slidesparse_python)
endif()

if(SLIDESPARSE_BUILD_TESTS AND Python3_Interpreter_FOUND)
  add_test(NAME python_cpu COMMAND ${Python3_EXECUTABLE} "${CMAKE_SOURCE_DIR}/tests/python/test_cpu.py")
  set_tests_properties(python_cpu PROPERTIES LABELS "cpu"
    ENVIRONMENT "PYTHONPATH=${SLIDESPARSE_PY_OUT};SLIDESPARSE_CLI=$<TARGET_FILE:slidesparse>")
  # slidesparse.sparse_bitnet: its CPU checks need torch (77 = skipped without it), its CUDA checks a GPU.
  add_test(NAME python_sparse_bitnet COMMAND ${Python3_EXECUTABLE} "${CMAKE_SOURCE_DIR}/tests/python/test_sparse_bitnet.py")
  set_tests_properties(python_sparse_bitnet PROPERTIES LABELS "cpu" SKIP_RETURN_CODE 77
    ENVIRONMENT "PYTHONPATH=${SLIDESPARSE_PY_OUT}")
  add_test(NAME python_gpu COMMAND ${Python3_EXECUTABLE} "${CMAKE_SOURCE_DIR}/tests/python/test_gpu.py")
  set_tests_properties(python_gpu PROPERTIES LABELS "gpu" SKIP_RETURN_CODE 77
    ENVIRONMENT "PYTHONPATH=${SLIDESPARSE_PY_OUT};SLIDESPARSE_CLI=$<TARGET_FILE:slidesparse>")
endif()
