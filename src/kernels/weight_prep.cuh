// slidesparse kernels: weight preparation on the GPU (host launchers). From a weight W[n, k] that is
// already on the device, the same bytes the CPU core makes (docs/FORMAT.md sections 2-4):
//
//   prune     (2N-2):2N magnitude pruning along k: nm_mask (kernels/nm_mask.cuh, keep = 2N-2,
//             group = 2N: the top-keep |w| per aligned group, ties to the lower index) gives the keep
//             mask; quantize_weight applies it to NONZERO elements only (a dropped nonzero becomes
//             +0, zeros keep their bits), which is exactly prune_inplace's rule: a group with at most
//             2N-2 nonzeros keeps all of them, a denser one drops its nnz-(2N-2) smallest, equal
//             magnitudes keeping the lower column (tests/gpu/gpu_weight_prep.cpp checks the claim).
//   quantize  quantize_weight: per output channel (row), from the pruned values, exactly
//             quantize_rows_i8 / quantize_rows_e4m3 (amax over the pruned row; amax == 0 -> scale 1,
//             q = 0; a = max(amax, 2^-100), inv = Q / a, scale = a / Q in IEEE f32; i8:
//             clamp(rint(w*inv)), e4m3: saturating RNE, -0 stored as +0), or the bf16 rounding of
//             the pruned value (f32_to_bf16: RNE) for a bf16 layer.
//   slide     slide_weight_device: W'[n, k'] by the greedy placement of FORMAT.md section 4 on the
//             element bytes (a zero is a 0 byte for i8, a code with (c & 0x7F) == 0 for e4m3, a
//             16-bit value with (h & 0x7FFF) == 0 for bf16/f16), padding columns zero: exactly
//             slide_weight.
//   scan      scan_weight: the checks the CPU core makes before it writes anything: a non-finite
//             value (f32/bf16/f16) or an E4M3 NaN code, a group with more than 2N-2 nonzeros, a
//             scale that is not finite and positive.
//
// Problems are reported through a device status block (WeightPrepStatus, 4 x u64, each the
// smallest flat index of its kind, all ones when none): kernels never stop early and never trap,
// so a caller can run them without synchronizing (CUDA graph capture) and read the block later.
// Reset it with weight_prep_status_reset (a memset) before the kernels that should report into it.
// What the kernels write where they find a problem: quantize_weight gives a row with a non-finite
// value scale NaN and all-zero codes (its outputs become NaN, never plausible numbers; bf16 rows are
// converted as they are); slide_weight_device writes a group with too many nonzeros as zeros.
//
// Every kernel takes raw device pointers and a stream, allocates nothing, never synchronizes, and
// uses 64-bit indexing. This header is plain C++ (no device code): include it from .cpp.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "slidesparse/types.hpp"

namespace slidesparse {

// Device status block, words indexed by WeightPrepStatusWord. Each word holds the smallest flat
// index found (atomicMin), ~0 when nothing was found.
enum WeightPrepStatusWord : int {
  kStatusNonFinite = 0,  // r * k + c of a non-finite value / E4M3 NaN code (of the input W)
  kStatusDenseGroup = 1, // r * ceil(k/2N) + g of a group holding more than 2N-2 nonzeros
  kStatusBadScale = 2,   // r of a scale that is not finite and > 0
  kStatusWords = 4,
};
inline constexpr uint64_t kStatusNone = ~uint64_t(0);

// Sets every word to kStatusNone (one cudaMemsetAsync: capturable).
cudaError_t weight_prep_status_reset(uint64_t* status_dev, cudaStream_t stream);

// ---- quantize_weight --------------------------------------------------------------------------
struct QuantizeWeightParams {
  const void* w = nullptr;        // W[n, k] row stride ldw, f32 / bf16 / f16 (aligned to its size)
  DType in_dtype = DType::kBF16;
  int64_t n = 0, k = 0, ldw = 0;
  const uint8_t* keep = nullptr;  // optional keep mask [n, ldm] (nonzero = keep); null: keep all
  int64_t ldm = 0;
  void* q = nullptr;              // [n, ldq]: i8 / e4m3 codes, or bf16 values; columns [k, ldq) = 0
  DType out_dtype = DType::kI8;   // kI8, kE4M3 or kBF16
  int64_t ldq = 0;
  float* scale = nullptr;         // [n] channel scales (i8 / e4m3); unused (may be null) for bf16
  uint64_t* status = nullptr;     // optional status block: kStatusNonFinite
};
const char* quantize_weight_check(const QuantizeWeightParams& p) noexcept;  // nullptr when valid
cudaError_t quantize_weight(const QuantizeWeightParams& p, cudaStream_t stream);

// ---- slide_weight_device ------------------------------------------------------------------------
struct SlideWeightParams {
  const void* q = nullptr;        // W[n, k] row stride ldq: i8 / e4m3 codes or bf16 / f16 values
  DType dtype = DType::kI8;
  int64_t n = 0, k = 0, ldq = 0;
  void* ws = nullptr;             // W'[n, k_slide] row stride ldws (every column written)
  int64_t k_slide = 0, ldws = 0;  // k_slide >= ceil(k/2N) * 4(N-1) (normally slide_k)
  int pattern_n = 0;              // N of (2N-2):2N, 2..16
  uint64_t* status = nullptr;     // optional status block: kStatusDenseGroup
};
const char* slide_weight_device_check(const SlideWeightParams& p) noexcept;
cudaError_t slide_weight_device(const SlideWeightParams& p, cudaStream_t stream);

// ---- scan_weight --------------------------------------------------------------------------------
struct WeightScanParams {
  const void* w = nullptr;        // W[n, k] row stride ldw: f32 / bf16 / f16 values, i8 / e4m3 codes
  DType dtype = DType::kBF16;
  int64_t n = 0, k = 0, ldw = 0;
  int pattern_n = 0;              // 0: no pattern check; else count nonzeros per group of 2N
  const float* scale = nullptr;   // optional [n]: must be finite and > 0
  uint64_t* status = nullptr;     // required: kStatusNonFinite, kStatusDenseGroup, kStatusBadScale
};
const char* scan_weight_check(const WeightScanParams& p) noexcept;
cudaError_t scan_weight(const WeightScanParams& p, cudaStream_t stream);

}  // namespace slidesparse
