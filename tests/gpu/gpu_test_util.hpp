// Shared by the tier-1 (GPU) tests: skipping loudly, with the reason, where no device is usable,
// and asserting CUDA runtime calls.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <string>

namespace slidesparse::gputest {

// Empty when a device is usable, else why not.
inline std::string gpu_unavailable() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
  if (n == 0) return "cudaGetDeviceCount() found 0 devices";
  return {};
}

}  // namespace slidesparse::gputest

#define SLIDESPARSE_REQUIRE_GPU()                                                  \
  do {                                                                             \
    const std::string why_ = ::slidesparse::gputest::gpu_unavailable();            \
    if (!why_.empty()) GTEST_SKIP() << "no CUDA device: " << why_;                 \
  } while (0)

#define SLIDESPARSE_CUDA_ASSERT(expr)                                             \
  do {                                                                            \
    const cudaError_t e_ = (expr);                                                \
    ASSERT_EQ(e_, cudaSuccess) << #expr << " -> " << cudaGetErrorName(e_) << ": " \
                               << cudaGetErrorString(e_);                         \
  } while (0)
