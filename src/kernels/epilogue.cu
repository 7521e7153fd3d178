// slidesparse kernels: the scale epilogue. Contract and formula: epilogue.cuh.
//
// Design: a 2-D grid; each thread owns 8 consecutive columns (16 bytes of 16-bit output) and walks
// rows with a grid stride, so its 8 weight scales and biases are loaded once into registers (with
// 16-byte loads when aligned) and reused for every row it visits. Per row it takes the 16-byte
// path when the acc row and the Y row are 16-byte aligned at its columns, else scalar accesses;
// the test is per row because the Y rows of an odd n are not all aligned alike. acc is read exactly
// once (streaming loads); Y is written exactly once. Memory-bound: (4 + 2) bytes per element for
// i32/f32 accumulators.
#include "kernels/epilogue.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <climits>
#include <cstring>

namespace slidesparse {
namespace {

enum class AccKind { kI32, kF32, kBF16, kF16 };
enum class OutKind { kBF16, kF16 };

constexpr int kCols = 8;          // columns per thread: one 16-byte store of 16-bit outputs
constexpr int kThreads = 256;     // per CTA, as (threads_x, threads_y)
constexpr int kMaxThreadsX = 128;  // 1024 columns per CTA row
constexpr int64_t kMaxGridY = 65535;
// Rows per thread only grow once the grid alone fills the GPU (2048 resident threads per SM on
// sm_80/sm_90): decode shapes (m = 16) keep one row per thread and as many CTAs as possible.
constexpr int64_t kThreadsPerSm = 2048;
constexpr int64_t kMaxRowsPerThread = 8;

template <AccKind K>
struct Acc;
template <>
struct Acc<AccKind::kI32> {
  using T = int32_t;
  static __device__ __forceinline__ float f32(T v) { return __int2float_rn(v); }
};
template <>
struct Acc<AccKind::kF32> {
  using T = float;
  static __device__ __forceinline__ float f32(T v) { return v; }
};
template <>
struct Acc<AccKind::kBF16> {
  using T = uint16_t;
  static __device__ __forceinline__ float f32(T v) { return __uint_as_float(uint32_t(v) << 16); }
};
template <>
struct Acc<AccKind::kF16> {
  using T = uint16_t;
  static __device__ __forceinline__ float f32(T v) { return __half2float(__ushort_as_half(v)); }
};

template <OutKind K>
__device__ __forceinline__ uint32_t to_out(float v) {
  if constexpr (K == OutKind::kBF16) {
    return __bfloat16_as_ushort(__float2bfloat16_rn(v));
  } else {
    return __half_as_ushort(__float2half_rn(v));
  }
}

struct Args {
  const void* acc;
  const float* s_x;
  const float* s_w;
  const float* bias;
  void* y;
  int64_t ld_acc, ldy, m, n;
};

__device__ __forceinline__ bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

// The formula of epilogue.cuh, one IEEE f32 operation at a time, in its order.
__device__ __forceinline__ float apply(float v, float sx, float sw, float b, bool has_sx,
                                       bool has_sw, bool has_b) {
  if (has_sx) v = __fmul_rn(v, sx);
  if (has_sw) v = __fmul_rn(v, sw);
  if (has_b) v = __fadd_rn(v, b);
  return v;
}

// Eight consecutive per-channel floats starting at a 32-byte multiple of p (c0 % 8 == 0).
__device__ __forceinline__ void load8(const float* p, int64_t c0, int64_t n, bool vec, float (&v)[kCols]) {
  if (vec) {
    const float4 a = __ldg(reinterpret_cast<const float4*>(p + c0));
    const float4 b = __ldg(reinterpret_cast<const float4*>(p + c0) + 1);
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
  } else {
#pragma unroll
    for (int i = 0; i < kCols; ++i) v[i] = c0 + i < n ? __ldg(p + c0 + i) : 0.0f;
  }
}

template <AccKind kAcc, OutKind kOut>
__global__ void __launch_bounds__(kThreads) epilogue_kernel(Args a) {
  using T = typename Acc<kAcc>::T;
  const int64_t c0 = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * kCols;
  if (c0 >= a.n) return;  // no barrier in this kernel: idle threads may leave
  const bool full = c0 + kCols <= a.n;
  const bool has_sx = a.s_x != nullptr, has_sw = a.s_w != nullptr, has_b = a.bias != nullptr;

  float sw[kCols] = {}, b[kCols] = {};
  if (has_sw) load8(a.s_w, c0, a.n, full && aligned16(a.s_w), sw);
  if (has_b) load8(a.bias, c0, a.n, full && aligned16(a.bias), b);

  const T* acc = static_cast<const T*>(a.acc);
  uint16_t* y = static_cast<uint16_t*>(a.y);
  const int64_t row_step = int64_t(gridDim.y) * blockDim.y;
  for (int64_t r = int64_t(blockIdx.y) * blockDim.y + threadIdx.y; r < a.m; r += row_step) {
    const T* arow = acc + r * a.ld_acc + c0;
    uint16_t* yrow = y + r * a.ldy + c0;
    const float sx = has_sx ? __ldg(a.s_x + r) : 1.0f;
    if (full && aligned16(arow) && aligned16(yrow)) {
      // 8 accumulators: two 16-byte loads (i32/f32) or one (16-bit), read once -> streaming.
      constexpr int kWords = int(sizeof(T)) * kCols / 16;
      uint4 raw[kWords];
#pragma unroll
      for (int i = 0; i < kWords; ++i) raw[i] = __ldcs(reinterpret_cast<const uint4*>(arow) + i);
      T v[kCols];
      memcpy(v, raw, sizeof v);
      uint32_t o[kCols];
#pragma unroll
      for (int i = 0; i < kCols; ++i)
        o[i] = to_out<kOut>(apply(Acc<kAcc>::f32(v[i]), sx, sw[i], b[i], has_sx, has_sw, has_b));
      *reinterpret_cast<uint4*>(yrow) =
          make_uint4(o[0] | o[1] << 16, o[2] | o[3] << 16, o[4] | o[5] << 16, o[6] | o[7] << 16);
    } else {
#pragma unroll
      for (int i = 0; i < kCols; ++i) {
        if (c0 + i < a.n)
          yrow[i] = uint16_t(to_out<kOut>(apply(Acc<kAcc>::f32(arow[i]), sx, sw[i], b[i], has_sx, has_sw, has_b)));
      }
    }
  }
}

template <AccKind kAcc>
cudaError_t launch_acc(DType y_dtype, const Args& a, dim3 grid, dim3 block, cudaStream_t stream) {
  if (y_dtype == DType::kF16) {
    epilogue_kernel<kAcc, OutKind::kF16><<<grid, block, 0, stream>>>(a);
  } else {
    epilogue_kernel<kAcc, OutKind::kBF16><<<grid, block, 0, stream>>>(a);
  }
  return cudaGetLastError();
}

bool misaligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes != 0; }

}  // namespace

const char* epilogue_check(const EpilogueParams& p) noexcept {
  if (p.acc_dtype != DType::kI32 && p.acc_dtype != DType::kF32 && p.acc_dtype != DType::kBF16 &&
      p.acc_dtype != DType::kF16)
    return "scale_epilogue: acc_dtype must be i32, f32, bf16 or f16";
  if (p.y_dtype != DType::kBF16 && p.y_dtype != DType::kF16)
    return "scale_epilogue: y_dtype must be bf16 or f16";
  if (p.m < 0 || p.n < 0) return "scale_epilogue: m and n must be non-negative";
  if (p.m == 0 || p.n == 0) return nullptr;
  if (p.acc == nullptr || p.y == nullptr) return "scale_epilogue: acc and y must not be null";
  if (p.ld_acc < p.n) return "scale_epilogue: ld_acc must be >= n";
  if (p.ldy < p.n) return "scale_epilogue: ldy must be >= n";
  if (misaligned(p.acc, dtype_size(p.acc_dtype)))
    return "scale_epilogue: acc must be aligned to its element size";
  if (misaligned(p.y, 2)) return "scale_epilogue: y must be 2-byte aligned";
  if (misaligned(p.s_x, 4) || misaligned(p.s_w, 4) || misaligned(p.bias, 4))
    return "scale_epilogue: s_x, s_w and bias must be 4-byte aligned";
  return nullptr;
}

cudaError_t scale_epilogue(const EpilogueParams& p, cudaStream_t stream) {
  if (epilogue_check(p) != nullptr) return cudaErrorInvalidValue;
  if (p.m == 0 || p.n == 0) return cudaSuccess;
  int dev = 0, sms = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  if (e != cudaSuccess) return e;

  const int64_t chunks = (p.n + kCols - 1) / kCols;
  const int tx = int(std::min<int64_t>(kMaxThreadsX, (chunks + 31) / 32 * 32));
  const int ty = kThreads / tx;
  const int64_t grid_x = (chunks + tx - 1) / tx;
  if (grid_x > INT_MAX) return cudaErrorInvalidValue;
  const int64_t threads_one_row = grid_x * tx * p.m;
  const int64_t rows_per_thread =
      std::clamp<int64_t>(threads_one_row / (int64_t(std::max(sms, 1)) * kThreadsPerSm), 1, kMaxRowsPerThread);
  const int64_t grid_y = std::min<int64_t>((p.m + ty * rows_per_thread - 1) / (ty * rows_per_thread), kMaxGridY);

  Args a{p.acc, p.s_x, p.s_w, p.bias, p.y, p.ld_acc, p.ldy, p.m, p.n};
  const dim3 grid{unsigned(grid_x), unsigned(grid_y)}, block{unsigned(tx), unsigned(ty)};
  switch (p.acc_dtype) {
    case DType::kI32: return launch_acc<AccKind::kI32>(p.y_dtype, a, grid, block, stream);
    case DType::kF32: return launch_acc<AccKind::kF32>(p.y_dtype, a, grid, block, stream);
    case DType::kBF16: return launch_acc<AccKind::kBF16>(p.y_dtype, a, grid, block, stream);
    default: return launch_acc<AccKind::kF16>(p.y_dtype, a, grid, block, stream);
  }
}

}  // namespace slidesparse
