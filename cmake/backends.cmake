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

# --- sm90 backend: CUTLASS 3.x headers (PyPI nvidia-cutlass, scripts/fetch_cutlass.sh) ----------
# One translation unit per kernel configuration (src/backends/sm90/gemm_<ID>.cu) so builds
# parallelize; sm_90a machine code only (wgmma / TMA need the "a" features). Without the headers
# (or with a toolkit older than 12.0) the build goes on without it: SLIDESPARSE_HAVE_SM90=0 and
# make_sm90_plan() reports kUnsupported.
set(SLIDESPARSE_CUTLASS_ROOT "${CMAKE_SOURCE_DIR}/.deps/cutlass" CACHE PATH
    "Directory holding include/cutlass/cutlass.h and util/include (CUTLASS 3.x / 4.x headers)")
set(SLIDESPARSE_HAVE_SM90 0)
if(EXISTS "${SLIDESPARSE_CUTLASS_ROOT}/include/cutlass/cutlass.h" AND
   CMAKE_CUDA_COMPILER_VERSION VERSION_GREATER_EQUAL 12.0)
  set(SLIDESPARSE_HAVE_SM90 1)
  file(GLOB SLIDESPARSE_SM90_GEMMS CONFIGURE_DEPENDS src/backends/sm90/gemm_*.cu)
  # SLIDESPARSE_SM90_ONLY (a regex on the kernel id) limits the instantiations: quick builds.
  set(SLIDESPARSE_SM90_ONLY "" CACHE STRING "Build only the sm90 kernels whose id matches this regex")
  set(_ss_sm90_list "")
  set(_ss_sm90_srcs "")
  foreach(src ${SLIDESPARSE_SM90_GEMMS})
    get_filename_component(name ${src} NAME_WE)
    string(REGEX REPLACE "^gemm_" "" id ${name})
    if(SLIDESPARSE_SM90_ONLY AND NOT id MATCHES "${SLIDESPARSE_SM90_ONLY}")
      continue()
    endif()
    list(APPEND _ss_sm90_srcs ${src})
    string(APPEND _ss_sm90_list "SLIDESPARSE_SM90_ENTRY(${id})\n")
  endforeach()
  file(CONFIGURE OUTPUT "${CMAKE_BINARY_DIR}/generated/sm90_kernel_list.inc" CONTENT "${_ss_sm90_list}")
  add_library(slidesparse_sm90 STATIC ${_ss_sm90_srcs}
    src/backends/sm90/sm90_compress.cu
    src/backends/sm90/sm90_registry.cpp
    src/backends/sm90/compressed_layout.cpp)
  target_include_directories(slidesparse_sm90 PUBLIC include src
    PRIVATE "${CMAKE_BINARY_DIR}/generated")
  target_include_directories(slidesparse_sm90 SYSTEM PRIVATE
    "${SLIDESPARSE_CUTLASS_ROOT}/include" "${SLIDESPARSE_CUTLASS_ROOT}/util/include")
  # -fmad=false: the fused epilogue rounds every f32 operation on its own (as scale_epilogue does).
  set_target_properties(slidesparse_sm90 PROPERTIES CUDA_ARCHITECTURES OFF CUDA_STANDARD 17
    CUDA_STANDARD_REQUIRED ON POSITION_INDEPENDENT_CODE ON)
  target_compile_options(slidesparse_sm90 PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:-gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr -fmad=false
      -lineinfo -DNDEBUG>)
  target_link_libraries(slidesparse_sm90 PUBLIC CUDA::cudart_static)
  list(LENGTH _ss_sm90_srcs _ss_sm90_n)
  message(STATUS "slidesparse: sm90 backend with ${_ss_sm90_n} CUTLASS kernels (${SLIDESPARSE_CUTLASS_ROOT})")
else()
  message(WARNING "slidesparse: CUTLASS headers not found in ${SLIDESPARSE_CUTLASS_ROOT} (or CUDA < 12): "
    "building without the sm90 backend. Run scripts/fetch_cutlass.sh or set -DSLIDESPARSE_CUTLASS_ROOT=<dir>.")
endif()

add_library(slidesparse_backends STATIC
  src/backends/backend_common.cpp
  src/backends/plan_cache.cpp
  src/backends/cublaslt_backend.cpp
  src/backends/cusparselt_backend.cpp
  src/backends/sm90_backend.cpp)
target_include_directories(slidesparse_backends PUBLIC include src)
target_compile_definitions(slidesparse_backends PUBLIC SLIDESPARSE_HAVE_CUSPARSELT=${SLIDESPARSE_HAVE_CUSPARSELT}
  SLIDESPARSE_HAVE_SM90=${SLIDESPARSE_HAVE_SM90})
if(SLIDESPARSE_HAVE_SM90)
  target_link_libraries(slidesparse_backends PUBLIC slidesparse_sm90)
endif()
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

# --- Tier-1 test of the sm90 backend and its compressor: tests/gpu/gpu_sm90.cpp ----------------
if(TARGET test_gpu_sm90)
  # slidesparse_api (SlideLinear on the sm90 backend) is defined later, in cmake/api.cmake.
  target_link_libraries(test_gpu_sm90 PRIVATE slidesparse_api slidesparse_backends fmt::fmt-header-only)
  slidesparse_gpu_runpath(test_gpu_sm90)
endif()
