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
#include <optional>
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
  int num_threads() const noexcept { return num_threads_; }

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
  // w_slide: optional stored P.slide_weight [n, k'], checked against W by unsliding.
  SlidInt8Linear(Pattern p, const Int8Linear& base, const int8_t* w_slide = nullptr);
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

// W8A8 FP8 (OCP E4M3), simulated: per-token E4M3 activations (quantize_rows_e4m3 on the f32
// rows), per-channel E4M3 weights, products of the decoded codes (exact in f32), summed in f32 in
// k order, then y[m,n] = acc * s_x[m] * s_w[n] (left to right). The GPU sums in another order, so
// GPU and CPU agree to rounding, not bit for bit.
class Fp8Linear : public Linear {
 public:
  static Fp8Linear quantize(const float* w, int64_t n, int64_t k, int num_threads = 1);
  Fp8Linear(std::vector<uint8_t> w_q, std::vector<float> w_scale, int64_t n, int64_t k, int num_threads = 1);
  int64_t n() const noexcept override { return n_; }
  int64_t k() const noexcept override { return k_; }
  void apply(const float* x, int64_t m, float* y) const override;
  const std::vector<uint8_t>& weight_q() const noexcept { return w_q_; }
  const std::vector<float>& weight_scale() const noexcept { return w_scale_; }
  int num_threads() const noexcept { return num_threads_; }

 private:
  int64_t n_, k_;
  int num_threads_;
  std::vector<uint8_t> w_q_;    // [n, k] E4M3 codes
  std::vector<float> w_scale_;  // [n]
  DenseLinear decoded_;         // the codes as f32 values
};

// The slid forms of DenseLinear and Fp8Linear: W' = slide_weight(W) [n, k'], activations lifted
// (after per-token quantization for FP8). The same products are summed, in window order instead of
// k order, so outputs equal the unslid ones to f32 rounding (bit-identical only for INT8).
// `w_slide` (optional, [n, k']) is a stored P.slide_weight to use instead of sliding W here; it is
// checked against W by unsliding (kInvalidData when it does not reproduce W).
class SlidDenseLinear : public Linear {
 public:
  SlidDenseLinear(Pattern p, const DenseLinear& base, const float* w_slide = nullptr);
  int64_t n() const noexcept override { return n_; }
  int64_t k() const noexcept override { return k_; }
  int64_t k_slide() const noexcept { return k_slide_; }
  void apply(const float* x, int64_t m, float* y) const override;

 private:
  Pattern p_;
  int64_t n_, k_, k_slide_;
  int num_threads_;
  std::unique_ptr<DenseLinear> dense_;  // W' [n, k']
};

class SlidFp8Linear : public Linear {
 public:
  SlidFp8Linear(Pattern p, const Fp8Linear& base, const uint8_t* w_slide = nullptr);
  int64_t n() const noexcept override { return n_; }
  int64_t k() const noexcept override { return k_; }
  int64_t k_slide() const noexcept { return k_slide_; }
  void apply(const float* x, int64_t m, float* y) const override;

 private:
  Pattern p_;
  int64_t n_, k_, k_slide_;
  int num_threads_;
  std::vector<float> w_scale_;
  std::unique_ptr<DenseLinear> decoded_;  // decoded W' codes [n, k']
};

// How the projections (q/k/v/o/gate/up/down; never embeddings or lm_head) compute.
enum class LinearMode {
  kStored,  // as the checkpoint stores them: f32/f16/bf16 -> DenseLinear, I8 -> Int8Linear, E4M3 -> Fp8Linear
  kInt8,    // quantize float weights per channel at load (Int8Linear); I8 weights as stored
  kFp8,     // the same with E4M3 (Fp8Linear)
};
const char* linear_mode_name(LinearMode m) noexcept;  // "stored", "int8", "fp8"

struct LlamaLoadOptions {
  static LlamaLoadOptions threads(int n) {
    LlamaLoadOptions o;
    o.num_threads = n;
    return o;
  }
  int num_threads = 0;  // 0: all hardware threads
  LinearMode mode = LinearMode::kStored;
  // Run the projections through their slid (windowed 2:4) form: the checkpoint's P.slide_weight
  // where `slidesparse slide` wrote it, else slid at load. The pattern comes from the checkpoint's
  // slidesparse metadata, or from `pattern` (which must agree with it when both are present).
  bool slide = false;
  std::optional<Pattern> pattern;
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
  // forward() in its three parts, for layer-by-layer work (sequential calibration): hidden states
  // x are [T, hidden] row-major f32; forward == logits(apply_layer(... apply_layer(embed))).
  std::vector<float> embed(const std::vector<int32_t>& tokens) const;
  void apply_layer(int64_t layer, float* x, int64_t T) const;  // in place; layer in [0, config().layers)
  std::vector<float> logits(const float* x, int64_t T) const;  // final norm + lm_head: [T, vocab]
  const LlamaConfig& config() const noexcept;
  int num_threads() const noexcept;

  // Replace projections: f(name, current) returns the new Linear (same n, k) or nullptr to keep.
  // Names are the checkpoint prefixes, e.g. "model.layers.3.mlp.down_proj", and "lm_head".
  using LinearTransform = std::function<std::unique_ptr<Linear>(const std::string& name, const Linear& current)>;
  void transform_linears(const LinearTransform& f, bool include_lm_head = false);

  // Called with the input of every projection (q/k/v/o/gate/up/down, by name as above) right
  // before it is applied: x is [m, k] row-major f32. For calibration; empty to remove. Not
  // thread-safe against concurrent forward() calls.
  using LinearObserver = std::function<void(const std::string& name, const float* x, int64_t m, int64_t k)>;
  void set_linear_observer(LinearObserver observer);

  // What load() did: one line per distinct projection kind, e.g. "210 x Int8Linear (slid 6:8)".
  const std::string& describe() const noexcept;

 private:
  struct Impl;
  explicit LlamaModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Parse an HF config.json text (kBadFormat on missing/invalid fields).
LlamaConfig parse_llama_config(const std::string& json_text, const std::string& what);

}  // namespace slidesparse
