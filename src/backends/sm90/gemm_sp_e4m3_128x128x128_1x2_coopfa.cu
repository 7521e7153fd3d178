// sm90 instantiation sp_e4m3_128x128x128_1x2_coopfa: 2:4 sparse (W the structured operand, wgmma.sp) e4m3 (f32 accumulators), tile 128 channels x 128 tokens x
// 128 k, cluster 1x2, cooperative persistent mainloop, FP8 fast accumulation (no periodic f32 promotion); fused scale epilogue (sm90_gemm.cuh).
#include "backends/sm90/sm90_gemm.cuh"

namespace slidesparse::sm90 {
using Cfg_sp_e4m3_128x128x128_1x2_coopfa =
    GemmConfig<GemmPrecision::kE4M3, true, cute::Shape<cute::Int<128>, cute::Int<128>, cute::Int<128>>,
               cute::Shape<cute::Int<1>, cute::Int<2>, cute::_1>, cutlass::gemm::KernelTmaWarpSpecializedCooperativeFP8FastAccum,
               cutlass::epilogue::TmaWarpSpecializedCooperative>;
}  // namespace slidesparse::sm90
SLIDESPARSE_SM90_KERNEL(sp_e4m3_128x128x128_1x2_coopfa, Cfg_sp_e4m3_128x128x128_1x2_coopfa, GemmPrecision::kE4M3, true, 128, 128, 128, 1, 2,
                        "coopfa")
