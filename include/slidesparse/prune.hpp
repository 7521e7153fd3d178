// slidesparse: (2N-2):2N pruning along k, in aligned groups of 2N (a partial last group is
// treated as padded with zeros).
//
// Rule (both methods): a group with at most 2N-2 nonzeros is left untouched; otherwise exactly
// nnz-(2N-2) nonzeros are dropped -- the ones with the lowest score; among equal scores the lower
// index wins (is kept). Never prunes more than needed. Scores:
//   magnitude: |w[n,k]|
//   wanda:     |w[n,k]| * norm[k]     (norm[k] = ||X[:,k]||_2 over calibration tokens)
// Scores are computed from the original high-precision values. Non-finite weights are an error.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "slidesparse/pattern.hpp"
#include "slidesparse/types.hpp"

namespace slidesparse {

enum class PruneMethod { kMagnitude, kWanda };
const char* prune_method_name(PruneMethod m) noexcept;  // "magnitude", "wanda"
std::optional<PruneMethod> prune_method_from_name(std::string_view s) noexcept;

// One row of float values -> keep mask (1 kept, 0 dropped). col_norms may be null for magnitude and
// must hold k finite, non-negative values for wanda. Returns the number of elements dropped.
// Throws Error(kInvalidData) naming layer/row/column for a non-finite weight.
int64_t prune_row_mask(Pattern p, PruneMethod method, const float* w, int64_t k,
                       const float* col_norms, uint8_t* keep, std::string_view layer = {},
                       int64_t row = 0);

// Prune W[n,k] of dtype f32, f16 or bf16 in place: dropped elements become +0, kept elements keep
// their exact bits. Returns the number of elements dropped. Rows are split across num_threads.
int64_t prune_inplace(Pattern p, PruneMethod method, DType dtype, void* w, int64_t n, int64_t k,
                      const float* col_norms, std::string_view layer = {}, int num_threads = 1);

// Compliance of a stored W[n,k] (any dtype; -0.0 counts as zero).
struct PatternReport {
  int64_t groups = 0;          // n * ceil(k/2N)
  int64_t violating_groups = 0;
  int64_t nonzeros = 0;
  int64_t max_group_nonzeros = 0;
  int64_t first_bad_row = -1, first_bad_group = -1;
  bool ok() const noexcept { return violating_groups == 0; }
};
PatternReport check_pattern(Pattern p, DType dtype, const void* w, int64_t n, int64_t k);

// Validate per-column norms for wanda: k values, finite and >= 0; throws kInvalidData otherwise.
void validate_col_norms(const float* col_norms, int64_t k, std::string_view layer);

}  // namespace slidesparse
