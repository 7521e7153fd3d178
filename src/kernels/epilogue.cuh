// slidesparse kernels: the scale epilogue, the one pass over the GEMM output (host launcher).
//
// For every row r < m and column j < n:
//   Y[r, j] = cast( ((f32(acc[r, j]) * s_x[r]) * s_w[j]) + bias[j] )
// in IEEE f32, each operation rounded on its own (__fmul_rn / __fadd_rn: no FMA contraction), in
// exactly that order, then one round-to-nearest-even cast to bf16 / f16. f32(acc) of an i32 is the
// round-to-nearest conversion (exact below 2^24). A null s_x, s_w or bias leaves its operation out
// (x * 1 and x + 0 would change nothing but the sign of a zero). Only Y[0:m, 0:n] is written; the
// padding rows and columns of acc (the GEMM's m_rows x n_cols) are never read.
//
// acc dtypes: i32 (raw i8 GEMM accumulators), f32 (raw e4m3 accumulators), and bf16 / f16 (a
// 16-bit GEMM's output, which the epilogue copies out of the padded D, adding the bias if any).
// Loads and stores are 16 bytes wide on rows where acc, Y, s_w and bias allow it (8 columns per
// thread), scalar otherwise and for the last n % 8 columns. Indexing is 64-bit.
//
// The CPU twin (same operations, same order) lives in tests/gpu/gpu_epilogue.cpp; the result is
// bit-identical to it.
// This header is plain C++ (no device code): include it from .cpp.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "slidesparse/types.hpp"

namespace slidesparse {

// The whole host <-> device contract of scale_epilogue. Strides are in elements.
struct EpilogueParams {
  const void* acc = nullptr;     // [>= m rows, ld_acc]
  DType acc_dtype = DType::kI32;  // kI32, kF32, kBF16 or kF16
  int64_t ld_acc = 0;             // >= n (the GEMM's n_cols)
  const float* s_x = nullptr;     // [m] per-token scale, or null
  const float* s_w = nullptr;     // [n] per-channel scale, or null
  const float* bias = nullptr;    // [n], or null
  void* y = nullptr;              // Y[m, n], row stride ldy
  DType y_dtype = DType::kBF16;   // kBF16 or kF16
  int64_t ldy = 0;                // >= n
  int64_t m = 0, n = 0;
};

// nullptr when `p` is valid, else a message naming the first violated rule.
const char* epilogue_check(const EpilogueParams& p) noexcept;

// Enqueues the epilogue on `stream`. Returns cudaErrorInvalidValue when epilogue_check fails
// (nothing is launched), cudaSuccess without a launch when m or n is 0, otherwise the launch
// status. Allocates nothing, never synchronizes: safe inside CUDA graph capture.
cudaError_t scale_epilogue(const EpilogueParams& p, cudaStream_t stream);

}  // namespace slidesparse
