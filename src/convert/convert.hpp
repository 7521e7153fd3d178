// slidesparse: offline conversion over whole checkpoints (prune, slide, verify, info, synth).
// The CLI is a thin layer over these; each returns a JSON report that the CLI prints either as a
// table or verbatim (--json). Everything streams tensor by tensor, so peak memory stays near the
// largest tensor, and nothing is left at the output path unless the whole conversion succeeded.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "slidesparse/pattern.hpp"
#include "slidesparse/prune.hpp"
#include "slidesparse/quant.hpp"

namespace slidesparse {

// Called as work proceeds: bytes of tensor data processed so far, total, current tensor name.
using ProgressFn = std::function<void(uint64_t done_bytes, uint64_t total_bytes, const std::string& tensor)>;

struct PruneOptions {
  Pattern pattern = Pattern::from_n(4);
  PruneMethod method = PruneMethod::kMagnitude;
  std::string calib_path;        // wanda: F32 [k] "P.input_norm"; sparsegpt: F32 [k, k] "P.input_hessian"
  double damp = 0.01;            // sparsegpt: H += damp * mean(diag H) * I
  Precision precision = Precision::kKeep;
  std::string include_re;        // RE2, partial match on tensor names; replaces the default rule
  std::string exclude_re;        // RE2, partial match; removes targets
  bool force = false;            // replace an existing OUT
  int num_threads = 0;           // 0: all hardware threads
  ProgressFn progress;
};
nlohmann::json prune_checkpoint(const std::string& in, const std::string& out, const PruneOptions& opts);

struct SlideOptions {
  bool force = false;
  int num_threads = 0;
  ProgressFn progress;
};
nlohmann::json slide_checkpoint(const std::string& in, const std::string& out, const SlideOptions& opts);

struct VerifyOptions {
  std::string against;  // dense checkpoint the pruned one came from ("" = skip)
  int num_threads = 0;
  ProgressFn progress;
};
// report["compliant"] is the verdict; problems are listed in report["problems"].
nlohmann::json verify_checkpoint(const std::string& path, const VerifyOptions& opts);

nlohmann::json info_checkpoint(const std::string& path, const ProgressFn& progress = {});

// A random Llama-shaped checkpoint (BF16/F16/F32), for demos, tests and benchmarks.
struct SynthOptions {
  int64_t layers = 2, hidden = 256, intermediate = 768, vocab = 1024;
  int64_t kv_heads_ratio = 4;  // q heads per kv head: k/v projections are [hidden/ratio, hidden]
  std::string dtype = "bf16";
  uint64_t seed = 0;
  int shards = 0;              // 0: single .safetensors file at OUT; >= 1: directory with N shards
  bool force = false;
  ProgressFn progress;
};
nlohmann::json synth_checkpoint(const std::string& out, const SynthOptions& opts);

// A llama.cpp GGUF (architecture llama) to a Hugging Face directory OUT: model.safetensors
// (dequantized, HF names and layouts, q/k RoPE row permutation undone), config.json
// (LlamaForCausalLM, from the llama.* / tokenizer.ggml.* metadata) and tokenizer_gguf.json.
struct ImportGgufOptions {
  std::string dtype = "bf16";  // bf16 or f32
  bool force = false;
  ProgressFn progress;
};
nlohmann::json import_gguf(const std::string& in, const std::string& out, const ImportGgufOptions& opts);

// Inverse of llama.cpp's q/k row permutation: src is the GGUF [rows, cols] matrix (rows =
// n_head * head_dim), dst the HF one: dst row h*hd + j*hd/2 + i = src row h*hd + 2*i + j.
void unpermute_rope_rows(const float* src, float* dst, int64_t rows, int64_t cols, int64_t n_head);

// `eval` / `calibrate` over a Hugging Face Llama directory (src/convert/model_cmds.cpp).
struct ModelRunOptions {
  std::string model;        // directory: config.json, model.safetensors, tokenizer_gguf.json
  std::string text;         // text file, tokenized with the model's tokenizer ...
  std::string ids;          // ... or int32 little-endian token ids (exactly one of the two)
  int64_t ctx = 512;        // window length (non-overlapping windows)
  int64_t max_tokens = 0;   // use the first N tokens only (0: all)
  std::string mode = "stored";  // projections: stored | int8 | fp8 (W8A8, quantized at load)
  bool slide = false;       // run the projections through their slid 2:4 form
  std::string pattern;      // for slide when the checkpoint has no slidesparse metadata
  int num_threads = 0;
  std::string device = "cpu";     // cpu | gpu (eval only)
  std::string gpu_path = "sparse";  // gpu: sparse (slid 2:4 GEMMs) | dense (same operands, dense GEMMs) | auto
  std::string dump_logits;  // eval: also write the first window's logits [T, vocab] as f32 LE here
  bool hessian = false;     // calibrate: also write P.input_hessian F32 [k, k] (for prune --method sparsegpt)
  // calibrate: block-sequential statistics for this prune method ("wanda" | "sparsegpt"; empty:
  // one pass over the model as loaded), pruning each layer to `pattern` before the next is observed.
  std::string sequential;
  double damp = 0.01;       // calibrate --sequential sparsegpt: as prune --damp
};
// The GPU model's forward function (src/api/eval_gpu.cpp in CUDA builds; otherwise a stub that
// throws kUnsupported).
struct GpuForward {
  std::function<std::vector<float>(const std::vector<int32_t>&)> forward;
  int64_t vocab = 0;
  std::string describe;
  double load_seconds = 0;
};
GpuForward load_gpu_forward(const ModelRunOptions& opts);
// done windows, total windows, running perplexity (0 for calibrate).
using EvalProgressFn = std::function<void(int64_t done, int64_t total, double ppl)>;
nlohmann::json eval_model(const ModelRunOptions& opts, const EvalProgressFn& progress = {});
// Writes OUT: safetensors with one F32 [k] tensor "P.input_norm" per projection P.
nlohmann::json calibrate_model(const ModelRunOptions& opts, const std::string& out, bool force,
                               const EvalProgressFn& progress = {});

int resolve_threads(int requested) noexcept;

}  // namespace slidesparse
