// slidesparse backends: one check macro per library. Each throws slidesparse::Error carrying the
// backend ("cuda", "cublaslt", "cusparselt"), the failing expression, file:line and the library's
// own status name and string; what() repeats all of it so a log line is self-contained.
// Include only from backend .cpp files (never from kernels or public headers).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <string>

#include "slidesparse/error.hpp"

#if SLIDESPARSE_HAVE_CUSPARSELT
#include <cusparseLt.h>
#endif

namespace slidesparse::detail {

// Library failures are our bug (kInternal) unless the library says the request is not supported
// on this device/configuration (kUnsupported).
inline Status cuda_status(cudaError_t e) noexcept {
  switch (e) {
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorUnsupportedPtxVersion:
    case cudaErrorNotSupported:
      return Status::kUnsupported;
    default:
      return Status::kInternal;
  }
}
inline Status cublas_status(cublasStatus_t s) noexcept {
  return (s == CUBLAS_STATUS_NOT_SUPPORTED || s == CUBLAS_STATUS_ARCH_MISMATCH)
             ? Status::kUnsupported
             : Status::kInternal;
}

[[noreturn]] inline void throw_library_error(Status status, const char* backend, const char* expr,
                                             const char* name, const char* text,
                                             const char* file, int line) {
  std::string msg = fmt::format("{}: {} failed: {} ({}) at {}:{}", backend, expr, name, text,
                                file, line);
  throw Error(status, std::move(msg), file, line, backend, expr);
}

}  // namespace slidesparse::detail

#define SLIDESPARSE_CUDA_CHECK(expr)                                                          \
  do {                                                                                        \
    const cudaError_t ss_e_ = (expr);                                                         \
    if (ss_e_ != cudaSuccess) {                                                               \
      ::slidesparse::detail::throw_library_error(::slidesparse::detail::cuda_status(ss_e_),   \
                                                 "cuda", #expr, cudaGetErrorName(ss_e_),      \
                                                 cudaGetErrorString(ss_e_), __FILE__, __LINE__); \
    }                                                                                         \
  } while (0)

#define SLIDESPARSE_CUBLAS_CHECK(expr)                                                          \
  do {                                                                                          \
    const cublasStatus_t ss_s_ = (expr);                                                        \
    if (ss_s_ != CUBLAS_STATUS_SUCCESS) {                                                       \
      ::slidesparse::detail::throw_library_error(::slidesparse::detail::cublas_status(ss_s_),   \
                                                 "cublaslt", #expr, cublasLtGetStatusName(ss_s_), \
                                                 cublasLtGetStatusString(ss_s_), __FILE__,        \
                                                 __LINE__);                                     \
    }                                                                                           \
  } while (0)

#if SLIDESPARSE_HAVE_CUSPARSELT
namespace slidesparse::detail {
inline Status cusparselt_status(cusparseStatus_t s) noexcept {
  return (s == CUSPARSE_STATUS_NOT_SUPPORTED || s == CUSPARSE_STATUS_ARCH_MISMATCH)
             ? Status::kUnsupported
             : Status::kInternal;
}
}  // namespace slidesparse::detail

#define SLIDESPARSE_CUSPARSELT_CHECK(expr)                                                       \
  do {                                                                                           \
    const cusparseStatus_t ss_s_ = (expr);                                                       \
    if (ss_s_ != CUSPARSE_STATUS_SUCCESS) {                                                      \
      ::slidesparse::detail::throw_library_error(                                                \
          ::slidesparse::detail::cusparselt_status(ss_s_), "cusparselt", #expr,                  \
          cusparseLtGetErrorName(ss_s_), cusparseLtGetErrorString(ss_s_), __FILE__, __LINE__);   \
    }                                                                                            \
  } while (0)
#endif

// Backend-side argument checks (kInvalidArgument / kUnsupported ...) with a formatted message.
#define SLIDESPARSE_BACKEND_REQUIRE(cond, status, backend, ...)                                 \
  do {                                                                                          \
    if (!(cond)) {                                                                              \
      throw ::slidesparse::Error((status), ::fmt::format(__VA_ARGS__), __FILE__, __LINE__,      \
                                 (backend), #cond);                                             \
    }                                                                                           \
  } while (0)
