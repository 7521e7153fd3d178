// sm90 instantiation sp_bf16_128x128x64_1x1_coop: 2:4 sparse (W the structured operand, wgmma.sp) bf16 (f32 accumulators), tile 128 channels x 128 tokens x
// 64 k, cluster 1x1, cooperative persistent mainloop; fused scale epilogue (sm90_gemm.cuh).
#include "backends/sm90/sm90_gemm.cuh"

namespace slidesparse::sm90 {
using Cfg_sp_bf16_128x128x64_1x1_coop =
    GemmConfig<GemmPrecision::kBF16, true, cute::Shape<cute::Int<128>, cute::Int<128>, cute::Int<64>>,
               cute::Shape<cute::Int<1>, cute::Int<1>, cute::_1>, cutlass::gemm::KernelTmaWarpSpecializedCooperative,
               cutlass::epilogue::TmaWarpSpecializedCooperative>;
}  // namespace slidesparse::sm90
SLIDESPARSE_SM90_KERNEL(sp_bf16_128x128x64_1x1_coop, Cfg_sp_bf16_128x128x64_1x1_coop, GemmPrecision::kBF16, true, 128, 128, 64, 1, 1,
                        "coop")
