// sm90 instantiation dn_i8_128x256x128_1x2_coop: dense i8 (i32 accumulators), tile 128 channels x 256 tokens x
// 128 k, cluster 1x2, cooperative persistent mainloop; fused scale epilogue (sm90_gemm.cuh).
#include "backends/sm90/sm90_gemm.cuh"

namespace slidesparse::sm90 {
using Cfg_dn_i8_128x256x128_1x2_coop =
    GemmConfig<GemmPrecision::kI8, false, cute::Shape<cute::Int<128>, cute::Int<256>, cute::Int<128>>,
               cute::Shape<cute::Int<1>, cute::Int<2>, cute::_1>, cutlass::gemm::KernelTmaWarpSpecializedCooperative,
               cutlass::epilogue::TmaWarpSpecializedCooperative>;
}  // namespace slidesparse::sm90
SLIDESPARSE_SM90_KERNEL(dn_i8_128x256x128_1x2_coop, Cfg_dn_i8_128x256x128_1x2_coop, GemmPrecision::kI8, false, 128, 256, 128, 1, 2,
                        "coop")
