// slidesparse: (2N-2):2N pruning along k, in aligned groups of 2N (a partial last group is
// treated as padded with zeros).
//
// Rule (both methods): a group with at most 2N-2 nonzeros is left untouched; otherwise exactly
// nnz-(2N-2) nonzeros are dropped -- the ones with the lowest score; among equal scores the lower
// index wins (is kept). Never prunes more than needed. Scores:
//   magnitude: |w[n,k]|
//   wanda:     |w[n,k]| * norm[k]     (norm[k] = ||X[:,k]||_2 over calibration tokens)
// Scores are computed from the original high-precision values. Non-finite weights are an error.
//
// sparsegpt (prune_obs below) is different in kind: it needs the input Hessian, chooses each
// group's mask from weights that earlier columns' error compensation has already changed, and
// changes the kept values too. prune_inplace / prune_row_mask refuse it.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "slidesparse/pattern.hpp"
#include "slidesparse/types.hpp"

namespace slidesparse {

enum class PruneMethod { kMagnitude, kWanda, kSparseGpt };
const char* prune_method_name(PruneMethod m) noexcept;  // "magnitude", "wanda", "sparsegpt"
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

// --- sparsegpt: second-order (OBS) pruning with error compensation -------------------------
// (Frantar & Alistarh 2023, adapted to (2N-2):2N; docs/FORMAT.md section 2 states the rule.)
//
// The factorization of one layer input's Hessian H = sum over tokens of x x^T ([k, k], f32):
//   dead[j]  = H[j,j] == 0 (the input column is always zero; its row and column must then be zero
//              too, else H is not a Gram matrix and kInvalidData is thrown);
//   H'       = H with H'[j,j] = 1 for dead j, plus lambda * I, lambda = damp * mean(diag H);
//   u        = the upper Cholesky factor of H'^-1 (H'^-1 = u^T u), row-major [k, k], in double.
// Only the lower triangle of H is read. Non-finite entries, a negative or non-finite damp and an
// H' that is not positive definite are errors (kInvalidData naming the layer; kInvalidArgument
// for damp).
struct ObsFactor {
  int64_t k = 0;
  std::vector<double> u;     // [k, k], upper triangular
  std::vector<uint8_t> dead;  // [k]
  double lambda = 0.0;
};
ObsFactor obs_factor(const float* hessian, int64_t k, double damp, std::string_view layer = {},
                     int num_threads = 1);

// Prunes W[n, k] (f32, row-major) in place: dead columns are zeroed first; then columns are walked
// left to right; at the first column of each aligned group of 2N the row's mask is chosen from the
// current weights (keep min(len, 2N-2) positions, dropping zeros first and then the lowest
// w^2 / u[j,j]^2, ties keeping the lower index), and each column j is fixed (q = 0 where dropped,
// else w) with its error compensated on the columns to its right:
//   err = (w[j] - q) / u[j,j];  w[j+1:] -= err * u[j, j+1:];  w[j] = q.
// Rows are independent and split across num_threads. Returns the number of elements that were
// nonzero in the input and are zero in the output. Non-finite weights throw kInvalidData naming
// layer, row and column.
int64_t prune_obs(Pattern p, float* w, int64_t n, int64_t k, const ObsFactor& factor,
                  std::string_view layer = {}, int num_threads = 1);
int64_t prune_obs(Pattern p, float* w, int64_t n, int64_t k, const float* hessian, double damp,
                  std::string_view layer = {}, int num_threads = 1);

}  // namespace slidesparse
