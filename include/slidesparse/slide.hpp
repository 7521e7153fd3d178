// slidesparse: sliding-window decomposition W[n,k] -> W'[n,k'] and activation lifting X -> X'.
// Exact: X'.W'^T == X.W^T, because every nonzero of W is placed once in W', opposite a copy of the
// same activation column. Column map and greedy placement: docs/FORMAT.md, BRIEF section 1.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "slidesparse/pattern.hpp"
#include "slidesparse/types.hpp"

namespace slidesparse {

// Greedy placement, per group: windows w = 0..N-2 in order, lanes l = 0..3 in order; a nonzero not
// yet placed goes into window w lane l while window w holds fewer than 2. Padding columns are zero.
// k_slide must be >= ceil(k/2N)*4(N-1) (normally slide_k(p, k)). Works on any dtype's bytes; zero
// test per element_is_zero. Throws Error(kInvalidData) naming layer, row and group when a group
// holds more than 2N-2 nonzeros (never drops a value silently).
void slide_weight(Pattern p, DType dtype, const void* w, int64_t n, int64_t k, void* w_slide,
                  int64_t k_slide, std::string_view layer = {}, int num_threads = 1);

// Inverse, for verification: scatters W' back to W[n,k]. Throws kInvalidData if a slid nonzero
// sits on padding, or two nonzeros claim the same original column.
void unslide_weight(Pattern p, DType dtype, const void* w_slide, int64_t n, int64_t k_slide,
                    void* w, int64_t k, std::string_view layer = {});

// Lifting map: for every k' in [0, k_slide) the source column of X, or -1 for a zero column.
std::vector<int64_t> lift_map(Pattern p, int64_t k, int64_t k_slide);

// X[m,k] -> X'[m,k_slide] (any dtype's bytes; zero bytes in padding columns).
void lift_activations(Pattern p, DType dtype, const void* x, int64_t m, int64_t k, void* x_lift,
                      int64_t k_slide);

// Every aligned run of 4 columns of W'[n,k_slide] holds at most 2 nonzeros.
struct TwoFourReport {
  int64_t windows = 0, violating_windows = 0;
  int64_t first_bad_row = -1, first_bad_window = -1;
  bool ok() const noexcept { return violating_windows == 0; }
};
TwoFourReport check_2to4(DType dtype, const void* w_slide, int64_t n, int64_t k_slide);

}  // namespace slidesparse
