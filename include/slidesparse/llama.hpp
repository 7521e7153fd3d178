// slidesparse: a small Llama-architecture forward pass on the CPU, in f32, for accuracy evaluation
// (perplexity of dense vs pruned / slid / quantized checkpoints). Follows Hugging Face
// LlamaForCausalLM: RMSNorm in f32, RoPE in the "rotate_half" convention, grouped-query causal
// attention, SwiGLU MLP, optional tied lm_head.
//
// Every projection goes through `Linear` (Y[m,n] = X[m,k] . W[n,k]^T), so the dense f32 layers can
// be swapped for the simulated W8A8 INT8 ones (or later, other backends) without touching the model.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "slidesparse/pattern.hpp"

namespace slidesparse {

// The fields of an HF config.json that the forward pass needs.
struct LlamaConfig {
  int64_t hidden = 0, intermediate = 0, layers = 0, heads = 0, kv_heads = 0, vocab = 0;
  int64_t head_dim = 0;       // config "head_dim", else hidden / heads
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;
};

// Y[m,n] = X[m,k] . W[n,k]^T, X and Y row-major f32.
struct Linear {
  virtual ~Linear() = default;
  virtual int64_t n() const noexcept = 0;
  virtual int64_t k() const noexcept = 0;
  virtual void apply(const float* x, int64_t m, float* y) const = 0;
};

// Dense f32. Stores W transposed ([k, n]) so the inner loop is an axpy over n that vectorizes
// without reassociating floating-point sums.
class DenseLinear : public Linear {
 public:
  DenseLinear(const float* w, int64_t n, int64_t k, int num_threads = 1);
  int64_t n() const noexcept override { return n_; }
  int64_t k() const noexcept override { return k_; }
  void apply(const float* x, int64_t m, float* y) const override;
  std::vector<float> weight() const;  // W[n,k], row-major

 private:
  int64_t n_, k_;
  int num_threads_;
  std::vector<float> wt_;  // [k, n]
};

// W8A8 INT8, simulated exactly as the GPU path computes it: per-token activation quantization
// (quantize_rows_i8 on the f32 rows), per-channel INT8 weights, integer accumulation, then
// y[m,n] = float(acc) * s_x[m] * s_w[n] in f32 (left to right).
class Int8Linear : public Linear {
 public:
  // Per-output-channel quantization of an f32 W[n,k] (quantize_rows_i8).
  static Int8Linear quantize(const float* w, int64_t n, int64_t k, int num_threads = 1);
  Int8Linear(std::vector<int8_t> w_q, std::vector<float> w_scale, int64_t n, int64_t k, int num_threads = 1);
  int64_t n() const noexcept override { return n_; }
  int64_t k() const noexcept override { return k_; }
  void apply(const float* x, int64_t m, float* y) const override;
  const std::vector<int8_t>& weight_q() const noexcept { return w_q_; }
  const std::vector<float>& weight_scale() const noexcept { return w_scale_; }
  int num_threads() const noexcept { return num_threads_; }

 private:
  int64_t n_, k_;
  int num_threads_;
  std::vector<int8_t> w_q_;     // [n, k]
  std::vector<float> w_scale_;  // [n]
};

// The slid form of an Int8Linear: W' = slide_weight(W_q) [n, k'], X' = lift_activations(X_q).
// Integer sums are exact, so the output is bit-identical to the unslid Int8Linear.
// Throws Error(kInvalidData) when W_q violates the pattern.
class SlidInt8Linear : public Linear {
 public:
  SlidInt8Linear(Pattern p, const Int8Linear& base);
  int64_t n() const noexcept override { return n_; }
  int64_t k() const noexcept override { return k_; }
  int64_t k_slide() const noexcept { return k_slide_; }
  void apply(const float* x, int64_t m, float* y) const override;

 private:
  Pattern p_;
  int64_t n_, k_, k_slide_;
  int num_threads_;
  std::vector<int8_t> w_slide_;  // [n, k']
  std::vector<float> w_scale_;   // [n]
};

struct LlamaLoadOptions {
  int num_threads = 0;  // 0: all hardware threads
};

class LlamaModel {
 public:
  // HF directory: config.json + model.safetensors or sharded model-*.safetensors with the index.
  // Weights F32/F16/BF16 are converted to f32. kNotFound / kBadFormat / kUnsupported.
  static LlamaModel load(const std::string& dir, const LlamaLoadOptions& opts = {});
  LlamaModel(LlamaModel&&) noexcept;
  LlamaModel& operator=(LlamaModel&&) noexcept;
  ~LlamaModel();

  // Logits [T, vocab], row-major. Tokens must lie in [0, vocab) (kInvalidArgument otherwise).
  std::vector<float> forward(const std::vector<int32_t>& tokens) const;
  const LlamaConfig& config() const noexcept;
  int num_threads() const noexcept;

  // Replace projections: f(name, current) returns the new Linear (same n, k) or nullptr to keep.
  // Names are the checkpoint prefixes, e.g. "model.layers.3.mlp.down_proj", and "lm_head".
  using LinearTransform = std::function<std::unique_ptr<Linear>(const std::string& name, const Linear& current)>;
  void transform_linears(const LinearTransform& f, bool include_lm_head = false);

 private:
  struct Impl;
  explicit LlamaModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Parse an HF config.json text (kBadFormat on missing/invalid fields).
LlamaConfig parse_llama_config(const std::string& json_text, const std::string& what);

}  // namespace slidesparse
