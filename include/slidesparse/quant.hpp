// slidesparse: symmetric quantization, CPU-exact. The GPU kernels must match these bit for bit.
//
// Per row r (weights: output channel; activations: token), with amax = max |v| over the row:
//   amax == 0          -> scale = 1, every q = 0
//   otherwise  a = max(amax, kMinAmax);  inv = Q / a;  scale = a / Q      (f32 arithmetic)
//   INT8: q = clamp(rint(v * inv), -128, 127), Q = 127    (rint: round half to even)
//   E4M3: q = f32_to_e4m3(v * inv),               Q = 448  (saturating, round-to-nearest-even)
// so that v ~= q * scale. Both the scale and its inverse come from the same clamped amax.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "slidesparse/types.hpp"

namespace slidesparse {

// Rows whose amax is below this are treated as if amax were this (keeps 127/amax finite).
inline constexpr float kMinAmax = 7.888609052210118e-31f;  // 2^-100

// Storage precision of pruned weights in a checkpoint. kTernary stores I8 codes in {-1, 0, 1} with
// one per-tensor scale (include/slidesparse/ternary.hpp), repeated per channel in P.weight_scale.
enum class Precision { kKeep, kInt8, kFp8, kTernary };
const char* precision_name(Precision p) noexcept;  // "keep", "int8", "fp8", "ternary"
std::optional<Precision> precision_from_name(std::string_view s) noexcept;

// Per-row symmetric quantization of a [rows, cols] matrix of dtype f32/f16/bf16 (values read
// exactly). q is [rows, cols] int8 or e4m3 bytes, scale is [rows]. -0 results are stored as +0.
void quantize_rows_i8(DType dtype, const void* v, int64_t rows, int64_t cols, int8_t* q,
                      float* scale, int num_threads = 1);
void quantize_rows_e4m3(DType dtype, const void* v, int64_t rows, int64_t cols, uint8_t* q,
                        float* scale, int num_threads = 1);

}  // namespace slidesparse
