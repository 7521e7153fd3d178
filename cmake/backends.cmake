# slidesparse GEMM backends: cuBLASLt (dense) and cuSPARSELt (2:4 sparse) behind one plan/run
# interface (src/backends) and their tier-1 test (the benchmarks: cmake/bench.cmake). Included
# from the SLIDESPARSE_ENABLE_CUDA block of the top-level CMakeLists.txt, after the kernels, the
# header-only-fmt core (slidesparse_core_hofmt) and the tests/gpu executables are defined.
#
# cuSPARSELt is not part of the CUDA toolkit: it is looked for under SLIDESPARSE_CUSPARSELT_ROOT
# (default: .deps/cusparselt, filled by scripts/fetch_cusparselt.sh), then in the PyPI wheel's
# location on the GPU machines (/opt/torch/.venv/.../nvidia/cusparselt). Without it the build
# still succeeds: SLIDESPARSE_HAVE_CUSPARSELT=0 and make_cusparselt_plan() reports kUnsupported.

set(_ss_venv_site /opt/torch/.venv/lib/python3.12/site-packages/nvidia)
set(SLIDESPARSE_CUSPARSELT_ROOT "${CMAKE_SOURCE_DIR}/.deps/cusparselt" CACHE PATH
    "Directory holding include/cusparseLt.h and lib/libcusparseLt.so.0")

find_path(SLIDESPARSE_CUSPARSELT_INCLUDE_DIR cusparseLt.h
  HINTS "${SLIDESPARSE_CUSPARSELT_ROOT}/include" "${_ss_venv_site}/cusparselt/include"
  NO_DEFAULT_PATH)
find_library(SLIDESPARSE_CUSPARSELT_LIBRARY NAMES libcusparseLt.so.0 cusparseLt
  HINTS "${SLIDESPARSE_CUSPARSELT_ROOT}/lib" "${_ss_venv_site}/cusparselt/lib"
  NO_DEFAULT_PATH)

if(SLIDESPARSE_CUSPARSELT_INCLUDE_DIR AND SLIDESPARSE_CUSPARSELT_LIBRARY)
  set(SLIDESPARSE_HAVE_CUSPARSELT 1)
  message(STATUS "slidesparse: cuSPARSELt ${SLIDESPARSE_CUSPARSELT_LIBRARY}")
else()
  set(SLIDESPARSE_HAVE_CUSPARSELT 0)
  message(WARNING "slidesparse: cuSPARSELt not found (looked in ${SLIDESPARSE_CUSPARSELT_ROOT} and "
    "${_ss_venv_site}/cusparselt); building without the sparse GEMM backend. "
    "Run scripts/fetch_cusparselt.sh or set -DSLIDESPARSE_CUSPARSELT_ROOT=<dir>.")
endif()

# The GPU machines run what is built here: they have the toolkit's cuBLASLt in /usr/local/cuda and
# cuSPARSELt / the CUDA 13 wheels in PyTorch's virtualenv, and no libfmt.so (hence fmt header-only).
set(SLIDESPARSE_GPU_RPATH
  "${_ss_venv_site}/cusparselt/lib"
  "/usr/local/cuda/lib64"
  "${_ss_venv_site}/cu13/lib"
  "${SLIDESPARSE_CUSPARSELT_ROOT}/lib")

function(slidesparse_gpu_runpath target)
  set_target_properties(${target} PROPERTIES
    BUILD_RPATH "${SLIDESPARSE_GPU_RPATH}"
    INSTALL_RPATH "${SLIDESPARSE_GPU_RPATH}")
endfunction()

add_library(slidesparse_backends STATIC
  src/backends/backend_common.cpp
  src/backends/plan_cache.cpp
  src/backends/cublaslt_backend.cpp
  src/backends/cusparselt_backend.cpp)
target_include_directories(slidesparse_backends PUBLIC include src)
target_compile_definitions(slidesparse_backends PUBLIC SLIDESPARSE_HAVE_CUSPARSELT=${SLIDESPARSE_HAVE_CUSPARSELT})
target_link_libraries(slidesparse_backends
  PUBLIC slidesparse_core_hofmt CUDA::cudart_static
  PRIVATE CUDA::cublasLt fmt::fmt-header-only nlohmann_json::nlohmann_json slidesparse_warnings)
if(SLIDESPARSE_HAVE_CUSPARSELT)
  target_include_directories(slidesparse_backends PRIVATE "${SLIDESPARSE_CUSPARSELT_INCLUDE_DIR}")
  target_link_libraries(slidesparse_backends PRIVATE "${SLIDESPARSE_CUSPARSELT_LIBRARY}")
endif()
set_target_properties(slidesparse_backends PROPERTIES POSITION_INDEPENDENT_CODE ON)

# --- Tier-1 test: tests/gpu/gpu_backends.cpp (the executable is made by the tests/gpu loop) -----
if(TARGET test_gpu_backends)
  target_link_libraries(test_gpu_backends PRIVATE slidesparse_backends fmt::fmt-header-only)
  slidesparse_gpu_runpath(test_gpu_backends)
endif()
