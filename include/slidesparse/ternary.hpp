// slidesparse: per-tensor absmean ternary (1.58-bit) quantization and its (2N-2):2N pruning,
// CPU-exact (docs/FORMAT.md section 3, "ternary").
//
// For W[n, k] of dtype f32, f16 or bf16 (every value read exactly as an f32):
//   sum = sum of |w| over all n*k elements of the UNMASKED weight, in double, in row-major order
//         (row 0 column 0, row 0 column 1, ..., row n-1 column k-1), one rounding per addition
//   sum == 0:   s = 1, every q = 0
//   otherwise:  s = max(f32(sum / (n*k)), 2^-100)     (the division in double, then one rounding)
//   q = clamp(round_half_to_even(w / s), -1, 1)      (w / s one IEEE f32 division)
// so q = sign(w) where |w / s| > 1/2 and 0 otherwise (a quotient of exactly +-1/2 rounds to 0,
// as torch.round does), and w ~= q * s. A non-finite weight is Error(kInvalidData) naming the
// layer, row and column.
// Pruning, per row, in aligned groups of 2N along k (a partial last group padded with zeros): a
// group with at most 2N-2 nonzero codes is untouched; otherwise the nonzero codes whose ORIGINAL
// |w| is smallest are set to 0 until 2N-2 remain, among equal |w| the lower column is kept. This is
// the magnitude rule of prune.hpp applied to the row w * [q != 0], and is computed by it.
#pragma once

#include <cstdint>
#include <string_view>

#include "slidesparse/pattern.hpp"
#include "slidesparse/types.hpp"

namespace slidesparse {

// s of W[n, k] as above (n, k >= 1). Single-threaded: the summation order is part of the rule.
float ternary_scale(DType dtype, const void* w, int64_t n, int64_t k, std::string_view layer = {});

struct TernaryResult {
  float scale = 1.0f;     // s, the same for every row
  int64_t nonzeros = 0;   // nonzero codes before pruning
  int64_t pruned = 0;     // nonzero codes set to 0 by the pattern
};

// q[n, k] (int8, values in {-1, 0, 1}) of W[n, k] quantized and pruned to `p` as above. Rows are
// split across num_threads after the scale; the result does not depend on the thread count.
TernaryResult quantize_ternary(Pattern p, DType dtype, const void* w, int64_t n, int64_t k, int8_t* q,
                               std::string_view layer = {}, int num_threads = 1);

}  // namespace slidesparse
