// slidesparse sm90 backend: the load-time compressor. A 2:4 check of W on the device (our kernel;
// -0.0 counts as zero), then CUTLASS's sm90 structured-sparse compressor
// (cutlass/transform/kernel/sm90_sparse_gemm_compressor.hpp, used as a library), configured with
// the same Sm90GemmSparseConfig as the GEMM instantiations (each of them static_asserts that).
// The CPU model of its output is compressed_layout.cpp; tests/gpu/gpu_sm90.cpp compares the two
// byte for byte.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "backends/sm90/sm90_config.cuh"
#include "backends/sm90/sm90_kernels.hpp"
#include "cutlass/transform/device/transform_universal_adapter.hpp"
#include "cutlass/transform/kernel/sparse_gemm_compressor.hpp"
#include "cutlass/util/packed_stride.hpp"

namespace slidesparse::sm90 {
namespace {

// One thread per group of 4 along k; a group with more than two nonzero elements (sign bit masked
// for floating-point codes) records its first element's flat index (the smallest one wins).
template <class U>
__global__ void check_24_kernel(const U* w, int64_t groups, U magnitude_mask, unsigned long long* first_bad) {
  const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g >= groups) return;
  int nz = 0;
#pragma unroll
  for (int i = 0; i < 4; ++i) nz += (w[4 * g + i] & magnitude_mask) != 0;
  if (nz > 2) atomicMin(first_bad, static_cast<unsigned long long>(4 * g));
}

template <class Element>
struct CompressorOf {
  using Config = typename SparseConfigOf<Element>::Config;
  using ProblemShape = cute::Shape<int, int, int, int>;
  using Kernel = cutlass::transform::kernel::StructuredSparseCompressor<ProblemShape, Element, cutlass::layout::RowMajor,
                                                                        Config, cutlass::arch::Sm90>;
  using Compressor = cutlass::transform::device::TransformUniversalAdapter<Kernel>;
  using StrideA = cutlass::gemm::TagToStrideA_t<cutlass::layout::RowMajor>;

  static typename Compressor::Arguments args(const void* w, int64_t n, int64_t k, void* values, void* meta) {
    const ProblemShape shape{int(n), 1, int(k), 1};
    const StrideA stride_a = cutlass::make_cute_packed_stride(StrideA{}, cute::make_shape(int(n), int(k), 1));
    cutlass::KernelHardwareInfo hw;
    hw.device_id = 0;
    hw.sm_count = 1;  // unused by the compressor (one CTA per metadata atom)
    return typename Compressor::Arguments{shape, {w, stride_a, values, meta}, {hw}};
  }
};

template <class Element>
size_t workspace_with(int64_t n, int64_t k) {
  using C = CompressorOf<Element>;
  return C::Compressor::get_workspace_size(C::args(nullptr, n, k, nullptr, nullptr));
}

// ws: the adapter's "workspace" (the kernel's shared storage size, never dereferenced as global
// memory by the sm90 compressor, but a real allocation honours the contract); null: allocated here
// stream-ordered and freed after the launch.
template <class Element>
cudaError_t compress_with(const void* w, int64_t n, int64_t k, void* values, void* meta, void* ws_given,
                          cudaStream_t stream) {
  using C = CompressorOf<Element>;
  typename C::Compressor::Arguments args = C::args(w, n, k, values, meta);
  if (C::Compressor::can_implement(args) != cutlass::Status::kSuccess) return cudaErrorInvalidValue;
  const size_t ws_bytes = C::Compressor::get_workspace_size(args);
  void* ws = ws_given;
  if (ws == nullptr && ws_bytes > 0) {
    const cudaError_t e = cudaMallocAsync(&ws, ws_bytes, stream);
    if (e != cudaSuccess) return e;
  }
  typename C::Compressor op;
  cutlass::Status s = op.initialize(args, ws, stream);
  if (s == cutlass::Status::kSuccess) s = op.run(stream);
  cudaError_t e = s == cutlass::Status::kSuccess ? cudaGetLastError() : cudaErrorLaunchFailure;
  if (ws != nullptr && ws_given == nullptr) {
    const cudaError_t f = cudaFreeAsync(ws, stream);
    if (e == cudaSuccess) e = f;
  }
  return e;
}

cudaError_t compress_dispatch(GemmPrecision p, const void* w, int64_t n, int64_t k, void* values, void* meta,
                              void* ws, cudaStream_t stream) {
  const CompressedLayout l = compressed_layout(p, n, k);
  cudaError_t e = cudaMemsetAsync(meta, 0, l.meta_bytes, stream);
  if (e != cudaSuccess) return e;
  switch (p) {
    case GemmPrecision::kE4M3: return compress_with<cutlass::float_e4m3_t>(w, n, k, values, meta, ws, stream);
    case GemmPrecision::kI8: return compress_with<int8_t>(w, n, k, values, meta, ws, stream);
    case GemmPrecision::kBF16: return compress_with<cutlass::bfloat16_t>(w, n, k, values, meta, ws, stream);
    case GemmPrecision::kF16: return compress_with<cutlass::half_t>(w, n, k, values, meta, ws, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace

cudaError_t compress_gpu(GemmPrecision p, const void* w, int64_t n, int64_t k, void* values, void* meta,
                         int64_t* bad_dev, int64_t* first_bad, cudaStream_t stream) {
  *first_bad = -1;
  if (n < 1 || k < 1 || k % 32 != 0) return cudaErrorInvalidValue;
  const int64_t groups = n * k / 4;
  const int threads = 256;
  const unsigned blocks = unsigned((groups + threads - 1) / threads);
  auto* bad = reinterpret_cast<unsigned long long*>(bad_dev);
  cudaError_t e = cudaMemsetAsync(bad, 0xFF, sizeof(unsigned long long), stream);
  if (e != cudaSuccess) return e;
  switch (p) {
    case GemmPrecision::kE4M3:
      check_24_kernel<uint8_t><<<blocks, threads, 0, stream>>>(static_cast<const uint8_t*>(w), groups, 0x7F, bad);
      break;
    case GemmPrecision::kI8:
      check_24_kernel<uint8_t><<<blocks, threads, 0, stream>>>(static_cast<const uint8_t*>(w), groups, 0xFF, bad);
      break;
    case GemmPrecision::kBF16:
    case GemmPrecision::kF16:
      check_24_kernel<uint16_t><<<blocks, threads, 0, stream>>>(static_cast<const uint16_t*>(w), groups, 0x7FFF, bad);
      break;
  }
  if ((e = cudaGetLastError()) != cudaSuccess) return e;
  unsigned long long host_bad = 0;
  if ((e = cudaMemcpyAsync(&host_bad, bad, sizeof(host_bad), cudaMemcpyDeviceToHost, stream)) != cudaSuccess) return e;
  if ((e = cudaStreamSynchronize(stream)) != cudaSuccess) return e;
  if (host_bad != ~0ull) {
    *first_bad = int64_t(host_bad);
    return cudaSuccess;
  }
  if ((e = compress_dispatch(p, w, n, k, values, meta, nullptr, stream)) != cudaSuccess) return e;
  return cudaStreamSynchronize(stream);
}

size_t compress_workspace_bytes(GemmPrecision p, int64_t n, int64_t k) {
  switch (p) {
    case GemmPrecision::kE4M3: return workspace_with<cutlass::float_e4m3_t>(n, k);
    case GemmPrecision::kI8: return workspace_with<int8_t>(n, k);
    case GemmPrecision::kBF16: return workspace_with<cutlass::bfloat16_t>(n, k);
    case GemmPrecision::kF16: return workspace_with<cutlass::half_t>(n, k);
  }
  return 0;
}

cudaError_t compress_gpu_async(GemmPrecision p, const void* w, int64_t n, int64_t k, void* values, void* meta,
                               void* ws, cudaStream_t stream) {
  if (n < 1 || k < 1 || k % 32 != 0) return cudaErrorInvalidValue;
  if (ws == nullptr && compress_workspace_bytes(p, n, k) > 0) return cudaErrorInvalidValue;  // would allocate
  return compress_dispatch(p, w, n, k, values, meta, ws, stream);
}

}  // namespace slidesparse::sm90
