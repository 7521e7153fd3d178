# slidesparse API: SlideLinear (include/slidesparse/slide_linear.hpp, src/api/) and its tier-1 test
# (the benchmarks: cmake/bench.cmake). Included from the SLIDESPARSE_ENABLE_CUDA block of the
# top-level CMakeLists.txt right after cmake/backends.cmake, whose slidesparse_backends library,
# SLIDESPARSE_HAVE_CUSPARSELT / SLIDESPARSE_CUSPARSELT_INCLUDE_DIR and slidesparse_gpu_runpath()
# it uses. The public header has no CUDA types; the library itself is CUDA-side (quant_lift ->
# GEMM plan -> scale_epilogue on the caller's stream).

add_library(slidesparse_api STATIC src/api/slide_linear.cpp)
target_include_directories(slidesparse_api PUBLIC include PRIVATE src)
target_link_libraries(slidesparse_api
  PUBLIC slidesparse_backends slidesparse_kernels slidesparse_core_hofmt CUDA::cudart_static
  PRIVATE fmt::fmt-header-only slidesparse_warnings)
if(SLIDESPARSE_HAVE_CUSPARSELT)
  # backends/check.hpp includes cusparseLt.h when the backend is compiled in.
  target_include_directories(slidesparse_api PRIVATE "${SLIDESPARSE_CUSPARSELT_INCLUDE_DIR}")
endif()
set_target_properties(slidesparse_api PROPERTIES POSITION_INDEPENDENT_CODE ON)

# --- Tier-1 test: tests/gpu/gpu_slide_linear.cpp (the executable is made by the tests/gpu loop) ---
if(TARGET test_gpu_slide_linear)
  target_link_libraries(test_gpu_slide_linear PRIVATE slidesparse_api fmt::fmt-header-only)
  slidesparse_gpu_runpath(test_gpu_slide_linear)
endif()

# Ternary layers through SlideLinear::from_quantized: tests/gpu/gpu_ternary.cpp.
if(TARGET test_gpu_ternary)
  target_link_libraries(test_gpu_ternary PRIVATE slidesparse_api fmt::fmt-header-only)
  slidesparse_gpu_runpath(test_gpu_ternary)
endif()

# --- GPU Llama forward and its test ---------------------------------------------------------------
include(cmake/llama_gpu.cmake)

# --- Tier-1 test: tests/gpu/gpu_weight_prep.cpp (weight preparation kernels + SlideLinear's device
# entries; the executable is made by the tests/gpu loop) ---
if(TARGET test_gpu_weight_prep)
  target_link_libraries(test_gpu_weight_prep PRIVATE slidesparse_api fmt::fmt-header-only)
  slidesparse_gpu_runpath(test_gpu_weight_prep)
endif()
