# slidesparse API: SlideLinear (include/slidesparse/slide_linear.hpp, src/api/), its tier-1 test and
# the full-layer benchmark. Included from the SLIDESPARSE_ENABLE_CUDA block of the top-level
# CMakeLists.txt right after cmake/backends.cmake, whose slidesparse_backends library,
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

# --- Full-layer benchmark: quant+lift + GEMM + epilogue, dense vs 2:4 vs slid ----------------------
add_executable(slidesparse_bench_layer bench/layer_bench.cpp)
target_include_directories(slidesparse_bench_layer PRIVATE src)
target_link_libraries(slidesparse_bench_layer PRIVATE slidesparse_api slidesparse_backends
  nlohmann_json::nlohmann_json fmt::fmt-header-only CLI11::CLI11 Threads::Threads slidesparse_warnings)
if(SLIDESPARSE_HAVE_CUSPARSELT)
  target_include_directories(slidesparse_bench_layer PRIVATE "${SLIDESPARSE_CUSPARSELT_INCLUDE_DIR}")
endif()
slidesparse_gpu_runpath(slidesparse_bench_layer)

# --- Tier-1 test: tests/gpu/gpu_slide_linear.cpp (the executable is made by the tests/gpu loop) ---
if(TARGET test_gpu_slide_linear)
  target_link_libraries(test_gpu_slide_linear PRIVATE slidesparse_api fmt::fmt-header-only)
  slidesparse_gpu_runpath(test_gpu_slide_linear)
endif()
