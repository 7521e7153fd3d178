// sm90 instantiation sp_e4m3_128x128x128_1x1_pingfa: 2:4 sparse (W the structured operand, wgmma.sp) e4m3 (f32 accumulators), tile 128 channels x 128 tokens x
// 128 k, cluster 1x1, ping-pong persistent mainloop, FP8 fast accumulation; fused scale epilogue (sm90_gemm.cuh).
#include "backends/sm90/sm90_gemm.cuh"

namespace slidesparse::sm90 {
using Cfg_sp_e4m3_128x128x128_1x1_pingfa =
    GemmConfig<GemmPrecision::kE4M3, true, cute::Shape<cute::Int<128>, cute::Int<128>, cute::Int<128>>,
               cute::Shape<cute::Int<1>, cute::Int<1>, cute::_1>, cutlass::gemm::KernelTmaWarpSpecializedPingpongFP8FastAccum,
               cutlass::epilogue::TmaWarpSpecialized>;
}  // namespace slidesparse::sm90
SLIDESPARSE_SM90_KERNEL(sp_e4m3_128x128x128_1x1_pingfa, Cfg_sp_e4m3_128x128x128_1x1_pingfa, GemmPrecision::kE4M3, true, 128, 128, 128, 1, 1,
                        "pingfa")
