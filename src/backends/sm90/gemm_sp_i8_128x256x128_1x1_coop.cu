// sm90 instantiation sp_i8_128x256x128_1x1_coop: 2:4 sparse (W the structured operand, wgmma.sp) i8 (i32 accumulators), tile 128 channels x 256 tokens x
// 128 k, cluster 1x1, cooperative persistent mainloop; fused scale epilogue (sm90_gemm.cuh).
#include "backends/sm90/sm90_gemm.cuh"

namespace slidesparse::sm90 {
using Cfg_sp_i8_128x256x128_1x1_coop =
    GemmConfig<GemmPrecision::kI8, true, cute::Shape<cute::Int<128>, cute::Int<256>, cute::Int<128>>,
               cute::Shape<cute::Int<1>, cute::Int<1>, cute::_1>, cutlass::gemm::KernelTmaWarpSpecializedCooperative,
               cutlass::epilogue::TmaWarpSpecializedCooperative>;
}  // namespace slidesparse::sm90
SLIDESPARSE_SM90_KERNEL(sp_i8_128x256x128_1x1_coop, Cfg_sp_i8_128x256x128_1x1_coop, GemmPrecision::kI8, true, 128, 256, 128, 1, 1,
                        "coop")
