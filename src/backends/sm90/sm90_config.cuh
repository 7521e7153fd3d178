// slidesparse sm90 backend: the structured-sparse configuration (CUTLASS Sm90GemmSparseConfig)
// shared by the compressor and every sparse GEMM instantiation: K-major A, metadata atoms of
// 64 rows x 128 k (8-bit inputs) or 64 rows x 64 k (16-bit inputs), i.e. tile k >= 128 / 64.
#pragma once

#include "cute/tensor.hpp"
#include "cute/atom/mma_traits_sm90_gmma.hpp"
#include "cutlass/layout/matrix.h"
#include "cutlass/gemm/gemm.h"
#include "cutlass/gemm/collective/builders/sm90_sparse_config.inl"
#include "cutlass/numeric_types.h"

namespace slidesparse::sm90 {

template <class Element>
struct SparseConfigOf {
  static constexpr bool kEightBit = cute::sizeof_bits_v<Element> == 8;
  using Config = cutlass::Sm90GemmSparseConfig<cute::sparse_elem<2, Element>, cute::GMMA::Major::K,
                                               cute::sparse_elem<8, uint8_t>,
                                               cute::conditional_t<kEightBit, cute::_128, cute::_64>>;
  static constexpr int kMetaAtomK = kEightBit ? 128 : 64;
};

}  // namespace slidesparse::sm90
