// slidesparse: perplexity of a LlamaModel over a token stream.
//
// The stream is cut into non-overlapping windows of ctx tokens (a last, shorter window is used when
// it holds at least 2 tokens). Each window is one forward pass from an empty cache; its first token
// is context only, and every later token t+1 is scored by -log softmax(logits[t])[token[t+1]],
// computed and summed in double. ppl = exp(nll_sum / tokens_evaluated).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "slidesparse/llama.hpp"

namespace slidesparse {

struct PerplexityOptions {
  int64_t ctx = 512;
  int64_t max_windows = 0;  // 0: all
  // Called after each window: windows done, total windows, running ppl.
  std::function<void(int64_t done, int64_t total, double ppl)> progress;
};

struct PerplexityResult {
  int64_t tokens_evaluated = 0;
  int64_t windows = 0;
  double nll_sum = 0.0;
  double ppl = 0.0;
  double seconds = 0.0;
};

// -log softmax(logits)[target] in double, with max subtraction.
double token_nll(const float* logits, int64_t vocab, int32_t target);

PerplexityResult evaluate_perplexity(const LlamaModel& model, const std::vector<int32_t>& tokens,
                                     const PerplexityOptions& opts = {});

// The same over any causal LM: forward(window) returns logits [window.size(), vocab] row-major
// (the GPU model, or a CPU model wrapped by the caller).
using ForwardFn = std::function<std::vector<float>(const std::vector<int32_t>& window)>;
PerplexityResult evaluate_perplexity(const ForwardFn& forward, int64_t vocab, const std::vector<int32_t>& tokens,
                                     const PerplexityOptions& opts = {});

// Calibration for activation-aware (wanda) pruning: the per-column L2 norm of every projection's
// input over a token stream, norm[k] = sqrt(sum over tokens t of x[t,k]^2), summed in double.
// The stream is cut into windows exactly as for perplexity (every token of a window counts).
//
// With `hessians`, also the input Hessian of every projection for sparsegpt pruning:
// H[k, k] = sum over tokens of x x^T = X^T X. Projections fed the same input (the model calls the
// observer consecutively with the same pointer: q/k/v, gate/up) share one computation and get
// identical copies. Each window's X^T X is a blocked f32 GEMM (DenseLinear, sums of <= ctx
// products), accumulated across windows in double, stored as f32.
struct CalibrationResult {
  std::map<std::string, std::vector<float>> norms;  // projection name ("model.layers.0.mlp.up_proj") -> [k]
  std::map<std::string, std::vector<float>> hessians;  // same names -> [k, k] row-major (when asked for)
  int64_t tokens = 0, windows = 0;
  double seconds = 0.0;
  double hessian_seconds = 0.0;  // of `seconds`, the time spent in X^T X
};
CalibrationResult collect_input_norms(LlamaModel& model, const std::vector<int32_t>& tokens,
                                      const PerplexityOptions& opts = {}, bool hessians = false);

// Block-sequential calibration (the procedure of SparseGPT and Wanda): layer l's statistics are
// collected on the model whose layers 0..l-1 are already pruned, then layer l's projections are
// pruned with them (prune_layer, once per projection, after the whole layer was observed), and
// the pruned layer's outputs feed layer l+1. Later layers thus see the activations of the model
// that will actually run. prune_layer(name, W[n,k] f32 as loaded, n, k, norms[k], hessian or
// null) returns the pruned W exactly as the checkpoint will hold it (rounded to its dtype), so
// `prune --calib` with the same rule on the result reproduces the model observed here. The model
// must hold float projections (DenseLinear; kUnsupported otherwise) and is left pruned. Hidden
// states of all windows are kept between layers (tokens x hidden floats). progress reports layers.
using PruneLayerFn = std::function<std::vector<float>(const std::string& name, const std::vector<float>& w,
                                                      int64_t n, int64_t k, const std::vector<float>& norms,
                                                      const std::vector<float>* hessian)>;
CalibrationResult collect_sequential(LlamaModel& model, const std::vector<int32_t>& tokens,
                                     const PerplexityOptions& opts, bool hessians, const PruneLayerFn& prune_layer);

}  // namespace slidesparse
