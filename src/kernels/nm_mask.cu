// slidesparse kernels: the keep:group magnitude mask. Contract: nm_mask.cuh; definition:
// include/slidesparse/nm_mask.hpp.
//
// Design: one thread per group (flattened over rows x groups, 64-bit, grid-stride). A thread loads
// its group into registers, ranks every element against every other (rank = members with larger
// |w|, or equal |w| and a lower column; kept iff rank < keep) and writes its mask bytes and/or
// masked weights. The rank loop is unrolled over a compile-time bound kMaxG in {4, 8, 16, 32} >=
// group, so the arrays stay in registers; padding slots hold |w| = 0 at columns past every real
// one, which can never beat a real element. Adjacent threads own adjacent groups, so a warp's loads
// cover one contiguous span of the row and L1 merges them into full lines.
//
// Magnitudes are compared as the raw bit patterns with the sign cleared, in the element's own
// width: for IEEE f32/bf16/f16 non-negative values order like their bits, and the CPU's f32
// conversion is exact and monotone, so ranks and ties are the CPU's. NaN is any pattern above
// the dtype's +inf.
#include "kernels/nm_mask.cuh"

#include <algorithm>
#include <climits>

#include "slidesparse/nm_mask.hpp"

namespace slidesparse {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = int64_t(1) << 20;  // grid-stride beyond this

struct Args {
  const void* w;
  uint8_t* mask;
  void* w_out;
  unsigned long long* first_nan;
  int64_t rows, k, ldw, ldm, ldo, groups_per_row;
  int keep, group;
};

// Element traits: storage type, magnitude mask, +inf magnitude.
template <int kBytes>
struct Elem;
template <>
struct Elem<4> {
  using T = uint32_t;
  static constexpr uint32_t kAbs = 0x7fffffffu;
};
template <>
struct Elem<2> {
  using T = uint16_t;
  static constexpr uint32_t kAbs = 0x7fffu;
};

template <int kBytes, int kMaxG>
__global__ void __launch_bounds__(kThreads) nm_mask_kernel(Args a, uint32_t inf_bits) {
  using T = typename Elem<kBytes>::T;
  const T* w = static_cast<const T*>(a.w);
  T* w_out = static_cast<T*>(a.w_out);
  const int64_t total = a.rows * a.groups_per_row;
  for (int64_t gi = int64_t(blockIdx.x) * kThreads + threadIdx.x; gi < total;
       gi += int64_t(gridDim.x) * kThreads) {
    const int64_t r = gi / a.groups_per_row;
    const int64_t base = (gi - r * a.groups_per_row) * a.group;
    const int len = int(min(int64_t(a.group), a.k - base));
    const T* src = w + r * a.ldw + base;

    T raw[kMaxG];
    uint32_t mag[kMaxG];
#pragma unroll
    for (int o = 0; o < kMaxG; ++o) {
      raw[o] = o < len ? src[o] : T(0);
      mag[o] = uint32_t(raw[o]) & Elem<kBytes>::kAbs;
    }
    int nan_at = -1;
#pragma unroll
    for (int o = kMaxG - 1; o >= 0; --o)
      if (mag[o] > inf_bits) nan_at = o;  // padding slots are 0, never NaN

    uint32_t kept = 0;  // bit o: element o kept
    if (nan_at < 0) {
#pragma unroll
      for (int o = 0; o < kMaxG; ++o) {
        int rank = 0;
#pragma unroll
        for (int j = 0; j < kMaxG; ++j) rank += (mag[j] > mag[o]) | ((mag[j] == mag[o]) & (j < o));
        kept |= uint32_t(rank < a.keep) << o;
      }
    } else if (a.first_nan != nullptr) {
      atomicMin(a.first_nan, static_cast<unsigned long long>(r * a.k + base + nan_at));
    }

    if (a.mask != nullptr) {
      uint8_t* m = a.mask + r * a.ldm + base;
#pragma unroll
      for (int o = 0; o < kMaxG; ++o)
        if (o < len) m[o] = uint8_t((kept >> o) & 1u);
    }
    if (w_out != nullptr) {
      T* out = w_out + r * a.ldo + base;
#pragma unroll
      for (int o = 0; o < kMaxG; ++o)
        if (o < len) out[o] = ((kept >> o) & 1u) ? raw[o] : T(0);
    }
  }
}

template <int kBytes>
cudaError_t launch_bytes(const Args& a, uint32_t inf_bits, int blocks, cudaStream_t stream) {
  if (a.group <= 4)
    nm_mask_kernel<kBytes, 4><<<blocks, kThreads, 0, stream>>>(a, inf_bits);
  else if (a.group <= 8)
    nm_mask_kernel<kBytes, 8><<<blocks, kThreads, 0, stream>>>(a, inf_bits);
  else if (a.group <= 16)
    nm_mask_kernel<kBytes, 16><<<blocks, kThreads, 0, stream>>>(a, inf_bits);
  else
    nm_mask_kernel<kBytes, 32><<<blocks, kThreads, 0, stream>>>(a, inf_bits);
  return cudaGetLastError();
}

}  // namespace

const char* nm_mask_check(const NmMaskParams& p) noexcept {
  if (p.dtype != DType::kF32 && p.dtype != DType::kBF16 && p.dtype != DType::kF16)
    return "nm_mask: dtype must be f32, bf16 or f16";
  if (p.group < 1 || p.group > kNmMaxGroup) return "nm_mask: group must be in [1, 32]";
  if (p.keep < 0 || p.keep > p.group) return "nm_mask: keep must be in [0, group]";
  if (p.rows < 0 || p.k < 0) return "nm_mask: rows and k must be >= 0";
  if (p.ldw < p.k) return "nm_mask: ldw must be >= k";
  if (p.mask == nullptr && p.w_out == nullptr) return "nm_mask: no output (mask and w_out are both null)";
  if (p.mask != nullptr && p.ldm < p.k) return "nm_mask: ldm must be >= k";
  if (p.w_out != nullptr && p.ldo < p.k) return "nm_mask: ldo must be >= k";
  if (p.w_out != nullptr && p.w_out == p.w && p.ldo != p.ldw)
    return "nm_mask: in place (w_out == w) needs ldo == ldw";
  if (p.rows > 0 && p.k > 0 && p.w == nullptr) return "nm_mask: w is null";
  const size_t b = dtype_size(p.dtype);
  if (reinterpret_cast<uintptr_t>(p.w) % b != 0 || reinterpret_cast<uintptr_t>(p.w_out) % b != 0)
    return "nm_mask: w and w_out must be aligned to the element size";
  if (p.rows > 0 && p.k > 0 && p.rows > INT64_MAX / std::max<int64_t>(p.ldw, 1))
    return "nm_mask: rows * ldw overflows 64-bit indexing";
  return nullptr;
}

cudaError_t nm_mask(const NmMaskParams& p, cudaStream_t stream) {
  if (nm_mask_check(p) != nullptr) return cudaErrorInvalidValue;
  if (p.first_nan != nullptr) {
    const cudaError_t e = cudaMemsetAsync(p.first_nan, 0xff, sizeof(unsigned long long), stream);
    if (e != cudaSuccess) return e;
  }
  if (p.rows == 0 || p.k == 0) return cudaSuccess;
  Args a{};
  a.w = p.w;
  a.mask = p.mask;
  a.w_out = p.w_out;
  a.first_nan = p.first_nan;
  a.rows = p.rows;
  a.k = p.k;
  a.ldw = p.ldw;
  a.ldm = p.ldm;
  a.ldo = p.ldo;
  a.keep = p.keep;
  a.group = p.group;
  a.groups_per_row = (p.k + p.group - 1) / p.group;
  const int64_t total = p.rows * a.groups_per_row;
  const int blocks = int(std::min<int64_t>((total + kThreads - 1) / kThreads, kMaxBlocks));
  switch (p.dtype) {
    case DType::kF32: return launch_bytes<4>(a, 0x7f800000u, blocks, stream);
    case DType::kBF16: return launch_bytes<2>(a, 0x7f80u, blocks, stream);
    case DType::kF16: return launch_bytes<2>(a, 0x7c00u, blocks, stream);
    default: return cudaErrorInvalidValue;
  }
}

cudaError_t launch_nm_mask(const void* w, DType dtype, int64_t rows, int64_t k, int64_t ldw, int keep,
                           int group, uint8_t* mask_out, cudaStream_t stream) {
  NmMaskParams p;
  p.w = w;
  p.dtype = dtype;
  p.rows = rows;
  p.k = k;
  p.ldw = ldw;
  p.keep = keep;
  p.group = group;
  p.mask = mask_out;
  p.ldm = k;
  return nm_mask(p, stream);
}

}  // namespace slidesparse
