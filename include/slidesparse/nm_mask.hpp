// slidesparse: the general keep:group magnitude mask (Sparse-BitNet's dynamic N:M mask, BRIEF
// section 7), the CPU definition that the GPU kernel (src/kernels/nm_mask.cuh) reproduces bit for bit.
//
// W[rows, k] (row stride ld elements) is cut along k into aligned groups of `group` columns; in each
// group exactly min(keep, len) positions are kept (len = group, or k - base for a partial last
// group): those with the largest |w|, and among equal |w| the lower column. -0.0 and +0.0 are equal
// (both |w| = 0), +-inf are the largest magnitudes. NaN has no order: a NaN anywhere in a group is an
// error (kInvalidData naming row and column) on the CPU; the kernel keeps nothing in that group and
// reports the first NaN's index instead (it cannot throw).
//
// Relation to pruning (prune.hpp): for keep = 2N-2, group = 2N the kept NONZEROS are exactly the
// ones magnitude pruning keeps (both rank by |w| with ties to the lower index, and every nonzero
// outranks every zero), so the masked weight (dropped -> +0, kept bits unchanged) equals
// prune_inplace(magnitude)'s output -- bit for bit, except that a -0.0 the mask drops becomes +0.0
// where pruning leaves it. The masks differ only on zeros: pruning leaves a group with few nonzeros
// untouched and calls its zeros "kept"; this mask always marks exactly min(keep, len) positions.
#pragma once

#include <cstdint>
#include <string_view>

#include "slidesparse/types.hpp"

namespace slidesparse {

inline constexpr int kNmMaxGroup = 32;  // the kernel ranks a group in registers

// Validates keep/group: 1 <= group <= kNmMaxGroup, 0 <= keep <= group (kInvalidArgument otherwise).
void nm_check_keep_group(int keep, int group);

// One row of float values -> mask[0:k] (1 kept, 0 dropped). Returns the number kept.
int64_t nm_mask_row(const float* w, int64_t k, int keep, int group, uint8_t* mask,
                    std::string_view layer = {}, int64_t row = 0);

// W[rows, k] of dtype f32, bf16 or f16 with row stride ld (>= k) -> mask[rows, k] (row stride k).
// Optionally also the masked weight w_out[rows, k] (row stride k, same dtype): kept elements keep
// their exact bits, dropped ones become +0. w_out may be null. Returns the number kept.
int64_t nm_mask(DType dtype, const void* w, int64_t rows, int64_t k, int64_t ld, int keep,
                int group, uint8_t* mask, void* w_out = nullptr, std::string_view layer = {});

}  // namespace slidesparse
