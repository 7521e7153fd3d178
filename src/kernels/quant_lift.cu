// slidesparse kernels: fused per-token quantization + activation lifting. Contract and formulas:
// quant_lift.cuh and docs/FORMAT.md sections 3-4.
//
// Design: one CTA per token row (grid-stride over rows when m_pad exceeds the grid).
//   pass 1  16-byte loads of the row, kLoadsInFlight per thread issued before the first use
//           (scalar loads where the row is not 16-byte aligned, and for the last k % 8 elements),
//           stored to shared memory while tracking max |x| on the raw 16-bit patterns; warp REDUX
//           + one __syncthreads give the row amax to every thread.
//   pass 2  each thread builds 16 output bytes (4 windows of 4 lanes for 8-bit outputs, 2 for a
//           16-bit lift-only copy) by gathering its window sources from shared memory and writes
//           them with one 16-byte store.
// Rows longer than the shared-memory budget take the same path with pass 2 re-reading the row
// from global memory (it was just read, so it is in L2). X is read from DRAM exactly once.
// (A persistent, cp.async double-buffered variant measured 3-15% slower on an H100 at the
// benchmark shapes, so one CTA per row it is.)
#include "kernels/quant_lift.cuh"

#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "slidesparse/pattern.hpp"
#include "slidesparse/quant.hpp"

namespace slidesparse {
namespace {

enum class OutKind { kI8, kE4M3, kCopy };

// Threads per CTA: enough that every thread has about kLoadsInFlight 16-byte loads of the row in
// flight in pass 1 (latency hiding within the CTA), bounded so that short rows do not leave most
// threads idle and long rows do not need more warps than one reduction step covers.
constexpr int kLoadsInFlight = 4;
constexpr int kMinThreads = 64;
constexpr int kMaxThreads = 512;
constexpr int kMaxWarps = kMaxThreads / 32;
// A row (bf16/f16) is staged in shared memory up to this size: 32768 elements, 3 CTAs per SM on
// sm_90/sm_80 at that size. Longer rows re-read global memory in pass 2.
constexpr int64_t kMaxSmemRowBytes = 64 * 1024;
constexpr int kDefaultSmemBytes = 48 * 1024;  // above this the kernel must opt in
// Column indices (and the window arithmetic) are 32-bit; rows are addressed in 64 bits.
constexpr int64_t kMaxCols = int64_t(1) << 30;

struct Args {
  const uint16_t* x;
  uint8_t* q;
  float* scale;
  int64_t m, m_pad, ldx, ldq_bytes;
  int k, k_out;
  int windows;   // windows per group, N-1; dense quantization is N = 2 (2:4 lifting is the identity)
  bool vec_out;  // every output row starts 16-byte aligned
};

template <bool kF16>
__device__ __forceinline__ float half_bits_to_f32(uint32_t h) {
  if constexpr (kF16) {
    return __half2float(__ushort_as_half(static_cast<unsigned short>(h)));
  } else {
    return __uint_as_float(h << 16);
  }
}

// Two packed 16-bit values (element 2i in the low half) as f32, exactly.
template <bool kF16>
__device__ __forceinline__ float2 word_to_f32x2(uint32_t w) {
  if constexpr (kF16) {
    __half2 h;
    memcpy(&h, &w, sizeof w);
    return __half22float2(h);
  } else {
    return make_float2(__uint_as_float(w << 16), __uint_as_float(w & 0xffff0000u));
  }
}

// E4M3 "fn" of two f32 values (lo in the low byte): cvt.rn.satfinite.e4m3x2.f32 on sm_89+, the
// header's bit-exact emulation below that. Both equal f32_to_e4m3 (RNE, saturating to +-448).
__device__ __forceinline__ uint32_t e4m3x2(float lo, float hi) {
  return __nv_cvt_float2_to_fp8x2(make_float2(lo, hi), __NV_SATFINITE, __NV_E4M3);
}

// clamp(rint(v * inv), -128, 127) of one rounded f32 product: cvt.rni.sat.s8.f32 rounds half to
// even and saturates in one instruction (F2I.S8), as the CPU's rint + clamp does.
__device__ __forceinline__ uint32_t i8_bits(float v, float inv) {
  uint32_t q;
  asm("cvt.rni.sat.s8.f32 %0, %1;" : "=r"(q) : "f"(__fmul_rn(v, inv)));
  return q;
}

// Four consecutive elements (two words) -> four quantized bytes, element 0 in the low byte.
template <bool kF16, OutKind kOut>
__device__ __forceinline__ uint32_t quant4(uint32_t w0, uint32_t w1, float inv) {
  const float2 a = word_to_f32x2<kF16>(w0), b = word_to_f32x2<kF16>(w1);
  if constexpr (kOut == OutKind::kI8) {
    return __byte_perm(__byte_perm(i8_bits(a.x, inv), i8_bits(a.y, inv), 0x0040),
                       __byte_perm(i8_bits(b.x, inv), i8_bits(b.y, inv), 0x0040), 0x5410);
  } else {
    const uint32_t q = e4m3x2(__fmul_rn(a.x, inv), __fmul_rn(a.y, inv)) |
                       e4m3x2(__fmul_rn(b.x, inv), __fmul_rn(b.y, inv)) << 16;
    return q & ~__vcmpeq4(q, 0x80808080u);  // -0 (0x80) is stored as +0: one zero code
  }
}

// Lanes l = 0..3 of the window whose first source column is `src` (even), all inside the row.
template <bool kSmem>
__device__ __forceinline__ uint2 load_window(const uint16_t* row, int src) {
  if constexpr (kSmem) {
    // The staged row starts 16-byte aligned and src is even: two aligned 4-byte words.
    const uint32_t* w = reinterpret_cast<const uint32_t*>(row + src);
    return make_uint2(w[0], w[1]);
  } else {
    // A global row may start at any 2-byte boundary.
    const uint32_t h0 = __ldg(row + src), h1 = __ldg(row + src + 1);
    const uint32_t h2 = __ldg(row + src + 2), h3 = __ldg(row + src + 3);
    return make_uint2(h0 | h1 << 16, h2 | h3 << 16);
  }
}

// The same with lanes at or past k reading as zero (the row's last windows and padding).
template <bool kSmem>
__device__ __forceinline__ uint2 load_window_checked(const uint16_t* row, int src, int k) {
  if (src + 4 <= k) return load_window<kSmem>(row, src);
  uint32_t h[4];
#pragma unroll
  for (int l = 0; l < 4; ++l) {
    uint32_t v = 0;
    if (src + l < k) {
      if constexpr (kSmem) {
        v = row[src + l];
      } else {
        v = __ldg(row + src + l);
      }
    }
    h[l] = v;
  }
  return make_uint2(h[0] | h[1] << 16, h[2] | h[3] << 16);
}

// The kWin windows j0, j0+1, ... of one output chunk. Window j sits in group g = j / (N-1) at
// offset w = j - g(N-1); its first source column g*2N + 2w equals 2(j + g).
template <bool kSmem, bool kChecked, int kWin>
__device__ __forceinline__ void gather_chunk(const uint16_t* row, int j0, int g, int w,
                                             int windows, int k, uint2 (&h)[kWin]) {
#pragma unroll
  for (int u = 0; u < kWin; ++u) {
    const int src = 2 * (j0 + u + g);
    if constexpr (kChecked) {
      h[u] = load_window_checked<kSmem>(row, src, k);
    } else {
      h[u] = load_window<kSmem>(row, src);
    }
    if (++w == windows) {
      w = 0;
      ++g;
    }
  }
}

__device__ __forceinline__ bool aligned16(const void* ptr) {
  return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0;
}

// |x| as bits, two 16-bit lanes at a time. For finite values the bit pattern of |x| orders like
// its value; inf and NaN compare above every finite value, which is how non-finite rows are
// detected after the reduction.
__device__ __forceinline__ uint32_t max_abs4(uint32_t mx, uint4 v) {
  mx = __vmaxu2(mx, v.x & 0x7fff7fffu);
  mx = __vmaxu2(mx, v.y & 0x7fff7fffu);
  mx = __vmaxu2(mx, v.z & 0x7fff7fffu);
  return __vmaxu2(mx, v.w & 0x7fff7fffu);
}

// Pass 1: stages the row in shared memory (kSmem) and returns this thread's packed max |x|.
template <bool kSmem>
__device__ __forceinline__ uint32_t load_row(const uint16_t* xr, uint16_t* srow, int k) {
  const int tid = threadIdx.x, nt = blockDim.x;
  uint32_t mx = 0;
  int done = 0;
  if (aligned16(xr)) {
    const int nvec = k >> 3;
    const uint4* xv = reinterpret_cast<const uint4*>(xr);
    uint4* sv = reinterpret_cast<uint4*>(srow);
    for (int base = tid; base < nvec; base += kLoadsInFlight * nt) {
      uint4 v[kLoadsInFlight];
#pragma unroll
      for (int u = 0; u < kLoadsInFlight; ++u) {  // all loads issued before the first use
        const int i = base + u * nt;
        v[u] = i < nvec ? __ldg(xv + i) : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int u = 0; u < kLoadsInFlight; ++u) {
        if constexpr (kSmem) {
          if (base + u * nt < nvec) sv[base + u * nt] = v[u];
        }
        mx = max_abs4(mx, v[u]);
      }
    }
    done = nvec << 3;
  }
  for (int i = done + tid; i < k; i += nt) {  // tail, or the whole row when misaligned
    const uint32_t h = __ldg(xr + i);
    if constexpr (kSmem) srow[i] = static_cast<uint16_t>(h);
    mx = __vmaxu2(mx, h & 0x7fffu);
  }
  return mx;
}

// Max over the CTA; also the barrier that publishes the staged row to every thread.
__device__ __forceinline__ uint32_t block_max(uint32_t packed, uint32_t* warp_max) {
  const uint32_t v = __reduce_max_sync(0xffffffffu, max(packed & 0xffffu, packed >> 16));
  if ((threadIdx.x & 31) == 0) warp_max[threadIdx.x >> 5] = v;
  __syncthreads();
  uint32_t r = 0;
  const int warps = blockDim.x >> 5;
  for (int w = 0; w < warps; ++w) r = max(r, warp_max[w]);
  return r;
}

template <bool kF16, OutKind kOut, bool kSmem>
__global__ void __launch_bounds__(kMaxThreads) quant_lift_kernel(const Args p) {
  extern __shared__ uint4 smem_dyn[];
  __shared__ uint32_t warp_max[kMaxWarps];

  constexpr int kOutBytes = kOut == OutKind::kCopy ? 2 : 1;
  constexpr int kElems = 16 / kOutBytes;  // output elements per 16-byte chunk
  constexpr int kWin = kElems / 4;         // windows per chunk
  constexpr bool kQuant = kOut != OutKind::kCopy;
  constexpr float kQ = kOut == OutKind::kI8 ? kI8Max : kE4M3Max;
  constexpr uint32_t kNonFinite = kF16 ? 0x7c00u : 0x7f80u;  // |x| bits of +inf
  const int chunks = (p.k_out + kElems - 1) / kElems;
  // A thread's consecutive chunks are blockDim.x * kWin windows apart: that many groups and
  // windows further on.
  const int step_j = int(blockDim.x) * kWin;
  const int step_g = step_j / p.windows, step_w = step_j - step_g * p.windows;

  uint16_t* const srow = reinterpret_cast<uint16_t*>(smem_dyn);
  for (int64_t r = blockIdx.x; r < p.m_pad; r += gridDim.x) {
    bool zero = r >= p.m;  // padding rows: q = 0, scale = 1
    float inv = 0.0f, s = 1.0f;
    const uint16_t* xr = p.x + (zero ? 0 : r * p.ldx);
    const uint32_t packed = zero ? 0u : load_row<kSmem>(xr, srow, p.k);
    if constexpr (kQuant) {
      // The reduction's barrier also publishes the staged row to every thread.
      const uint32_t amax_bits = block_max(packed, warp_max);  // 0 for padding rows
      if (amax_bits >= kNonFinite) {
        zero = true;
        s = __uint_as_float(0x7fc00000u);  // NaN: the token's output must not look valid
      } else if (amax_bits != 0) {
        // Clamping amax before either division keeps both finite for denormal-tiny rows.
        const float a = fmaxf(half_bits_to_f32<kF16>(amax_bits), kMinAmax);
        inv = __fdiv_rn(kQ, a);
        s = __fdiv_rn(a, kQ);
      }  // amax == 0: inv = 0 maps every (+-0) element to +0, scale stays 1
    } else if constexpr (kSmem) {
      __syncthreads();  // publish the staged row
    }
    if (threadIdx.x == 0 && p.scale != nullptr) p.scale[r] = s;

    const uint16_t* row = kSmem ? srow : xr;
    uint8_t* qr = p.q + r * p.ldq_bytes;
    // Window bookkeeping of this thread's first chunk; later chunks advance it without dividing.
    int j0 = int(threadIdx.x) * kWin, g = j0 / p.windows, w = j0 - g * p.windows;
    for (int c = threadIdx.x; c < chunks; c += blockDim.x) {
      uint32_t out[4] = {0u, 0u, 0u, 0u};
      if (!zero) {
        if (kSmem && p.windows == 1 && (c + 1) * kElems <= p.k) {
          // Identity map, chunk fully inside the row: aligned 16-byte reads. (The window-wise
          // path would have a warp read shared memory at a 32-byte stride: 8-way bank conflicts.)
          const uint4* sv = reinterpret_cast<const uint4*>(srow) + c * (kElems / 8);
          const uint4 a = sv[0];
          if constexpr (kQuant) {
            const uint4 b = sv[1];
            out[0] = quant4<kF16, kOut>(a.x, a.y, inv);
            out[1] = quant4<kF16, kOut>(a.z, a.w, inv);
            out[2] = quant4<kF16, kOut>(b.x, b.y, inv);
            out[3] = quant4<kF16, kOut>(b.z, b.w, inv);
          } else {
            out[0] = a.x, out[1] = a.y, out[2] = a.z, out[3] = a.w;
          }
        } else {
          uint2 h[kWin];
          // Window u starts at 2(j0 + u + g_u) with g_u <= g + u: when even the last could not
          // reach k, no lane needs a bounds check (all but the row's last chunks).
          if (2 * (j0 + g + 2 * kWin - 2) + 4 <= p.k) {
            gather_chunk<kSmem, false>(row, j0, g, w, p.windows, p.k, h);
          } else {
            gather_chunk<kSmem, true>(row, j0, g, w, p.windows, p.k, h);
          }
#pragma unroll
          for (int u = 0; u < kWin; ++u) {
            if constexpr (kQuant) {
              out[u] = quant4<kF16, kOut>(h[u].x, h[u].y, inv);
            } else {
              out[2 * u] = h[u].x;
              out[2 * u + 1] = h[u].y;
            }
          }
        }
      }
      const int col0 = c * kElems;
      uint8_t* dst = qr + int64_t(col0) * kOutBytes;
      if (p.vec_out && col0 + kElems <= p.k_out) {
        *reinterpret_cast<uint4*>(dst) = make_uint4(out[0], out[1], out[2], out[3]);
      } else {
        // Last partial chunk, or rows that are not 16-byte aligned: byte stores up to k_out.
        const int bytes = min(kElems, p.k_out - col0) * kOutBytes;
#pragma unroll
        for (int b = 0; b < 16; ++b)
          if (b < bytes) dst[b] = static_cast<uint8_t>(out[b / 4] >> (8 * (b % 4)));
      }
      j0 += step_j;
      g += step_g;
      w += step_w;
      if (w >= p.windows) {
        w -= p.windows;
        ++g;
      }
    }
    __syncthreads();  // the next row reuses srow and warp_max
  }
}

__global__ void encode_e4m3_kernel(const float* in, uint8_t* out, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = static_cast<uint8_t>(e4m3x2(in[i], 0.0f) & 0xffu);
}

int threads_for(int64_t k) {
  const int64_t vecs = (k + 7) / 8;
  const int64_t t = ((vecs + kLoadsInFlight - 1) / kLoadsInFlight + 31) / 32 * 32;
  return int(std::clamp<int64_t>(t, kMinThreads, kMaxThreads));
}

template <bool kF16, OutKind kOut>
cudaError_t launch(const Args& a, bool smem, size_t smem_bytes, int threads, cudaStream_t stream) {
  const unsigned grid = unsigned(std::min<int64_t>(a.m_pad, INT_MAX));
  if (smem) {
    auto* kernel = quant_lift_kernel<kF16, kOut, true>;
    if (smem_bytes > size_t(kDefaultSmemBytes)) {
      const cudaError_t e = cudaFuncSetAttribute(
          kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem_bytes));
      if (e != cudaSuccess) return e;
    }
    kernel<<<grid, threads, smem_bytes, stream>>>(a);
  } else {
    quant_lift_kernel<kF16, kOut, false><<<grid, threads, 0, stream>>>(a);
  }
  return cudaGetLastError();
}

template <bool kF16>
cudaError_t launch_out(DType out, const Args& a, bool smem, size_t smem_bytes, int threads,
                       cudaStream_t stream) {
  switch (out) {
    case DType::kI8: return launch<kF16, OutKind::kI8>(a, smem, smem_bytes, threads, stream);
    case DType::kE4M3: return launch<kF16, OutKind::kE4M3>(a, smem, smem_bytes, threads, stream);
    default: return launch<kF16, OutKind::kCopy>(a, smem, smem_bytes, threads, stream);
  }
}

}  // namespace

int64_t quant_lift_min_k_out(int pattern_n, int64_t k) noexcept {
  if (pattern_n == 0) return k;
  if (pattern_n < kMinN || pattern_n > kMaxN || k < 0) return -1;
  return (k + 2 * pattern_n - 1) / (2 * pattern_n) * (4 * (pattern_n - 1));
}

const char* quant_lift_check(const QuantLiftParams& p) noexcept {
  if (p.in_dtype != DType::kBF16 && p.in_dtype != DType::kF16)
    return "quant_lift: in_dtype must be bf16 or f16";
  if (p.out_dtype != DType::kI8 && p.out_dtype != DType::kE4M3 && p.out_dtype != p.in_dtype)
    return "quant_lift: out_dtype must be i8, e4m3, or equal to in_dtype (lift only)";
  if (p.pattern_n != 0 && (p.pattern_n < kMinN || p.pattern_n > kMaxN))
    return "quant_lift: pattern_n must be 0 (no lifting) or N in 2..16 for pattern (2N-2):2N";
  if (p.m < 0 || p.k < 0 || p.m_pad < 0 || p.k_out < 0)
    return "quant_lift: m, k, m_pad and k_out must be non-negative";
  if (p.m_pad < p.m) return "quant_lift: m_pad must be >= m";
  if (p.k >= kMaxCols || p.k_out >= kMaxCols) return "quant_lift: k and k_out must be below 2^30";
  if (p.k_out < quant_lift_min_k_out(p.pattern_n, p.k))
    return "quant_lift: k_out is below quant_lift_min_k_out(pattern_n, k) = ceil(k/2N)*4(N-1) "
           "(k when pattern_n == 0)";
  if (p.m > 0 && p.ldx < p.k) return "quant_lift: ldx must be >= k";
  if (p.m_pad > 0 && p.ldq < p.k_out) return "quant_lift: ldq must be >= k_out";
  const bool quantize = p.out_dtype != p.in_dtype;
  if (p.m > 0 && p.k > 0 && p.x == nullptr) return "quant_lift: x is null";
  if (p.m_pad > 0 && p.k_out > 0 && p.q == nullptr) return "quant_lift: q is null";
  if (quantize && p.m_pad > 0 && p.scale == nullptr)
    return "quant_lift: scale is null (required when quantizing to i8 or e4m3)";
  if (reinterpret_cast<uintptr_t>(p.x) % 2 != 0) return "quant_lift: x must be 2-byte aligned";
  if (!quantize && reinterpret_cast<uintptr_t>(p.q) % 2 != 0)
    return "quant_lift: q must be 2-byte aligned for a 16-bit output";
  if (reinterpret_cast<uintptr_t>(p.scale) % 4 != 0)
    return "quant_lift: scale must be 4-byte aligned";
  return nullptr;
}

cudaError_t quant_lift(const QuantLiftParams& p, cudaStream_t stream) {
  if (quant_lift_check(p) != nullptr) return cudaErrorInvalidValue;
  if (p.m_pad == 0) return cudaSuccess;
  const bool copy = p.out_dtype == p.in_dtype;
  const int64_t out_bytes = copy ? 2 : 1;
  Args a{};
  a.x = static_cast<const uint16_t*>(p.x);
  a.q = static_cast<uint8_t*>(p.q);
  a.scale = p.scale;
  a.m = p.m;
  a.m_pad = p.m_pad;
  a.ldx = p.ldx;
  a.ldq_bytes = p.ldq * out_bytes;
  a.k = int(p.k);
  a.k_out = int(p.k_out);
  a.windows = p.pattern_n == 0 ? 1 : p.pattern_n - 1;
  a.vec_out = reinterpret_cast<uintptr_t>(p.q) % 16 == 0 && (a.ldq_bytes % 16 == 0 || p.m_pad == 1);

  int dev = 0, optin = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  if (e != cudaSuccess) return e;
  const int64_t row_bytes = (p.k * 2 + 15) / 16 * 16;
  const bool smem = row_bytes <= std::min<int64_t>(kMaxSmemRowBytes, optin);
  const size_t smem_bytes = smem ? size_t(row_bytes) : 0;
  const int threads = threads_for(p.k);
  return p.in_dtype == DType::kF16
             ? launch_out<true>(p.out_dtype, a, smem, smem_bytes, threads, stream)
             : launch_out<false>(p.out_dtype, a, smem, smem_bytes, threads, stream);
}

cudaError_t encode_e4m3(const float* in, uint8_t* out, int64_t n, cudaStream_t stream) {
  if (n < 0 || (n > 0 && (in == nullptr || out == nullptr))) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  const int64_t blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, 65535);
  encode_e4m3_kernel<<<unsigned(blocks), kThreads, 0, stream>>>(in, out, n);
  return cudaGetLastError();
}

}  // namespace slidesparse
