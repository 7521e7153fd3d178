// slidesparse kernels: the non-GEMM steps of the GPU Llama forward. Contracts: llama_ops.cuh.
//
// Numerics follow the CPU model (src/model/llama_cpu.cpp) operation by operation where it costs
// nothing: RMSNorm computes inv = 1 / sqrt(mean(x^2) + eps) and weight * (x * inv); RoPE's
// products and sums are rounded one by one (no FMA contraction, like the CPU build's
// -ffp-contract=off); silu is g / (1 + exp(-g)) * u; exponentials are expf, not __expf. Sums run in
// another order than on the CPU (tree reductions, online softmax), so results agree to f32
// rounding, not bit for bit. Every kernel is deterministic: the same input gives the same bits.
#include "kernels/llama_ops.cuh"

#include <cuda_bf16.h>

#include <climits>
#include <cmath>
#include <cstdint>

namespace slidesparse {
namespace {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kNormThreads = 256;  // one CTA per row; h is hundreds to thousands of elements
constexpr int kEltThreads = 256;
constexpr int64_t kMaxGrid = 1 << 20;  // grid-stride beyond this many CTAs

// Attention tiling: a CTA owns kAttnRows consecutive query rows of one head (one warp each) and
// walks the keys in tiles of 32, one key per lane for the scores, staged in shared memory once for
// all its warps. The K tile rows are padded to head_dim + 1 floats so that 32 lanes reading
// column d of 32 different rows hit 32 different banks (head_dim is even, so head_dim + 1 is odd).
constexpr int kAttnRows = 8;
constexpr int kAttnKeys = 32;
constexpr int kMaxDimsPerLane = kAttentionMaxHeadDim / 32;

__device__ __forceinline__ float bf16_bits_to_f32(uint16_t b) { return __uint_as_float(uint32_t(b) << 16); }
__device__ __forceinline__ uint16_t f32_to_bf16_bits(float v) {
  return __bfloat16_as_ushort(__float2bfloat16_rn(v));
}

__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

__device__ __forceinline__ float warp_sum(float v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(kFullMask, v, off);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, off));
  return v;
}

int64_t grid_for(int64_t items, int threads) {
  const int64_t blocks = (items + threads - 1) / threads;
  return blocks < 1 ? 1 : (blocks > kMaxGrid ? kMaxGrid : blocks);
}

__global__ void __launch_bounds__(kNormThreads) residual_rmsnorm_kernel(RmsNormParams p) {
  __shared__ float partial[kNormThreads / 32];
  const int64_t r = blockIdx.x;
  float* x = p.x + r * p.h;
  const float* src = p.tokens != nullptr ? p.embed + int64_t(p.tokens[r]) * p.h : x;
  const uint16_t* add = p.add_bf16 != nullptr ? static_cast<const uint16_t*>(p.add_bf16) + r * p.h : nullptr;
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < p.h; i += blockDim.x) {
    float v = src[i];
    if (add != nullptr) v = __fadd_rn(v, bf16_bits_to_f32(add[i]));
    x[i] = v;
    ss = __fadd_rn(ss, __fmul_rn(v, v));
  }
  ss = warp_sum(ss);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x / 32] = ss;
  __syncthreads();
  if (threadIdx.x < 32) {
    float t = threadIdx.x < blockDim.x / 32 ? partial[threadIdx.x] : 0.0f;
    t = warp_sum(t);
    if (threadIdx.x == 0) partial[0] = t;
  }
  __syncthreads();
  const float inv = 1.0f / sqrtf(partial[0] / float(p.h) + p.eps);
  uint16_t* out = static_cast<uint16_t*>(p.out_bf16) + r * p.h;
  // Each thread re-reads the elements it wrote itself: no barrier needed for x.
  for (int64_t i = threadIdx.x; i < p.h; i += blockDim.x) out[i] = f32_to_bf16_bits(__fmul_rn(p.weight[i], __fmul_rn(x[i], inv)));
}

__global__ void rope_split_kernel(RopeSplitParams p) {
  const int64_t hd = p.head_dim, half = hd / 2;
  const int64_t qd = int64_t(p.heads) * hd, kvd = int64_t(p.kv_heads) * hd, ld = qd + 2 * kvd;
  const int64_t pairs_per_token = int64_t(p.heads + p.kv_heads) * half;
  const int64_t pair_items = p.tokens * pairs_per_token, items = pair_items + p.tokens * kvd;
  const auto* in = static_cast<const uint16_t*>(p.qkv_bf16);
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < items;
       idx += int64_t(gridDim.x) * blockDim.x) {
    if (idx < pair_items) {
      const int64_t t = idx / pairs_per_token, rem = idx % pairs_per_token;
      const int64_t hh = rem / half, i = rem % half;
      const bool is_q = hh < p.heads;
      const int64_t col = is_q ? hh * hd : qd + (hh - p.heads) * hd;
      const float a = bf16_bits_to_f32(in[t * ld + col + i]), b = bf16_bits_to_f32(in[t * ld + col + i + half]);
      const float c = p.cos[t * half + i], s = p.sin[t * half + i];
      float* dst = is_q ? p.q + t * qd + hh * hd : p.k + t * kvd + (hh - p.heads) * hd;
      dst[i] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
      dst[i + half] = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
    } else {
      const int64_t e = idx - pair_items, t = e / kvd, j = e % kvd;
      p.v[t * kvd + j] = bf16_bits_to_f32(in[t * ld + qd + kvd + j]);
    }
  }
}

// Online softmax per query row: running max m, running sum l and the output accumulator are
// rescaled by exp(m_old - m_new) whenever a tile raises the max. Lane `lane` owns output dims
// lane, lane + 32, ... (up to kMaxDimsPerLane of them).
__global__ void __launch_bounds__(kAttnRows * 32) attention_kernel(AttentionParams p) {
  extern __shared__ float smem[];
  const int hd = p.head_dim, ldk = hd + 1;
  float* ks = smem;                    // [kAttnKeys][hd + 1]
  float* vs = ks + kAttnKeys * ldk;    // [kAttnKeys][hd]
  float* qs = vs + kAttnKeys * hd;     // [kAttnRows][hd]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int h = blockIdx.y, kh = h / (p.heads / p.kv_heads);
  const int64_t qd = int64_t(p.heads) * hd, kvd = int64_t(p.kv_heads) * hd;
  const int64_t t0 = int64_t(blockIdx.x) * kAttnRows, t = t0 + warp;
  const int64_t t_last = min64(p.tokens - 1, t0 + kAttnRows - 1);
  const bool active = t < p.tokens;
  if (active)
    for (int d = lane; d < hd; d += 32) qs[warp * hd + d] = p.q[t * qd + int64_t(h) * hd + d];

  float acc[kMaxDimsPerLane];
#pragma unroll
  for (int i = 0; i < kMaxDimsPerLane; ++i) acc[i] = 0.0f;
  float m = -INFINITY, l = 0.0f;
  // Every thread runs the same iterations (bounds are per CTA), so the barriers are uniform.
  for (int64_t j0 = 0; j0 <= t_last; j0 += kAttnKeys) {
    __syncthreads();  // the previous tile is consumed (first pass: qs is written)
    const int nk = int(min64(kAttnKeys, t_last + 1 - j0));
    for (int e = threadIdx.x; e < kAttnKeys * hd; e += blockDim.x) {
      const int r = e / hd, d = e % hd;
      float kv = 0.0f, vv = 0.0f;
      if (r < nk) {
        const int64_t off = (j0 + r) * kvd + int64_t(kh) * hd + d;
        kv = p.k[off];
        vv = p.v[off];
      }
      ks[r * ldk + d] = kv;
      vs[r * hd + d] = vv;
    }
    __syncthreads();
    if (!active || j0 > t) continue;

    const bool valid = j0 + lane <= t;  // causal: key j0 + lane is visible to query t
    float s = -INFINITY;
    if (valid) {
      const float* kr = ks + lane * ldk;
      const float* qr = qs + warp * hd;
      float dot = 0.0f;
      for (int d = 0; d < hd; ++d) dot = fmaf(qr[d], kr[d], dot);
      s = dot * p.scale;
    }
    const float m_new = fmaxf(m, warp_max(s));  // finite: lane 0's key j0 <= t is valid
    const float corr = expf(m - m_new);         // 0 on the first tile (m = -inf)
    const float pj = valid ? expf(s - m_new) : 0.0f;
    l = l * corr + warp_sum(pj);
    const int nvalid = int(min64(kAttnKeys, t - j0 + 1));
#pragma unroll
    for (int i = 0; i < kMaxDimsPerLane; ++i) acc[i] *= corr;
    for (int src = 0; src < nvalid; ++src) {
      const float pv = __shfl_sync(kFullMask, pj, src);
#pragma unroll
      for (int i = 0; i < kMaxDimsPerLane; ++i) {
        const int d = lane + 32 * i;
        if (d < hd) acc[i] = fmaf(pv, vs[src * hd + d], acc[i]);
      }
    }
    m = m_new;
  }
  if (!active) return;
  auto* out = static_cast<uint16_t*>(p.out_bf16) + t * qd + int64_t(h) * hd;
#pragma unroll
  for (int i = 0; i < kMaxDimsPerLane; ++i) {
    const int d = lane + 32 * i;
    if (d < hd) out[d] = f32_to_bf16_bits(acc[i] / l);
  }
}

__global__ void silu_mul_kernel(SiluMulParams p) {
  const auto* in = static_cast<const uint16_t*>(p.gate_up_bf16);
  auto* out = static_cast<uint16_t*>(p.out_bf16);
  const int64_t items = p.rows * p.ff;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < items;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = idx / p.ff, i = idx % p.ff;
    const float g = bf16_bits_to_f32(in[r * 2 * p.ff + i]), u = bf16_bits_to_f32(in[r * 2 * p.ff + p.ff + i]);
    out[idx] = f32_to_bf16_bits(__fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u));
  }
}

__global__ void bf16_to_f32_kernel(const uint16_t* in, float* out, int64_t count) {
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < count;
       idx += int64_t(gridDim.x) * blockDim.x)
    out[idx] = bf16_bits_to_f32(in[idx]);
}

}  // namespace

cudaError_t residual_rmsnorm(const RmsNormParams& p, cudaStream_t stream) {
  if (p.rows < 0 || p.h < 1 || p.x == nullptr || p.weight == nullptr || p.out_bf16 == nullptr ||
      (p.tokens != nullptr && p.embed == nullptr) || p.rows > int64_t(INT32_MAX))
    return cudaErrorInvalidValue;
  if (p.rows == 0) return cudaSuccess;
  residual_rmsnorm_kernel<<<unsigned(p.rows), kNormThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t rope_split(const RopeSplitParams& p, cudaStream_t stream) {
  if (p.tokens < 0 || p.heads < 1 || p.kv_heads < 1 || p.head_dim < 2 || p.head_dim % 2 != 0 ||
      p.qkv_bf16 == nullptr || p.cos == nullptr || p.sin == nullptr || p.q == nullptr || p.k == nullptr ||
      p.v == nullptr)
    return cudaErrorInvalidValue;
  if (p.tokens == 0) return cudaSuccess;
  const int64_t items = p.tokens * (int64_t(p.heads + p.kv_heads) * (p.head_dim / 2) + int64_t(p.kv_heads) * p.head_dim);
  rope_split_kernel<<<unsigned(grid_for(items, kEltThreads)), kEltThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t attention(const AttentionParams& p, cudaStream_t stream) {
  if (p.tokens < 0 || p.heads < 1 || p.kv_heads < 1 || p.heads % p.kv_heads != 0 || p.head_dim < 1 ||
      p.head_dim > kAttentionMaxHeadDim || p.heads > 65535 || p.q == nullptr || p.k == nullptr ||
      p.v == nullptr || p.out_bf16 == nullptr || !(p.scale > 0.0f) ||
      (p.tokens + kAttnRows - 1) / kAttnRows > int64_t(INT32_MAX))
    return cudaErrorInvalidValue;
  if (p.tokens == 0) return cudaSuccess;
  const size_t smem = sizeof(float) * size_t(kAttnKeys * (p.head_dim + 1) + kAttnKeys * p.head_dim +
                                             kAttnRows * p.head_dim);
  const dim3 grid(unsigned((p.tokens + kAttnRows - 1) / kAttnRows), unsigned(p.heads));
  attention_kernel<<<grid, kAttnRows * 32, smem, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t silu_mul(const SiluMulParams& p, cudaStream_t stream) {
  if (p.rows < 0 || p.ff < 1 || p.gate_up_bf16 == nullptr || p.out_bf16 == nullptr) return cudaErrorInvalidValue;
  if (p.rows == 0) return cudaSuccess;
  silu_mul_kernel<<<unsigned(grid_for(p.rows * p.ff, kEltThreads)), kEltThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t bf16_to_f32(const void* in_bf16, float* out, int64_t count, cudaStream_t stream) {
  if (count < 0 || in_bf16 == nullptr || out == nullptr) return cudaErrorInvalidValue;
  if (count == 0) return cudaSuccess;
  bf16_to_f32_kernel<<<unsigned(grid_for(count, kEltThreads)), kEltThreads, 0, stream>>>(
      static_cast<const uint16_t*>(in_bf16), out, count);
  return cudaGetLastError();
}

}  // namespace slidesparse
