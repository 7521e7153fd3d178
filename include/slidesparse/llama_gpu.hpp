// slidesparse: the Llama forward pass on the GPU, with every projection running through SlideLinear
// (dense, or pruned to a (2N-2):2N pattern, slid and run on the 2:4 sparse tensor cores), for
// perplexity and throughput of dense vs sparse checkpoints. Semantics are those of the CPU model
// (include/slidesparse/llama.hpp, HF LlamaForCausalLM): RMSNorm, RoPE in the rotate_half
// convention, grouped-query causal attention, SwiGLU MLP, optional tied lm_head.
//
// Precision: the residual stream, the norms, RoPE and attention are f32; the projections take and
// give bf16 (SlideLinear's contract), so every projection input and output is rounded to bf16 once.
// q/k/v run as one fused projection [q | k | v] and gate/up as one [gate | up]: pruning, per-channel
// quantization and per-token activation scales are per row, so the fused layer computes exactly what
// the separate ones would, with larger GEMMs. lm_head (the embedding when tied) is a dense bf16
// GEMM (SlideLinear dense_only, cuBLASLt): the logits are bf16 values, returned as f32.
//
// Weights are read from an HF directory (config.json + model.safetensors or shards), the same
// layout LlamaModel::load reads, plus the checkpoints `slidesparse prune` writes:
//   F32 / F16 / BF16 projections: converted to f32 exactly; SlideLinear::from_dense prunes them by
//     magnitude to `pattern` (a no-op on a weight already pruned to it or tighter) and quantizes.
//   I8 / F8_E4M3 projections with P.weight_scale (docs/FORMAT.md 3): when `precision` is the
//     stored one (i8 / e4m3), the stored codes and scales are used exactly (from_quantized); they
//     must already satisfy `pattern` (kInvalidData otherwise). For another precision they are
//     dequantized (q * scale in f32) and go through from_dense like float weights.
// P.slide_weight tensors, if present, are ignored: SlideLinear slides the weight itself.
// No CUDA types here. Errors: slidesparse::Error (kNotFound, kBadFormat, kInvalidArgument,
// kInvalidData, kUnsupported: no device, no cuSPARSELt for a sparse model, head_dim > 128).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "slidesparse/llama.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/slide_linear.hpp"

namespace slidesparse {

struct LlamaGpuOptions {
  std::optional<Pattern> pattern;  // none: dense projections (SlideLinear dense_only: no pruning)
  LinearPrecision precision = LinearPrecision::kBF16;
  // kAuto: each projection's crossover (SlideLinear::dense_below_m); kSparse / kDense force a path
  // for every projection of a pattern model (kDense: the dense fallback on the same pruned,
  // quantized operands). kSparse without a pattern is kInvalidArgument.
  LinearPath path = LinearPath::kAuto;
  int64_t max_tokens = 2048;  // longest sequence forward() accepts (scratch buffers, RoPE tables)
  // kAuto only: -1 measures the crossover once per projection shape (n, k) at load and gives the
  // result to every projection of that shape; >= 0 is used as given (0: always sparse).
  int64_t dense_below_m = -1;
  // Measure GEMM algorithms when a bucket is created (SlideLinearOptions::search); choices are
  // shared by all projections of one shape, so a 30-layer model searches each shape once.
  // false: library defaults (deterministic, faster to load, slower to run).
  bool search = true;
  // Replay the forward of a sequence length seen before as a CUDA graph (captured after its first,
  // eager run; up to 8 lengths kept): one launch instead of ~17 per layer, each projection's host
  // cost (~20 us) paid once. The results are the same bits either way.
  bool cuda_graphs = true;
};

class LlamaGpuModel {
 public:
  // Reads config.json and the weights, builds every projection on the CPU (prune, quantize, slide)
  // and uploads them to the current device.
  static LlamaGpuModel load(const std::string& dir, const LlamaGpuOptions& opts = {});
  LlamaGpuModel(LlamaGpuModel&&) noexcept;
  LlamaGpuModel& operator=(LlamaGpuModel&&) noexcept;
  ~LlamaGpuModel();

  // Logits [T, vocab], row-major f32 on the host. 1 <= T <= max_tokens, tokens in [0, vocab)
  // (kInvalidArgument otherwise). One forward at a time (calls from several threads serialize).
  // The first call at a new size creates GEMM plans (that one synchronizes and may search) and
  // captures the graph later calls of that size replay.
  std::vector<float> forward(const std::vector<int32_t>& tokens) const;

  // Median device time in ms of the forward pass over `tokens`, logits left on the device (no copy
  // to the host), over `iters` timed runs after `warmup` (at least 1) untimed ones.
  double time_forward_ms(const std::vector<int32_t>& tokens, int warmup, int iters) const;

  // Where the device time of one forward goes: per stage, summed over the layers, the median over
  // `iters` replays of a graph with an event after every stage, in ms. Stages: "norm" (RMSNorm with
  // the residual add or the embedding gather), "qkv", "rope", "attention", "o", "gate_up", "silu",
  // "down", "lm_head", "logits" (bf16 -> f32). A development aid; the events cost a little.
  std::vector<std::pair<std::string, double>> profile_ms(const std::vector<int32_t>& tokens, int iters) const;

  // Changes the path every projection takes from the next forward on (the same loaded operands:
  // kSparse vs kDense compares the two GEMMs on identical weights). kSparse needs a pattern. kAuto
  // on a model loaded with a forced path runs sparse everywhere (no crossover was measured).
  void set_path(LinearPath path);

  const LlamaConfig& config() const noexcept;
  const LlamaGpuOptions& options() const noexcept;
  double load_seconds() const noexcept;
  // What load() did: per projection kind, how many weights were taken as stored codes and how many
  // pruned / quantized at load, the resolved crossovers, the lm_head.
  const std::string& describe() const noexcept;

 private:
  struct Impl;
  explicit LlamaGpuModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace slidesparse
