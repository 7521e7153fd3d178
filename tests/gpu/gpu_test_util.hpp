// Shared by the tier-1 (GPU) tests: skipping loudly, with the reason, where no device is usable,
// and asserting CUDA runtime calls.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>

#include "slidesparse/types.hpp"

namespace slidesparse::gputest {

// SLIDESPARSE_GPU_TEST_QUICK set (the memcheck runs): suites leave out their slowest cases.
inline bool quick() { return std::getenv("SLIDESPARSE_GPU_TEST_QUICK") != nullptr; }

// Empty when a device is usable, else why not.
inline std::string gpu_unavailable() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
  if (n == 0) return "cudaGetDeviceCount() found 0 devices";
  return {};
}

// Device memory owned by a test (freed on scope exit). status() is cudaMalloc's result.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) { reset(bytes); }
  ~DeviceBuffer() {
    if (ptr_ != nullptr) cudaFree(ptr_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void reset(size_t bytes) {
    if (ptr_ != nullptr) cudaFree(ptr_);
    ptr_ = nullptr;
    bytes_ = bytes;
    status_ = cudaSuccess;
    if (bytes > 0) {
      status_ = cudaMalloc(&ptr_, bytes);
      if (status_ != cudaSuccess) ptr_ = nullptr;
    }
  }
  void* get() const { return ptr_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }
  cudaError_t status() const { return status_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  cudaError_t status_ = cudaSuccess;
};

// A non-blocking stream owned by a test.
class TestStream {
 public:
  TestStream() { cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking); }
  ~TestStream() { cudaStreamDestroy(s_); }
  TestStream(const TestStream&) = delete;
  TestStream& operator=(const TestStream&) = delete;
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

// Y[m, n] (bf16 bits) equal to `want` bit for bit; the failure names the first 5 differences
// (`poison`: the fill a test writes before the run, reported as "never written").
inline ::testing::AssertionResult same_bf16_bits(const uint16_t* got, const uint16_t* want, int64_t m, int64_t n,
                                                 const std::string& what, uint16_t poison) {
  int64_t bad = 0;
  std::ostringstream first;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const uint16_t g = got[size_t(i * n + j)], w = want[size_t(i * n + j)];
      if (g != w) {
        if (bad < 5)
          first << "\n  Y[" << i << "," << j << "] = " << ::slidesparse::bf16_to_f32(g) << " (0x" << std::hex << g
                << std::dec << "), want " << ::slidesparse::bf16_to_f32(w) << (g == poison ? " (never written)" : "");
        ++bad;
      }
    }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": " << bad << " of " << m * n << " elements differ" << first.str();
}

}  // namespace slidesparse::gputest

#define SLIDESPARSE_REQUIRE_GPU()                                                  \
  do {                                                                             \
    const std::string why_ = ::slidesparse::gputest::gpu_unavailable();            \
    if (!why_.empty()) GTEST_SKIP() << "no CUDA device: " << why_;                 \
  } while (0)

// A device and a build with cuSPARSELt (slidesparse::cusparselt_compiled, src/backends/backend.hpp,
// declared where this expands).
#define SLIDESPARSE_REQUIRE_CUSPARSELT()                                                       \
  do {                                                                                         \
    SLIDESPARSE_REQUIRE_GPU();                                                                 \
    if (!::slidesparse::cusparselt_compiled())                                                 \
      GTEST_SKIP() << "this build has no cuSPARSELt (run scripts/fetch_cusparselt.sh and "     \
                      "reconfigure): sparse paths not tested";                                 \
  } while (0)

#define SLIDESPARSE_CUDA_ASSERT(expr)                                             \
  do {                                                                            \
    const cudaError_t e_ = (expr);                                                \
    ASSERT_EQ(e_, cudaSuccess) << #expr << " -> " << cudaGetErrorName(e_) << ": " \
                               << cudaGetErrorString(e_);                         \
  } while (0)
