// slidesparse kernels: the non-GEMM steps of a Llama decoder on the GPU (host launchers). The
// projections themselves run through SlideLinear; these are the steps between them, following HF
// LlamaForCausalLM and the CPU model (src/model/llama_cpu.cpp):
//
//   residual_rmsnorm  x[r] = embed[token[r]] (layer 0) or x[r] += add[r] (bf16 linear output);
//                     out[r] = bf16(weight * (x[r] * inv_rms(x[r])))   -- residual stream in f32
//   rope_split        q | k | v (bf16 rows of the fused qkv projection) -> f32 q and k with RoPE
//                     in the rotate_half convention (pairs i, i + head_dim/2), f32 v
//   attention         causal grouped-query softmax(q k^T * scale) v in f32 -> bf16
//   silu_mul          gate | up (bf16 rows of the fused gate_up projection) -> bf16 silu(gate) * up
//   bf16_to_f32       logits out of the bf16 lm_head
//
// Every launcher checks its parameters (cudaErrorInvalidValue, nothing launched), returns the
// launch status, allocates nothing and never synchronizes. Row-major everywhere; 64-bit indexing.
// The tier-1 test is tests/gpu/gpu_llama.cpp (the whole model against the CPU forward).
// This header is plain C++ (no device code): include it from .cpp.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace slidesparse {

// attention: head_dim up to this (one K tile [32][head_dim + 1] and V tile [32][head_dim] in shared
// memory, plus 8 query rows, stay within the 48 KiB static limit).
inline constexpr int kAttentionMaxHeadDim = 128;

struct RmsNormParams {
  float* x = nullptr;                // [rows, h] f32 residual stream, updated in place
  const int32_t* tokens = nullptr;   // when set: x[r] = embed[tokens[r]] first (tokens in [0, vocab))
  const float* embed = nullptr;      // [vocab, h]
  const void* add_bf16 = nullptr;    // when set: x[r] += f32(add[r]) first, [rows, h] bf16
  const float* weight = nullptr;     // [h]
  void* out_bf16 = nullptr;          // [rows, h]
  int64_t rows = 0, h = 0;
  float eps = 1e-6f;
};
cudaError_t residual_rmsnorm(const RmsNormParams& p, cudaStream_t stream);

struct RopeSplitParams {
  const void* qkv_bf16 = nullptr;  // [T, (heads + 2 kv_heads) * head_dim]: q | k | v
  const float* cos = nullptr;      // [>= T, head_dim / 2]: cos(pos * inv_freq[i])
  const float* sin = nullptr;      // [>= T, head_dim / 2]
  float* q = nullptr;              // [T, heads * head_dim]
  float* k = nullptr;              // [T, kv_heads * head_dim]
  float* v = nullptr;              // [T, kv_heads * head_dim]
  int64_t tokens = 0;
  int heads = 0, kv_heads = 0, head_dim = 0;
};
cudaError_t rope_split(const RopeSplitParams& p, cudaStream_t stream);

struct AttentionParams {
  const float* q = nullptr;  // [T, heads * head_dim]
  const float* k = nullptr;  // [T, kv_heads * head_dim]
  const float* v = nullptr;  // [T, kv_heads * head_dim]
  void* out_bf16 = nullptr;  // [T, heads * head_dim]
  int64_t tokens = 0;
  int heads = 0, kv_heads = 0, head_dim = 0;  // heads % kv_heads == 0, head_dim <= kAttentionMaxHeadDim
  float scale = 1.0f;                         // 1 / sqrt(head_dim)
};
cudaError_t attention(const AttentionParams& p, cudaStream_t stream);

struct SiluMulParams {
  const void* gate_up_bf16 = nullptr;  // [rows, 2 ff]: gate | up
  void* out_bf16 = nullptr;            // [rows, ff]
  int64_t rows = 0, ff = 0;
};
cudaError_t silu_mul(const SiluMulParams& p, cudaStream_t stream);

cudaError_t bf16_to_f32(const void* in_bf16, float* out, int64_t count, cudaStream_t stream);

}  // namespace slidesparse
