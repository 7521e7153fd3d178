// sm90 instantiation sp_i8_128x128x128_1x1_ping: 2:4 sparse (W the structured operand, wgmma.sp) i8 (i32 accumulators), tile 128 channels x 128 tokens x
// 128 k, cluster 1x1, ping-pong persistent mainloop; fused scale epilogue (sm90_gemm.cuh).
#include "backends/sm90/sm90_gemm.cuh"

namespace slidesparse::sm90 {
using Cfg_sp_i8_128x128x128_1x1_ping =
    GemmConfig<GemmPrecision::kI8, true, cute::Shape<cute::Int<128>, cute::Int<128>, cute::Int<128>>,
               cute::Shape<cute::Int<1>, cute::Int<1>, cute::_1>, cutlass::gemm::KernelTmaWarpSpecializedPingpong,
               cutlass::epilogue::TmaWarpSpecialized>;
}  // namespace slidesparse::sm90
SLIDESPARSE_SM90_KERNEL(sp_i8_128x128x128_1x1_ping, Cfg_sp_i8_128x128x128_1x1_ping, GemmPrecision::kI8, true, 128, 128, 128, 1, 1,
                        "ping")
