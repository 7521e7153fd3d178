// slidesparse kernels: fused per-token quantization + activation lifting (host launchers).
//
// For every token row r < m of X[m, k] (bf16 or f16):
//   amax over the ORIGINAL row X[r, 0:k] (lifted duplicates do not change it), then, as
//   docs/FORMAT.md section 3:  amax == 0 -> scale 1, q = 0;  else a = max(amax, 2^-100),
//   inv = Q / a, scale = a / Q (IEEE f32 division);  int8: q = clamp(rint(v*inv), -128, 127),
//   e4m3: q = e4m3(v*inv) saturating, round-to-nearest-even, -0 stored as +0.
//   Output column c < k_out holds quantize(X[r, src(c)]), src = the lifting map of section 4:
//   c = g*4(N-1) + 4w + l  <->  src = g*2N + 2w + l, zero where src >= k (pattern_n == 0: src = c).
//   Rows r in [m, m_pad) are written as zeros with scale 1: the kernel writes every byte of
//   q[0:m_pad, 0:k_out] and scale[0:m_pad] itself (no memset beforehand), and nothing else.
//   Lift only (out dtype == in dtype): elements are copied through the map; scale, when given,
//   is set to 1 for every row.
// Bit-exact with the CPU core: quantize_rows_i8 / quantize_rows_e4m3 followed by
// lift_activations. The CPU rejects non-finite inputs; here a row holding inf or NaN gets
// scale NaN and all-zero q, so the token's GEMM output becomes NaN instead of vanishing.
//
// This header is plain C++ (no device code, no torch or cuSPARSELt types): include it from .cpp.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "slidesparse/types.hpp"

namespace slidesparse {

// The whole host <-> device contract of quant_lift. Shapes and strides are in elements.
struct QuantLiftParams {
  const void* x = nullptr;        // X[m, k], row stride ldx; 2-byte aligned
  DType in_dtype = DType::kBF16;  // kBF16 or kF16
  int64_t m = 0, k = 0, ldx = 0;
  void* q = nullptr;               // X'[m_pad, k_out], row stride ldq
  DType out_dtype = DType::kI8;    // kI8, kE4M3 (quantize) or in_dtype (lift only)
  int64_t m_pad = 0, k_out = 0, ldq = 0;
  float* scale = nullptr;  // [m_pad]; required when quantizing, optional for lift only
  int pattern_n = 0;       // 0: no lifting (dense quantization), else N of (2N-2):2N, 2..16
};

// Columns the lifted row needs: ceil(k / 2N) * 4(N-1) (pattern_n == 0: k). Format v1 pads k_out
// further to a multiple of 32 (slide_k); any k_out >= this is accepted.
int64_t quant_lift_min_k_out(int pattern_n, int64_t k) noexcept;

// nullptr when `p` is valid, else a message naming the first violated rule.
const char* quant_lift_check(const QuantLiftParams& p) noexcept;

// Enqueues the fused kernel on `stream`. Returns cudaErrorInvalidValue when quant_lift_check
// fails (nothing is launched), otherwise the launch status. Any m >= 0, any k; 16-byte loads
// where a row is 16-byte aligned, 16-byte stores where q and ldq allow.
cudaError_t quant_lift(const QuantLiftParams& p, cudaStream_t stream);

// The device E4M3 encoder quant_lift uses (cvt.rn.satfinite.e4m3x2.f32 on sm_89+), before -0 is
// stored as +0: out[i] = e4m3(in[i]). Exposed so tests can compare it with f32_to_e4m3 directly.
cudaError_t encode_e4m3(const float* in, uint8_t* out, int64_t n, cudaStream_t stream);

}  // namespace slidesparse
