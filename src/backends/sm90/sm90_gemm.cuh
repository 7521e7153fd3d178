// slidesparse sm90 backend: one CUTLASS 3.x GEMM configuration (CollectiveBuilder, TMA,
// warp-specialized persistent schedules) with the fused scale epilogue as an epilogue visitor tree.
// Included by exactly one .cu per instantiation (gemm_*.cu), which defines the configuration and
// calls SLIDESPARSE_SM90_KERNEL. See sm90_kernels.hpp for the orientation and the epilogue.
#pragma once

#include <cuda_runtime_api.h>

#include "cute/tensor.hpp"
#include "cutlass/cutlass.h"
#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/epilogue/fusion/sm90_callbacks_tma_warpspecialized.hpp"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/gemm/dispatch_policy.hpp"
#include "cutlass/gemm/kernel/gemm_universal.hpp"
#include "cutlass/util/packed_stride.hpp"

#include "backends/sm90/sm90_config.cuh"
#include "backends/sm90/sm90_kernels.hpp"

namespace slidesparse::sm90 {

template <GemmPrecision P>
struct InputOf;
template <>
struct InputOf<GemmPrecision::kE4M3> {
  using Element = cutlass::float_e4m3_t;
  using Acc = float;
};
template <>
struct InputOf<GemmPrecision::kI8> {
  using Element = int8_t;
  using Acc = int32_t;
};
template <>
struct InputOf<GemmPrecision::kBF16> {
  using Element = cutlass::bfloat16_t;
  using Acc = float;
};

// Sparse: OpClassSparseTensorOp with W as A; dense: OpClassTensorOp, same everything else.
template <GemmPrecision P, bool Sparse, class TileShape, class ClusterShape, class MainSchedule,
          class EpiSchedule>
struct GemmConfig {
  using Element = typename InputOf<P>::Element;
  using Acc = typename InputOf<P>::Acc;
  using ElementD = cutlass::bfloat16_t;
  using OpClass = cute::conditional_t<Sparse, cutlass::arch::OpClassSparseTensorOp, cutlass::arch::OpClassTensorOp>;
  static constexpr int kAlignIn = 16 / sizeof(Element);
  static constexpr int kAlignD = 8;
  static constexpr auto kRound = cutlass::FloatRoundStyle::round_to_nearest;

  // Epilogue visitor tree: ((acc * s_x[token]) * s_w[channel]) + bias[channel] -> bf16.
  // Tokens are CUTLASS N (a row vector broadcast), channels CUTLASS M (a column vector).
  using TokenVec = cutlass::epilogue::fusion::Sm90RowBroadcast<0, TileShape, float, float,
                                                               cute::Stride<cute::_0, cute::_1, int64_t>>;
  using ChannelVec = cutlass::epilogue::fusion::Sm90ColBroadcast<0, TileShape, float, float,
                                                                 cute::Stride<cute::_1, cute::_0, int64_t>>;
  using ScaleX = cutlass::epilogue::fusion::Sm90EVT<
      cutlass::epilogue::fusion::Sm90Compute<cutlass::multiplies, float, float, kRound>,
      cutlass::epilogue::fusion::Sm90AccFetch, TokenVec>;
  using ScaleW = cutlass::epilogue::fusion::Sm90EVT<
      cutlass::epilogue::fusion::Sm90Compute<cutlass::multiplies, float, float, kRound>, ScaleX, ChannelVec>;
  using Fusion = cutlass::epilogue::fusion::Sm90EVT<
      cutlass::epilogue::fusion::Sm90Compute<cutlass::plus, ElementD, float, kRound>, ScaleW, ChannelVec>;

  using CollectiveEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, OpClass, TileShape, ClusterShape, cutlass::epilogue::collective::EpilogueTileAuto,
      Acc, float, void, cutlass::layout::ColumnMajor, kAlignD, ElementD, cutlass::layout::ColumnMajor, kAlignD,
      EpiSchedule, Fusion>::CollectiveOp;

  using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, OpClass, Element, cutlass::layout::RowMajor, kAlignIn, Element,
      cutlass::layout::ColumnMajor, kAlignIn, Acc, TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(
          sizeof(typename CollectiveEpilogue::SharedStorage))>,
      MainSchedule>::CollectiveOp;

  // Every sparse kernel reads the operand the one compressor writes (sm90_compress.cu).
  static constexpr bool kSameSparseFormat = [] {
    if constexpr (Sparse)
      return cute::is_same_v<typename CollectiveMainloop::SparseConfig, typename SparseConfigOf<Element>::Config>;
    else
      return true;
  }();
  static_assert(kSameSparseFormat, "this tile's sparse operand layout differs from the compressor's (tile k too small)");

  using ProblemShape = cute::Shape<int, int, int, int>;
  using GemmKernel = cutlass::gemm::kernel::GemmUniversal<ProblemShape, CollectiveMainloop, CollectiveEpilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<GemmKernel>;
  using Arguments = typename Gemm::Arguments;

  static Arguments arguments(const Args& a) {
    const ProblemShape shape{a.n, a.m, a.k, 1};
    Arguments args{};
    args.mode = cutlass::gemm::GemmUniversalMode::kGemm;
    args.problem_shape = shape;
    using StrideB = typename GemmKernel::StrideB;
    const StrideB stride_b = cutlass::make_cute_packed_stride(StrideB{}, cute::make_shape(a.m, a.k, 1));
    if constexpr (Sparse) {
      using SparseConfig = typename CollectiveMainloop::SparseConfig;
      args.mainloop = {static_cast<const Element*>(a.w), SparseConfig::fill_layoutA(shape),
                       static_cast<const Element*>(a.x), stride_b,
                       static_cast<const typename CollectiveMainloop::ElementE*>(a.meta),
                       SparseConfig::fill_layoutE(shape)};
    } else {
      using StrideA = typename GemmKernel::StrideA;
      args.mainloop = {static_cast<const Element*>(a.w),
                       cutlass::make_cute_packed_stride(StrideA{}, cute::make_shape(a.n, a.k, 1)),
                       static_cast<const Element*>(a.x), stride_b};
    }
    using StrideD = typename GemmKernel::StrideD;
    StrideD stride_d{};
    cute::get<1>(stride_d) = a.ldy;
    cute::get<2>(stride_d) = int64_t(a.ldy) * a.m;
    args.epilogue.ptr_C = nullptr;
    args.epilogue.dC = stride_d;
    args.epilogue.ptr_D = static_cast<ElementD*>(a.y);
    args.epilogue.dD = stride_d;
    using TokenArgs = typename TokenVec::Arguments;
    using ChannelArgs = typename ChannelVec::Arguments;
    args.epilogue.thread = {
        {                                          // scale_w: (...) * s_w
         {                                         // scale_x: acc * s_x
          {},                                      //   acc
          TokenArgs{a.s_x, 1.0f, {}},              //   s_x (null: 1)
          {}},                                     //   multiplies
         ChannelArgs{a.s_w, 1.0f, {}},             // s_w (null: 1)
         {}},                                      // multiplies
        ChannelArgs{a.bias, 0.0f, {}},             // bias (null: 0)
        {}};                                       // plus
    args.hw_info.device_id = 0;
    args.hw_info.sm_count = a.sm_count;
    return args;
  }

  static const char* check(const Args& a) {
    if (a.ldy % kAlignD != 0) return "ldy must be a multiple of 8 (16-byte rows of bf16 Y)";
    if (a.k % (Sparse ? 32 : 16) != 0) return Sparse ? "k must be a multiple of 32" : "k must be a multiple of 16";
    const cutlass::Status s = Gemm::can_implement(arguments(a));
    return s == cutlass::Status::kSuccess ? nullptr : cutlass::cutlassGetStatusString(s);
  }
  static size_t workspace_bytes(const Args& a) { return Gemm::get_workspace_size(arguments(a)); }
  static cudaError_t prepare() {
    const int smem = int(GemmKernel::SharedStorageSize);
    if (smem >= (48 << 10))
      return cudaFuncSetAttribute(cutlass::device_kernel<GemmKernel>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    return cudaSuccess;
  }
  static cudaError_t run(const Args& a, void* workspace, cudaStream_t stream) {
    const Arguments args = arguments(a);
    typename GemmKernel::Params params = GemmKernel::to_underlying_arguments(args, workspace);
    // Workspace (tile scheduler state) initialization: nothing to do for the data-parallel
    // persistent scheduler without split-k, but keep CUTLASS's contract.
    const cutlass::Status init = GemmKernel::initialize_workspace(args, workspace, stream, nullptr);
    if (init != cutlass::Status::kSuccess) return cudaErrorInvalidValue;
    const cutlass::Status s = Gemm::run(params, stream);
    if (s != cutlass::Status::kSuccess) {
      const cudaError_t e = cudaGetLastError();
      return e != cudaSuccess ? e : cudaErrorLaunchFailure;
    }
    return cudaSuccess;
  }
};

}  // namespace slidesparse::sm90

// Defines `const Kernel kernel_<ID>` for the registry (sm90_registry.cpp).
#define SLIDESPARSE_SM90_KERNEL(ID, CONFIG, PREC, SPARSE, TM, TN, TK, CM, CN, SCHED)                          \
  namespace slidesparse::sm90 {                                                                             \
  extern const Kernel kernel_##ID;                                                                          \
  const Kernel kernel_##ID{"sm90_" #ID, PREC, SPARSE, TM, TN, TK, CM, CN, SCHED, &CONFIG::check,            \
                           &CONFIG::workspace_bytes, &CONFIG::prepare, &CONFIG::run};                       \
  }
