# slidesparse benchmarks (`slidesparse bench`, `slidesparse tune`): the suites in bench/ as a library
# linked into the CLI. Included from the SLIDESPARSE_ENABLE_CUDA block of the top-level
# CMakeLists.txt after cmake/api.cmake (slidesparse_api, slidesparse_gpu_runpath()). In builds
# without CUDA the CLI still has both subcommands: they validate their options and report
# "unsupported" (cli/bench_cmd.cpp).

add_library(slidesparse_bench STATIC
  bench/bench.cpp
  bench/suite_kernel.cpp
  bench/suite_layer.cpp
  bench/suite_load.cpp
  bench/suite_quant.cpp
  bench/tune.cpp)
target_include_directories(slidesparse_bench PUBLIC include PRIVATE src bench)
target_link_libraries(slidesparse_bench
  PUBLIC slidesparse_api slidesparse_backends slidesparse_kernels slidesparse_core_hofmt CUDA::cudart_static
    nlohmann_json::nlohmann_json
  PRIVATE fmt::fmt-header-only Threads::Threads slidesparse_warnings)
if(_ss_git_sha)
  target_compile_definitions(slidesparse_bench PRIVATE SLIDESPARSE_GIT_SHA="${_ss_git_sha}")
endif()

# The CLI gets the suites; it then needs the GPU libraries' RUNPATH (cuSPARSELt from PyTorch's
# virtualenv on the GPU machines). Its own libfmt.so / libre2.so are not on those machines:
# scripts/gpu_bundle_libs.sh copies them next to it (build-gpu/rtlibs, in the RUNPATH below).
target_link_libraries(slidesparse PRIVATE slidesparse_bench)
target_compile_definitions(slidesparse PRIVATE SLIDESPARSE_GPU_BENCH=1)
set_target_properties(slidesparse PROPERTIES
  BUILD_RPATH "${SLIDESPARSE_GPU_RPATH};\$ORIGIN/rtlibs"
  INSTALL_RPATH "${SLIDESPARSE_GPU_RPATH}")
