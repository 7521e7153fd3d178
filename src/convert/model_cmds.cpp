// `slidesparse eval` and `slidesparse calibrate`: perplexity of a Hugging Face Llama directory
// (dense, pruned, quantized or slid) on a text, and the per-column input norms that activation-
// aware (wanda) pruning uses, collected on a calibration text.
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "common/check.hpp"
#include "io/atomic_file.hpp"
#include "convert/convert.hpp"
#include "slidesparse/eval.hpp"
#include "slidesparse/checkpoint.hpp"
#include "slidesparse/llama.hpp"
#include "slidesparse/prune.hpp"
#include "slidesparse/safetensors.hpp"
#include "slidesparse/tokenizer.hpp"

namespace slidesparse {
namespace fs = std::filesystem;
namespace {

std::string read_all(const std::string& path, const char* what) {
  std::error_code ec;
  SLIDESPARSE_CHECK(fs::exists(path, ec), Status::kNotFound, "{} '{}' does not exist", what, path);
  SLIDESPARSE_CHECK(!fs::is_directory(path, ec), Status::kInvalidArgument, "{} '{}' is a directory", what, path);
  std::ifstream in(path, std::ios::binary);
  SLIDESPARSE_CHECK(in.good(), Status::kIoError, "cannot open {} '{}'", what, path);
  std::ostringstream ss;
  ss << in.rdbuf();
  SLIDESPARSE_CHECK(!in.bad(), Status::kIoError, "cannot read {} '{}'", what, path);
  return ss.str();
}

// Token ids from --text (tokenized with the model directory's tokenizer) or --ids (int32 LE).
struct TokenSource {
  std::vector<int32_t> ids;
  nlohmann::json report;
};
TokenSource load_tokens(const std::string& model_dir, const std::string& text, const std::string& ids_path,
                        int64_t max_tokens, int64_t vocab) {
  SLIDESPARSE_CHECK(text.empty() != ids_path.empty(), Status::kInvalidArgument,
                    "give exactly one of --text FILE and --ids FILE");
  SLIDESPARSE_CHECK(max_tokens >= 0, Status::kInvalidArgument, "--max-tokens must be >= 0, got {}", max_tokens);
  TokenSource t;
  const auto t0 = std::chrono::steady_clock::now();
  if (!text.empty()) {
    const std::string body = read_all(text, "text file");
    const BpeTokenizer tok = BpeTokenizer::load(model_dir);
    t.ids = tok.encode(body, /*add_bos=*/true);
    t.report = {{"text", text}, {"text_bytes", body.size()}, {"tokenizer", tok.pre_type()}};
  } else {
    const std::string body = read_all(ids_path, "ids file");
    SLIDESPARSE_CHECK(body.size() % 4 == 0, Status::kBadFormat,
                      "ids file '{}' has {} bytes, not a whole number of int32 ids", ids_path, body.size());
    t.ids.resize(body.size() / 4);
    std::memcpy(t.ids.data(), body.data(), body.size());
    t.report = {{"ids", ids_path}};
  }
  const int64_t all = int64_t(t.ids.size());
  for (size_t i = 0; i < t.ids.size(); ++i)
    SLIDESPARSE_CHECK(t.ids[i] >= 0 && t.ids[i] < vocab, Status::kInvalidData,
                      "token id {} at position {} is outside the model's vocabulary [0, {})", t.ids[i], i, vocab);
  if (max_tokens > 0 && all > max_tokens) t.ids.resize(size_t(max_tokens));
  t.report["tokens_total"] = all;
  t.report["tokens_used"] = t.ids.size();
  t.report["tokenize_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return t;
}

LlamaLoadOptions load_options(const ModelRunOptions& o) {
  LlamaLoadOptions lo;
  lo.num_threads = o.num_threads;
  if (o.mode == "stored") lo.mode = LinearMode::kStored;
  else if (o.mode == "int8") lo.mode = LinearMode::kInt8;
  else if (o.mode == "fp8") lo.mode = LinearMode::kFp8;
  else SLIDESPARSE_FAIL(Status::kInvalidArgument, "--precision '{}' is not one of: stored, int8, fp8", o.mode);
  lo.slide = o.slide;
  if (!o.pattern.empty()) lo.pattern = Pattern::parse(o.pattern);
  return lo;
}

// --dump-logits: the first window's logits [T, vocab], f32 little-endian, written atomically.
void dump_first_window(const ForwardFn& forward, const std::vector<int32_t>& ids, int64_t ctx, int64_t vocab,
                       const std::string& path, nlohmann::json& report) {
  const int64_t t = std::min<int64_t>(ctx, int64_t(ids.size()));
  const std::vector<float> logits = forward(std::vector<int32_t>(ids.begin(), ids.begin() + t));
  AtomicFile f(path);
  f.write(logits.data(), logits.size() * sizeof(float));
  f.commit();
  report["logits"] = {{"path", path}, {"tokens", t}, {"vocab", vocab}};
}

// The dtype of every tensor of a checkpoint (file or HF directory), from the shard headers.
std::map<std::string, DType> tensor_dtypes(const std::string& path) {
  const Checkpoint ck = Checkpoint::open(path);
  std::map<std::string, DType> out;
  for (size_t i = 0; i < ck.shards.size(); ++i) {
    const SafetensorsFile f = SafetensorsFile::open(ck.shard_path(i));
    for (const TensorInfo& t : f.tensors()) out[t.name] = t.dtype;
  }
  return out;
}

// Rounds f32 values to what a tensor of dtype dt holds (as prune writes them back), in place.
void round_to_dtype(DType dt, std::vector<float>& v) {
  if (dt == DType::kBF16)
    for (float& x : v) x = bf16_to_f32(f32_to_bf16(x));
  else if (dt == DType::kF16)
    for (float& x : v) x = f16_to_f32(f32_to_f16(x));
}

// calibrate --sequential: the pruning rule `prune --method M --pattern P --calib` applies to one
// projection, on its f32 weight, rounded back to the checkpoint's dtype.
PruneLayerFn sequential_pruner(const ModelRunOptions& o, int threads) {
  const auto method = prune_method_from_name(o.sequential);
  SLIDESPARSE_CHECK(method && *method != PruneMethod::kMagnitude, Status::kInvalidArgument,
                    "--sequential '{}' is not one of: wanda, sparsegpt", o.sequential);
  SLIDESPARSE_CHECK(!o.pattern.empty(), Status::kInvalidArgument,
                    "--sequential needs --pattern (the pattern prune will use, e.g. 6:8)");
  const Pattern pattern = Pattern::parse(o.pattern);
  SLIDESPARSE_CHECK(std::isfinite(o.damp) && o.damp >= 0, Status::kInvalidArgument,
                    "--damp must be finite and >= 0, got {}", o.damp);
  auto dtypes = std::make_shared<const std::map<std::string, DType>>(tensor_dtypes(o.model));
  const PruneMethod m = *method;
  const double damp = o.damp;
  return [=](const std::string& name, const std::vector<float>& w, int64_t n, int64_t k,
             const std::vector<float>& norms, const std::vector<float>* hessian) {
    const auto it = dtypes->find(name + ".weight");
    SLIDESPARSE_CHECK(it != dtypes->end() &&
                          (it->second == DType::kF32 || it->second == DType::kBF16 || it->second == DType::kF16),
                      Status::kUnsupported, "--sequential: '{}.weight' must be stored as f32, f16 or bf16", name);
    std::vector<float> out = w;
    if (m == PruneMethod::kSparseGpt) {
      prune_obs(pattern, out.data(), n, k, hessian->data(), damp, name, threads);
    } else {
      validate_col_norms(norms.data(), k, name);
      prune_inplace(pattern, m, DType::kF32, out.data(), n, k, norms.data(), name, threads);
    }
    round_to_dtype(it->second, out);
    return out;
  };
}

}  // namespace

// Replaced by the strong definition in src/api/eval_gpu.cpp when the CLI is built with CUDA.
__attribute__((weak)) GpuForward load_gpu_forward(const ModelRunOptions&) {
  SLIDESPARSE_FAIL(Status::kUnsupported,
                   "--device gpu: this slidesparse was built without CUDA (configure with a CUDA compiler and "
                   "cuSPARSELt, see README)");
}

nlohmann::json eval_model(const ModelRunOptions& o, const EvalProgressFn& progress) {
  SLIDESPARSE_CHECK(o.ctx >= 2, Status::kInvalidArgument, "--ctx must be >= 2, got {}", o.ctx);
  SLIDESPARSE_CHECK(o.device == "cpu" || o.device == "gpu", Status::kInvalidArgument,
                    "--device '{}' is not one of: cpu, gpu", o.device);
  // The model behind one forward function, on either device.
  GpuForward m;
  nlohmann::json extra;
  std::unique_ptr<LlamaModel> cpu;
  if (o.device == "gpu") {
    SLIDESPARSE_CHECK(!o.slide, Status::kInvalidArgument,
                      "--slide is for the CPU path; on the GPU a pruned model always runs slid (--gpu-path sparse), "
                      "--gpu-path dense runs the same operands unslid");
    m = load_gpu_forward(o);
    extra = {{"gpu_path", o.gpu_path}};
  } else {
    const auto t0 = std::chrono::steady_clock::now();
    cpu = std::make_unique<LlamaModel>(LlamaModel::load(o.model, load_options(o)));
    m.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    m.vocab = cpu->config().vocab;
    m.describe = cpu->describe();
    m.forward = [model = cpu.get()](const std::vector<int32_t>& w) { return model->forward(w); };
    extra = {{"threads", cpu->num_threads()}};
  }
  const TokenSource src = load_tokens(o.model, o.text, o.ids, o.max_tokens, m.vocab);
  PerplexityOptions po;
  po.ctx = o.ctx;
  po.progress = progress;
  const PerplexityResult r = evaluate_perplexity(m.forward, m.vocab, src.ids, po);
  nlohmann::json j = {{"command", "eval"},
                      {"model", o.model},
                      {"device", o.device},
                      {"precision", o.mode},
                      {"slide", o.slide},
                      {"linears", m.describe},
                      {"ctx", o.ctx},
                      {"windows", r.windows},
                      {"tokens_evaluated", r.tokens_evaluated},
                      {"nll_mean", r.nll_sum / double(r.tokens_evaluated)},
                      {"ppl", r.ppl},
                      {"seconds", r.seconds},
                      {"load_seconds", m.load_seconds},
                      {"tokens_per_second", double(r.tokens_evaluated + r.windows) / r.seconds}};
  j.update(extra);
  j.update(src.report);
  if (!o.dump_logits.empty()) dump_first_window(m.forward, src.ids, o.ctx, m.vocab, o.dump_logits, j);
  return j;
}

nlohmann::json calibrate_model(const ModelRunOptions& o, const std::string& out, bool force,
                               const EvalProgressFn& progress) {
  SLIDESPARSE_CHECK(o.ctx >= 1, Status::kInvalidArgument, "--ctx must be >= 1, got {}", o.ctx);
  SLIDESPARSE_CHECK(!out.empty(), Status::kInvalidArgument, "calibrate needs an output file (-o FILE)");
  std::error_code ec;
  SLIDESPARSE_CHECK(!fs::is_directory(out, ec), Status::kInvalidArgument, "output '{}' is a directory", out);
  SLIDESPARSE_CHECK(force || !fs::exists(out, ec), Status::kAlreadyExists,
                    "output '{}' exists (use --force to replace it)", out);
  // Norms are collected on the model as it computes in float: the dense (or pruned) weights.
  LlamaLoadOptions lo;
  lo.num_threads = o.num_threads;
  LlamaModel model = LlamaModel::load(o.model, lo);
  const TokenSource src = load_tokens(o.model, o.text, o.ids, o.max_tokens, model.config().vocab);
  PerplexityOptions po;
  po.ctx = o.ctx;
  po.progress = progress;
  const bool seq = !o.sequential.empty();
  const bool hessians = o.hessian || o.sequential == "sparsegpt";
  const CalibrationResult r = seq ? collect_sequential(model, src.ids, po, hessians, sequential_pruner(o, model.num_threads()))
                                  : collect_input_norms(model, src.ids, po, hessians);

  std::vector<OwnedTensor> tensors;
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& [name, v] : r.norms) {
    OwnedTensor t;
    t.spec = TensorSpec{name + ".input_norm", DType::kF32, {int64_t(v.size())}};
    t.bytes.resize(v.size() * sizeof(float));
    std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
    tensors.push_back(std::move(t));
    double mn = INFINITY, mx = 0;
    for (float x : v) mn = std::min(mn, double(x)), mx = std::max(mx, double(x));
    layers.push_back({{"tensor", name + ".input_norm"}, {"k", v.size()}, {"min", mn}, {"max", mx}});
  }
  for (const auto& [name, h] : r.hessians) {
    const int64_t k = int64_t(r.norms.at(name).size());
    OwnedTensor t;
    t.spec = TensorSpec{name + ".input_hessian", DType::kF32, {k, k}};
    t.bytes.resize(h.size() * sizeof(float));
    std::memcpy(t.bytes.data(), h.data(), t.bytes.size());
    tensors.push_back(std::move(t));
  }
  nlohmann::json info = {{"tokens", r.tokens}, {"windows", r.windows}, {"ctx", o.ctx}, {"hessian", hessians}};
  if (seq) {
    info["sequential"] = {{"method", o.sequential}, {"pattern", o.pattern}};
    if (o.sequential == "sparsegpt") info["sequential"]["damp"] = o.damp;
  }
  info.update(src.report);
  write_safetensors(out, tensors, {{"slidesparse_calibration", info.dump()}});  // temp file + rename
  nlohmann::json j = {{"command", "calibrate"}, {"model", o.model}, {"output", out},   {"tensors", tensors.size()},
                      {"tokens", r.tokens},      {"windows", r.windows}, {"seconds", r.seconds}, {"layers", layers}};
  if (hessians) j["hessian_seconds"] = r.hessian_seconds;
  if (seq) j["sequential"] = info["sequential"];
  j.update(src.report);
  return j;
}

}  // namespace slidesparse
