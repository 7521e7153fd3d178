// The read-only L2 scrub (src/kernels/l2_scrub.cuh).
#include "kernels/l2_scrub.cuh"

namespace slidesparse {
namespace {

__global__ void l2_scrub_kernel(const uint4* __restrict__ buf, size_t n16, uint32_t never, uint32_t* sink) {
  uint32_t acc = 0;
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n16; i += stride) {
    const uint4 v = __ldcg(buf + i);  // cache in L2 only
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == never && never != 0) *sink = acc;
}

}  // namespace

cudaError_t l2_scrub(const void* buf, size_t bytes, uint32_t never, uint32_t* sink, cudaStream_t stream) {
  const size_t n16 = bytes / 16;
  if (n16 == 0) return cudaSuccess;
  if (buf == nullptr || sink == nullptr || reinterpret_cast<uintptr_t>(buf) % 16 != 0) return cudaErrorInvalidValue;
  int device = 0, sms = 0;
  cudaError_t e = cudaGetDevice(&device);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (e != cudaSuccess) return e;
  constexpr int kThreads = 512;
  const size_t want = (n16 + kThreads - 1) / kThreads;
  const unsigned blocks = unsigned(want < size_t(sms) * 8 ? want : size_t(sms) * 8);
  l2_scrub_kernel<<<blocks, kThreads, 0, stream>>>(static_cast<const uint4*>(buf), n16, never, sink);
  return cudaGetLastError();
}

size_t l2_cache_bytes() {
  int device = 0, l2 = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return 0;
  if (cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device) != cudaSuccess) return 0;
  return size_t(l2 > 0 ? l2 : 0);
}

}  // namespace slidesparse
