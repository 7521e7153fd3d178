// slidesparse kernels: weight preparation on the GPU (contract: weight_prep.cuh; formulas:
// docs/FORMAT.md sections 2-4). Memory-bound passes over W, run once at load time or once per
// training step, so the kernels favour plain coalesced loops over cleverness:
//   quantize_weight      one CTA per output channel: pass 1 reduces max |w| over the pruned row,
//                        pass 2 re-reads the row (from L2) and writes the codes.
//   slide_weight_device  one thread per (row, slid group): the greedy placement streamed window by
//                        window from the group's nonzero bit mask (no per-thread arrays).
//   scan_weight          one thread per (row, group of 2N): finiteness / NaN codes / nonzero count.
#include "kernels/weight_prep.cuh"

#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <climits>

#include "slidesparse/pattern.hpp"
#include "slidesparse/quant.hpp"

namespace slidesparse {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr unsigned kMaxGrid = 1u << 20;  // grid-stride loops cover the rest

template <class T>
bool aligned_to(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % sizeof(T) == 0;
}

// ---- element access -------------------------------------------------------------------------------

// The input element as f32, exactly (bf16 is the top half of an f32; f16 widens exactly).
__device__ __forceinline__ float load_f32(const void* row, int64_t c, DType t) {
  switch (t) {
    case DType::kF32: return static_cast<const float*>(row)[c];
    case DType::kBF16: return __uint_as_float(uint32_t(static_cast<const uint16_t*>(row)[c]) << 16);
    default: return __half2float(__ushort_as_half(static_cast<const uint16_t*>(row)[c]));
  }
}

// f32 -> bf16, round to nearest even (finite inputs; the core's f32_to_bf16 for those).
__device__ __forceinline__ uint16_t bf16_rn(float v) {
  uint32_t x = __float_as_uint(v);
  x += 0x7fffu + ((x >> 16) & 1u);
  return uint16_t(x >> 16);
}

// E4M3 "fn", saturating, round to nearest even: cvt.rn.satfinite.e4m3x2.f32 on sm_89+ (the
// header's exact emulation below), the same encoder quant_lift uses and tests compare with
// f32_to_e4m3. -0 (0x80) is stored as +0.
__device__ __forceinline__ uint8_t e4m3_code(float v) {
  const uint8_t c = uint8_t(__nv_cvt_float2_to_fp8x2(make_float2(v, 0.0f), __NV_SATFINITE, __NV_E4M3) & 0xffu);
  return c == 0x80 ? uint8_t(0) : c;
}

// clamp(rint(v), -128, 127) in one instruction (round half to even, saturating).
__device__ __forceinline__ uint8_t i8_code(float v) {
  uint32_t q;
  asm("cvt.rni.sat.s8.f32 %0, %1;" : "=r"(q) : "f"(v));
  return uint8_t(q & 0xffu);
}

// Element size of the dtypes these kernels take (dtype_size is host code).
__host__ __device__ __forceinline__ int64_t elem_bytes(DType t) {
  return t == DType::kF32 ? 4 : (t == DType::kBF16 || t == DType::kF16) ? 2 : 1;
}

__device__ __forceinline__ void report(uint64_t* status, int word, uint64_t index) {
  if (status != nullptr) atomicMin(reinterpret_cast<unsigned long long*>(status) + word, (unsigned long long)index);
}

// ---- quantize_weight ---------------------------------------------------------------------------

struct QArgs {
  const void* w;
  DType in;
  int64_t n, k, ldw;
  const uint8_t* keep;
  int64_t ldm;
  void* q;
  int64_t ldq;
  float* scale;
  uint64_t* status;
};

// The pruned value of W[r, c]: a dropped NONZERO becomes +0; zeros (either sign) and kept values
// keep their exact value (prune_inplace's rule applied through the mask).
__device__ __forceinline__ float pruned(const void* wr, const uint8_t* mr, int64_t c, DType in) {
  const float v = load_f32(wr, c, in);
  return (mr != nullptr && mr[c] == 0) ? 0.0f : v;
}

template <DType kOut>
__global__ void __launch_bounds__(kThreads) quantize_weight_kernel(const QArgs a) {
  __shared__ uint32_t warp_max[kWarps];
  __shared__ int warp_bad[kWarps];
  constexpr bool kQuant = kOut != DType::kBF16;
  constexpr float kQ = kOut == DType::kI8 ? kI8Max : kE4M3Max;
  for (int64_t r = blockIdx.x; r < a.n; r += gridDim.x) {
    const void* wr = static_cast<const uint8_t*>(a.w) + r * a.ldw * elem_bytes(a.in);
    const uint8_t* mr = a.keep != nullptr ? a.keep + r * a.ldm : nullptr;
    // Pass 1: max |pruned w| as f32 bits (non-negative floats order like their bits) and the first
    // non-finite input element (dropped ones included: the core rejects those too).
    uint32_t mx = 0;
    int bad = 0;
    for (int64_t c = threadIdx.x; c < a.k; c += blockDim.x) {
      const float v = load_f32(wr, c, a.in);
      if ((__float_as_uint(v) & 0x7f800000u) == 0x7f800000u) {
        bad = 1;
        report(a.status, kStatusNonFinite, uint64_t(r * a.k + c));
      }
      if (kQuant && !(mr != nullptr && mr[c] == 0)) mx = max(mx, __float_as_uint(v) & 0x7fffffffu);
    }
    mx = __reduce_max_sync(0xffffffffu, mx);
    bad = __reduce_or_sync(0xffffffffu, bad);
    if ((threadIdx.x & 31) == 0) {
      warp_max[threadIdx.x >> 5] = mx;
      warp_bad[threadIdx.x >> 5] = bad;
    }
    __syncthreads();
    mx = 0;
    bad = 0;
    for (int w = 0; w < int(blockDim.x >> 5); ++w) {
      mx = max(mx, warp_max[w]);
      bad |= warp_bad[w];
    }
    float inv = 0.0f, s = 1.0f;
    if (kQuant) {
      if (bad) {
        s = __uint_as_float(0x7fc00000u);  // NaN: this channel's outputs must not look valid
      } else if (mx != 0) {
        // Clamping amax before either division keeps both finite for denormal-tiny rows.
        const float amax = fmaxf(__uint_as_float(mx), kMinAmax);
        inv = __fdiv_rn(kQ, amax);
        s = __fdiv_rn(amax, kQ);
      }  // amax == 0: inv = 0 maps every element to +0 and the scale stays 1
      if (threadIdx.x == 0) a.scale[r] = s;
    }
    // Pass 2: the row again (it is in L2), codes for c < k and zeros for the padding columns.
    if constexpr (kQuant) {
      uint8_t* qr = static_cast<uint8_t*>(a.q) + r * a.ldq;
      for (int64_t c = threadIdx.x; c < a.ldq; c += blockDim.x) {
        uint8_t code = 0;
        if (c < a.k && !bad) {
          const float x = __fmul_rn(pruned(wr, mr, c, a.in), inv);
          code = kOut == DType::kI8 ? i8_code(x) : e4m3_code(x);
        }
        qr[c] = code;
      }
    } else {
      uint16_t* qr = static_cast<uint16_t*>(a.q) + r * a.ldq;
      for (int64_t c = threadIdx.x; c < a.ldq; c += blockDim.x)
        qr[c] = c < a.k ? bf16_rn(pruned(wr, mr, c, a.in)) : uint16_t(0);
    }
    __syncthreads();  // warp_max / warp_bad are reused by the next row
  }
}

// ---- slide_weight_device -----------------------------------------------------------------------

struct SArgs {
  const void* q;
  void* ws;
  int64_t n, k, ldq, k_slide, ldws;
  int64_t groups, slid_groups;  // ceil(k/2N), ceil(k_slide / 4(N-1))
  int n_pat;                    // N
  uint32_t zmask;               // bits that make an element nonzero
  uint64_t* status;
};

template <class U>
__global__ void __launch_bounds__(kThreads) slide_weight_kernel(const SArgs a) {
  const int group = 2 * a.n_pat, sg = 4 * (a.n_pat - 1), keep = 2 * a.n_pat - 2;
  const int64_t total = a.n * a.slid_groups;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = idx / a.slid_groups, j = idx - r * a.slid_groups;
    U* dst = static_cast<U*>(a.ws) + r * a.ldws + j * sg;
    const int cols = int(min(int64_t(sg), a.k_slide - j * sg));
    if (j >= a.groups) {  // padding past the last group
      for (int c = 0; c < cols; ++c) dst[c] = U(0);
      continue;
    }
    const U* src = static_cast<const U*>(a.q) + r * a.ldq + j * group;
    const int len = int(min(int64_t(group), a.k - j * group));
    uint32_t nz = 0;  // bit o: offset o of the group is nonzero
    for (int o = 0; o < len; ++o) nz |= uint32_t((uint32_t(src[o]) & a.zmask) != 0) << o;
    if (__popc(nz) > keep) {
      report(a.status, kStatusDenseGroup, uint64_t(r * a.groups + j));
      for (int c = 0; c < cols; ++c) dst[c] = U(0);
      continue;
    }
    // Greedy placement (FORMAT.md section 4): window w takes the first two unplaced nonzeros that
    // lie inside it (offsets < 2w + 4). Every nonzero left of 2w was placed by an earlier window, so
    // "unplaced" is the set bits of `left` and the lowest one is the next candidate.
    uint32_t left = nz;
    for (int w = 0; w < a.n_pat - 1; ++w) {
      uint32_t here = 0;  // offsets placed in this window
      for (int t = 0; t < 2 && left != 0; ++t) {
        const int o = __ffs(left) - 1;
        if (o >= 2 * w + 4) break;
        here |= 1u << o;
        left &= left - 1;
      }
#pragma unroll
      for (int l = 0; l < 4; ++l) {
        const int o = 2 * w + l;
        dst[4 * w + l] = (here >> o & 1u) ? src[o] : U(0);
      }
    }
  }
}

// ---- scan_weight -------------------------------------------------------------------------------

struct ScanArgs {
  const void* w;
  DType dtype;
  int64_t n, k, ldw;
  int span;          // elements per thread: 2N with a pattern, else 32
  int keep;          // > span: no pattern check
  int64_t spans;     // ceil(k / span)
  const float* scale;
  uint64_t* status;
};

__device__ __forceinline__ void classify(const void* row, int64_t c, DType t, bool& nonzero, bool& nonfinite) {
  switch (t) {
    case DType::kF32: {
      const uint32_t b = static_cast<const uint32_t*>(row)[c];
      nonzero = (b & 0x7fffffffu) != 0;
      nonfinite = (b & 0x7f800000u) == 0x7f800000u;
      return;
    }
    case DType::kBF16:
    case DType::kF16: {
      const uint16_t h = static_cast<const uint16_t*>(row)[c];
      const uint16_t e = t == DType::kBF16 ? 0x7f80 : 0x7c00;
      nonzero = (h & 0x7fff) != 0;
      nonfinite = (h & e) == e;
      return;
    }
    case DType::kE4M3: {
      const uint8_t b = static_cast<const uint8_t*>(row)[c];
      nonzero = (b & 0x7f) != 0;
      nonfinite = (b & 0x7f) == 0x7f;  // the NaN codes (no infinities in E4M3 "fn")
      return;
    }
    default: {  // i8
      nonzero = static_cast<const uint8_t*>(row)[c] != 0;
      nonfinite = false;
      return;
    }
  }
}

__global__ void __launch_bounds__(kThreads) scan_weight_kernel(const ScanArgs a) {
  const int64_t total = a.n * a.spans;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t idx = first; idx < total; idx += stride) {
    const int64_t r = idx / a.spans, s = idx - r * a.spans;
    const void* row = static_cast<const uint8_t*>(a.w) + r * a.ldw * elem_bytes(a.dtype);
    const int64_t c0 = s * a.span, c1 = min(a.k, c0 + a.span);
    int cnt = 0;
    for (int64_t c = c0; c < c1; ++c) {
      bool nonzero = false, nonfinite = false;
      classify(row, c, a.dtype, nonzero, nonfinite);
      cnt += nonzero;
      if (nonfinite) report(a.status, kStatusNonFinite, uint64_t(r * a.k + c));
    }
    if (cnt > a.keep) report(a.status, kStatusDenseGroup, uint64_t(idx));
  }
  if (a.scale != nullptr)
    for (int64_t r = first; r < a.n; r += stride) {
      const float s = a.scale[r];
      if (!(isfinite(s) && s > 0.0f)) report(a.status, kStatusBadScale, uint64_t(r));
    }
}

unsigned grid_for(int64_t work, int threads) {
  return unsigned(std::clamp<int64_t>((work + threads - 1) / threads, 1, kMaxGrid));
}

bool is_16bit_float(DType t) { return t == DType::kBF16 || t == DType::kF16; }

}  // namespace

cudaError_t weight_prep_status_reset(uint64_t* status_dev, cudaStream_t stream) {
  if (status_dev == nullptr) return cudaErrorInvalidValue;
  return cudaMemsetAsync(status_dev, 0xFF, kStatusWords * sizeof(uint64_t), stream);
}

const char* quantize_weight_check(const QuantizeWeightParams& p) noexcept {
  if (p.in_dtype != DType::kF32 && !is_16bit_float(p.in_dtype))
    return "quantize_weight: in_dtype must be f32, bf16 or f16";
  if (p.out_dtype != DType::kI8 && p.out_dtype != DType::kE4M3 && p.out_dtype != DType::kBF16)
    return "quantize_weight: out_dtype must be i8, e4m3 or bf16";
  if (p.n < 0 || p.k < 0) return "quantize_weight: n and k must be non-negative";
  if (p.n == 0) return nullptr;
  if (p.ldw < p.k || p.ldq < p.k) return "quantize_weight: ldw and ldq must be >= k";
  if (p.keep != nullptr && p.ldm < p.k) return "quantize_weight: ldm must be >= k";
  if (p.ldq > 0 && p.q == nullptr) return "quantize_weight: q is null";
  if (p.k > 0 && p.w == nullptr) return "quantize_weight: w is null";
  if (p.out_dtype != DType::kBF16 && p.scale == nullptr) return "quantize_weight: scale is null (i8 / e4m3)";
  if (p.in_dtype == DType::kF32 ? !aligned_to<float>(p.w) : !aligned_to<uint16_t>(p.w))
    return "quantize_weight: w is not aligned to its element size";
  if (p.out_dtype == DType::kBF16 && !aligned_to<uint16_t>(p.q)) return "quantize_weight: q is not 2-byte aligned";
  if (!aligned_to<float>(p.scale)) return "quantize_weight: scale is not 4-byte aligned";
  return nullptr;
}

cudaError_t quantize_weight(const QuantizeWeightParams& p, cudaStream_t stream) {
  if (quantize_weight_check(p) != nullptr) return cudaErrorInvalidValue;
  if (p.n == 0 || p.ldq == 0) return cudaSuccess;
  const QArgs a{p.w, p.in_dtype, p.n, p.k, p.ldw, p.keep, p.ldm, p.q, p.ldq, p.scale, p.status};
  const unsigned grid = unsigned(std::min<int64_t>(p.n, kMaxGrid));
  switch (p.out_dtype) {
    case DType::kI8: quantize_weight_kernel<DType::kI8><<<grid, kThreads, 0, stream>>>(a); break;
    case DType::kE4M3: quantize_weight_kernel<DType::kE4M3><<<grid, kThreads, 0, stream>>>(a); break;
    default: quantize_weight_kernel<DType::kBF16><<<grid, kThreads, 0, stream>>>(a); break;
  }
  return cudaGetLastError();
}

const char* slide_weight_device_check(const SlideWeightParams& p) noexcept {
  if (p.dtype != DType::kI8 && p.dtype != DType::kE4M3 && !is_16bit_float(p.dtype))
    return "slide_weight_device: dtype must be i8, e4m3, bf16 or f16";
  if (p.pattern_n < kMinN || p.pattern_n > kMaxN) return "slide_weight_device: pattern_n must be in 2..16";
  if (p.n < 0 || p.k < 0 || p.k_slide < 0) return "slide_weight_device: n, k and k_slide must be non-negative";
  const int64_t need = (p.k + 2 * p.pattern_n - 1) / (2 * p.pattern_n) * (4 * (p.pattern_n - 1));
  if (p.k_slide < need) return "slide_weight_device: k_slide is below ceil(k/2N) * 4(N-1)";
  if (p.n == 0) return nullptr;
  if (p.ldq < p.k || p.ldws < p.k_slide) return "slide_weight_device: ldq must be >= k and ldws >= k_slide";
  if ((p.k > 0 && p.q == nullptr) || (p.k_slide > 0 && p.ws == nullptr)) return "slide_weight_device: q or ws is null";
  if (is_16bit_float(p.dtype) && (!aligned_to<uint16_t>(p.q) || !aligned_to<uint16_t>(p.ws)))
    return "slide_weight_device: 16-bit q and ws must be 2-byte aligned";
  return nullptr;
}

cudaError_t slide_weight_device(const SlideWeightParams& p, cudaStream_t stream) {
  if (slide_weight_device_check(p) != nullptr) return cudaErrorInvalidValue;
  if (p.n == 0 || p.k_slide == 0) return cudaSuccess;
  SArgs a{};
  a.q = p.q;
  a.ws = p.ws;
  a.n = p.n;
  a.k = p.k;
  a.ldq = p.ldq;
  a.k_slide = p.k_slide;
  a.ldws = p.ldws;
  a.n_pat = p.pattern_n;
  a.groups = (p.k + 2 * p.pattern_n - 1) / (2 * p.pattern_n);
  const int64_t sg = 4 * (p.pattern_n - 1);
  a.slid_groups = (p.k_slide + sg - 1) / sg;
  a.zmask = p.dtype == DType::kI8 ? 0xffu : p.dtype == DType::kE4M3 ? 0x7fu : 0x7fffu;
  a.status = p.status;
  const unsigned grid = grid_for(p.n * a.slid_groups, kThreads);
  if (is_16bit_float(p.dtype)) {
    slide_weight_kernel<uint16_t><<<grid, kThreads, 0, stream>>>(a);
  } else {
    slide_weight_kernel<uint8_t><<<grid, kThreads, 0, stream>>>(a);
  }
  return cudaGetLastError();
}

const char* scan_weight_check(const WeightScanParams& p) noexcept {
  if (p.dtype != DType::kF32 && !is_16bit_float(p.dtype) && p.dtype != DType::kI8 && p.dtype != DType::kE4M3)
    return "scan_weight: dtype must be f32, bf16, f16, i8 or e4m3";
  if (p.pattern_n != 0 && (p.pattern_n < kMinN || p.pattern_n > kMaxN))
    return "scan_weight: pattern_n must be 0 or in 2..16";
  if (p.n < 0 || p.k < 0) return "scan_weight: n and k must be non-negative";
  if (p.status == nullptr) return "scan_weight: status is null";
  if (p.n == 0) return nullptr;
  if (p.ldw < p.k) return "scan_weight: ldw must be >= k";
  if (p.k > 0 && p.w == nullptr) return "scan_weight: w is null";
  if (dtype_size(p.dtype) > 1 && reinterpret_cast<uintptr_t>(p.w) % dtype_size(p.dtype) != 0)
    return "scan_weight: w is not aligned to its element size";
  return nullptr;
}

cudaError_t scan_weight(const WeightScanParams& p, cudaStream_t stream) {
  if (scan_weight_check(p) != nullptr) return cudaErrorInvalidValue;
  if (p.n == 0) return cudaSuccess;
  ScanArgs a{};
  a.w = p.w;
  a.dtype = p.dtype;
  a.n = p.n;
  a.k = p.k;
  a.ldw = p.ldw;
  a.span = p.pattern_n != 0 ? 2 * p.pattern_n : 32;
  a.keep = p.pattern_n != 0 ? 2 * p.pattern_n - 2 : INT_MAX;
  a.spans = std::max<int64_t>(1, (p.k + a.span - 1) / a.span);
  a.scale = p.scale;
  a.status = p.status;
  scan_weight_kernel<<<grid_for(std::max(p.n * a.spans, p.n), kThreads), kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace slidesparse
