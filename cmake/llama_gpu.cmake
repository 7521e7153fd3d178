# slidesparse GPU Llama forward: LlamaGpuModel (include/slidesparse/llama_gpu.hpp, src/api/llama_gpu.cpp,
# kernels in src/kernels/llama_ops.cu) and its tier-1 test. Included from cmake/api.cmake (it needs
# slidesparse_api and slidesparse_gpu_runpath()).

# It reads checkpoints (IO) and the config parser of the CPU model, and its test compares against the
# CPU forward: both libraries again from the same sources, with fmt header-only, because the GPU
# machines have no libfmt.so.
add_library(slidesparse_io_hofmt STATIC ${SLIDESPARSE_IO_SRC})
target_include_directories(slidesparse_io_hofmt PUBLIC include PRIVATE src)
target_link_libraries(slidesparse_io_hofmt PUBLIC slidesparse_core_hofmt
  PRIVATE nlohmann_json::nlohmann_json fmt::fmt-header-only slidesparse_warnings)
add_library(slidesparse_model_hofmt STATIC ${SLIDESPARSE_MODEL_SRC})
target_include_directories(slidesparse_model_hofmt PUBLIC include PRIVATE src)
target_link_libraries(slidesparse_model_hofmt PUBLIC slidesparse_io_hofmt slidesparse_core_hofmt Threads::Threads
  PRIVATE nlohmann_json::nlohmann_json fmt::fmt-header-only slidesparse_warnings)

add_library(slidesparse_llama_gpu STATIC src/api/llama_gpu.cpp)
target_include_directories(slidesparse_llama_gpu PUBLIC include PRIVATE src)
target_link_libraries(slidesparse_llama_gpu
  PUBLIC slidesparse_api slidesparse_model_hofmt slidesparse_io_hofmt
  PRIVATE fmt::fmt-header-only slidesparse_warnings)
if(SLIDESPARSE_HAVE_CUSPARSELT)
  target_include_directories(slidesparse_llama_gpu PRIVATE "${SLIDESPARSE_CUSPARSELT_INCLUDE_DIR}")
endif()

# --- Tier-1 test: tests/gpu/gpu_llama.cpp (GPU forward vs the CPU forward, sparse vs dense paths) ---
if(TARGET test_gpu_llama)
  target_link_libraries(test_gpu_llama PRIVATE slidesparse_llama_gpu nlohmann_json::nlohmann_json
    fmt::fmt-header-only)
  if(SLIDESPARSE_HAVE_CUSPARSELT)
    target_include_directories(test_gpu_llama PRIVATE "${SLIDESPARSE_CUSPARSELT_INCLUDE_DIR}")
  endif()
  slidesparse_gpu_runpath(test_gpu_llama)
endif()

# --- `slidesparse eval --device gpu`: the CLI gets the GPU model ------------------------------------
# src/api/eval_gpu.cpp defines load_gpu_forward(), replacing the weak CPU-only stub of
# src/convert/model_cmds.cpp (which reports "unsupported").
target_sources(slidesparse PRIVATE src/api/eval_gpu.cpp)
target_link_libraries(slidesparse PRIVATE slidesparse_llama_gpu)
