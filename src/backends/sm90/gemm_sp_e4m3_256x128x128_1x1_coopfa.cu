// sm90 instantiation sp_e4m3_256x128x128_1x1_coopfa: 2:4 sparse (W the structured operand, wgmma.sp) e4m3 (f32 accumulators), tile 256 channels x 128 tokens x
// 128 k, cluster 1x1, cooperative persistent mainloop, FP8 fast accumulation (no periodic f32 promotion); fused scale epilogue (sm90_gemm.cuh).
#include "backends/sm90/sm90_gemm.cuh"

namespace slidesparse::sm90 {
using Cfg_sp_e4m3_256x128x128_1x1_coopfa =
    GemmConfig<GemmPrecision::kE4M3, true, cute::Shape<cute::Int<256>, cute::Int<128>, cute::Int<128>>,
               cute::Shape<cute::Int<1>, cute::Int<1>, cute::_1>, cutlass::gemm::KernelTmaWarpSpecializedCooperativeFP8FastAccum,
               cutlass::epilogue::TmaWarpSpecializedCooperative>;
}  // namespace slidesparse::sm90
SLIDESPARSE_SM90_KERNEL(sp_e4m3_256x128x128_1x1_coopfa, Cfg_sp_e4m3_256x128x128_1x1_coopfa, GemmPrecision::kE4M3, true, 256, 128, 128, 1, 1,
                        "coopfa")
