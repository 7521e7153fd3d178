// slidesparse kernels: the keep:group magnitude mask on the GPU (host launchers).
//
// Semantics are those of the CPU definition in include/slidesparse/nm_mask.hpp, bit for bit: per
// row of W[rows, k] (row stride ldw), aligned groups of `group` columns along k keep the
// min(keep, len) elements of largest |w|, ties to the lower column; -0.0 == +0.0; +-inf are the
// largest magnitudes. NaN: the CPU throws; here a group holding a NaN keeps nothing (mask 0, w_out
// +0) and, when `first_nan` is given, the smallest flat index r * k + c of a NaN is stored there
// (UINT64_MAX when there is none; the launcher resets it on the stream first), so a caller that
// cares synchronizes and reads 8 bytes.
//
// Outputs (at least one): mask[rows, k] bytes 0/1 (row stride ldm), and/or the masked weight
// w_out[rows, k] (same dtype, row stride ldo): kept elements keep their exact bits, dropped ones
// become +0. In place (w_out == w, ldo == ldw) is allowed: a thread reads its whole group before it
// writes any of it, and groups do not overlap. Indexing is 64-bit. Allocates nothing and never
// synchronizes (safe inside CUDA graph capture).
//
// This header is plain C++ (no device code, no torch types): include it from .cpp.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "slidesparse/types.hpp"

namespace slidesparse {

// The whole host <-> device contract of nm_mask. Strides are in elements.
struct NmMaskParams {
  const void* w = nullptr;     // W[rows, k], row stride ldw
  DType dtype = DType::kBF16;  // kF32, kBF16 or kF16
  int64_t rows = 0, k = 0, ldw = 0;
  int keep = 0, group = 0;     // 1 <= group <= 32, 0 <= keep <= group
  uint8_t* mask = nullptr;     // [rows, k], row stride ldm (>= k), or null
  int64_t ldm = 0;
  void* w_out = nullptr;       // [rows, k], row stride ldo (>= k), dtype as W, or null
  int64_t ldo = 0;
  unsigned long long* first_nan = nullptr;  // optional device word, see above
};

// nullptr when `p` is valid, else a message naming the first violated rule.
const char* nm_mask_check(const NmMaskParams& p) noexcept;

// Enqueues the mask kernel on `stream`. Returns cudaErrorInvalidValue when nm_mask_check fails
// (nothing is launched), cudaSuccess without a kernel when rows or k is 0 (first_nan is still
// reset), otherwise the launch status.
cudaError_t nm_mask(const NmMaskParams& p, cudaStream_t stream);

// The common case: contiguous mask output (ldm = k), no masked weight, no NaN report.
cudaError_t launch_nm_mask(const void* w, DType dtype, int64_t rows, int64_t k, int64_t ldw, int keep,
                           int group, uint8_t* mask_out, cudaStream_t stream);

}  // namespace slidesparse
