// slidesparse sm90 backend: the contract between the CUTLASS instantiations (one .cu each, see
// sm90_gemm.cuh) and the plan (sm90_backend.cpp). Plain C++: no CUTLASS or CuTe type appears here.
//
// Orientation (backend.hpp): Y[m, n] = X[m, k] . W[n, k]^T is computed as D = W . X^T, so CUTLASS's
// M is the channel count n, its N the token count m, its K the reduction k. A = W (K-major,
// "RowMajor"), the 2:4 structured operand of the sparse kernels (compressed values + metadata,
// sm90_compress.cu); B = X (K-major, "ColumnMajor"); D = Y as a column-major n x m matrix with
// leading dimension ldy, i.e. row-major Y[m, ldy]. Only Y[0:m, 0:n] is written.
//
// Fused epilogue, per element, in IEEE f32 with every operation rounded on its own (the TUs are
// compiled with -fmad=false), in the order of scale_epilogue (src/kernels/epilogue.cuh):
//   Y[r, j] = bf16_rn( ((f32(acc[r, j]) * s_x[r]) * s_w[j]) + bias[j] )
// f32(acc) of an i32 accumulator is round-to-nearest. A null s_x / s_w reads as 1, a null bias
// as 0 (for bf16 inputs both scales are null).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "backends/backend.hpp"

namespace slidesparse::sm90 {

struct Args {
  int m = 0;  // tokens (CUTLASS N)
  int n = 0;  // channels (CUTLASS M)
  int k = 0;  // reduction length (K or K')
  const void* w = nullptr;     // sparse: compressed values (compressed_layout); dense: W[n, k]
  const void* meta = nullptr;  // sparse: metadata (compressed_layout); dense: null
  const void* x = nullptr;     // X[>= m rows, k]
  const float* s_x = nullptr;  // [m] or null
  const float* s_w = nullptr;  // [n] or null
  const float* bias = nullptr; // [n] or null
  void* y = nullptr;           // bf16 Y[m, ldy]
  int64_t ldy = 0;
  int sm_count = 0;            // SMs the persistent scheduler may use
};

// One compiled kernel configuration.
struct Kernel {
  const char* name;  // e.g. "sm90_sp_e4m3_128x128x128_1x1_coop"
  GemmPrecision precision;
  bool sparse;
  int tile_m, tile_n, tile_k;  // CUTLASS tile: channels x tokens x k (logical k for sparse)
  int cluster_m, cluster_n;
  const char* schedule;        // "coop", "coop-fastacc", "pingpong", ...
  // nullptr when the kernel can run `a` (CUTLASS can_implement), else the reason.
  const char* (*check)(const Args& a);
  size_t (*workspace_bytes)(const Args& a);
  // Once per process and device before the first run: the dynamic shared memory attribute.
  cudaError_t (*prepare)();
  // Enqueues the GEMM; never allocates or synchronizes (graph-capturable).
  cudaError_t (*run)(const Args& a, void* workspace, cudaStream_t stream);
};

// Every kernel this build holds (empty without CUTLASS).
const std::vector<const Kernel*>& kernels();

// The sparse operand as the kernels read it (8-bit and 16-bit inputs; CUTLASS Sm90GemmSparseConfig
// with tile k >= 128 for 8-bit and >= 64 for 16-bit, the only tiles this backend instantiates):
//   values: n rows of k/2 elements (row-major, the two kept elements of each group of 4, in order)
//   meta:   4 bits per group of 4 (two 2-bit indices, the first kept element in the low bits),
//           arranged in atoms; see compressed_layout.cpp for the exact byte order (the CPU model).
struct CompressedLayout {
  size_t value_bytes = 0, meta_bytes = 0;
  int64_t meta_rows = 0, meta_k = 0;  // n and k rounded up to the metadata atom
};
CompressedLayout compressed_layout(GemmPrecision p, int64_t n, int64_t k);

// Byte offset of group g's metadata nibble (element k = 4g of row r) and whether it is the high
// nibble: the CPU model of the metadata layout.
struct MetaPos {
  size_t byte = 0;
  bool high = false;
};
MetaPos meta_position(GemmPrecision p, int64_t n, int64_t k, int64_t r, int64_t g);

// CPU model of the whole compressor (tests): W[n, k] (2:4 along k, -0.0 counted as zero) to values
// and metadata, including the choice for groups with fewer than two nonzeros (compressed_layout.cpp
// states every rule).
void compress_cpu(GemmPrecision p, const void* w, int64_t n, int64_t k, void* values, void* meta);

// GPU compressor (sm90_compress.cu): checks that W[n, k] (device, row-major) is 2:4 along k
// (-0.0 counts as zero); writes *first_bad = the flat index of the first element of the first
// group with more than two nonzeros (or -1) and compresses into values / meta (device buffers of
// compressed_layout's sizes; meta's padding is zeroed). bad_dev: one int64 of device scratch.
// Returns the first CUDA error; synchronizes `stream`.
cudaError_t compress_gpu(GemmPrecision p, const void* w, int64_t n, int64_t k, void* values, void* meta,
                         int64_t* bad_dev, int64_t* first_bad, cudaStream_t stream);

// The compressor alone, for weight updates of a prepared plan: no 2:4 check (the caller checked),
// no synchronization, and no allocation when `ws` holds compress_workspace_bytes(p, n, k) bytes
// (device memory; may be null when that is 0). meta's padding is zeroed first (cudaMemsetAsync).
size_t compress_workspace_bytes(GemmPrecision p, int64_t n, int64_t k);
cudaError_t compress_gpu_async(GemmPrecision p, const void* w, int64_t n, int64_t k, void* values, void* meta,
                               void* ws, cudaStream_t stream);

}  // namespace slidesparse::sm90
