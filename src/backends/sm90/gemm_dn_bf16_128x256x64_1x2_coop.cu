// sm90 instantiation dn_bf16_128x256x64_1x2_coop: dense bf16 (f32 accumulators), tile 128 channels x 256 tokens x
// 64 k, cluster 1x2, cooperative persistent mainloop; fused scale epilogue (sm90_gemm.cuh).
#include "backends/sm90/sm90_gemm.cuh"

namespace slidesparse::sm90 {
using Cfg_dn_bf16_128x256x64_1x2_coop =
    GemmConfig<GemmPrecision::kBF16, false, cute::Shape<cute::Int<128>, cute::Int<256>, cute::Int<64>>,
               cute::Shape<cute::Int<1>, cute::Int<2>, cute::_1>, cutlass::gemm::KernelTmaWarpSpecializedCooperative,
               cutlass::epilogue::TmaWarpSpecializedCooperative>;
}  // namespace slidesparse::sm90
SLIDESPARSE_SM90_KERNEL(dn_bf16_128x256x64_1x2_coop, Cfg_dn_bf16_128x256x64_1x2_coop, GemmPrecision::kBF16, false, 128, 256, 64, 1, 2,
                        "coop")
