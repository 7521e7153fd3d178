// slidesparse api: the Llama forward on the GPU (include/slidesparse/llama_gpu.hpp). Loads the
// checkpoint on the CPU (one tensor at a time from the memory-mapped shards), builds one SlideLinear
// per fused projection, and runs the decoder as a fixed sequence of launches on one owned stream:
//   residual_rmsnorm (embedding gather) -> per layer: qkv -> rope_split -> attention -> o ->
//   residual_rmsnorm -> gate_up -> silu_mul -> down -> residual_rmsnorm -> lm_head -> bf16_to_f32.
// Scratch buffers are sized for max_tokens at load, so a forward allocates nothing of its own (the
// projections create their m-bucket plans on first use).
#include "slidesparse/llama_gpu.hpp"

#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <sstream>
#include <utility>

#include "backends/backend.hpp"
#include "backends/check.hpp"
#include "backends/detail.hpp"
#include "backends/plan_cache.hpp"
#include "kernels/llama_ops.cuh"
#include "slidesparse/checkpoint.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/prune.hpp"
#include "slidesparse/safetensors.hpp"
#include "slidesparse/types.hpp"

#define SLIDESPARSE_LLAMA_REQUIRE(cond, status, ...) \
  SLIDESPARSE_BACKEND_REQUIRE(cond, status, "llama_gpu", __VA_ARGS__)

namespace slidesparse {
namespace fs = std::filesystem;
namespace {

class OwnedStream {
 public:
  OwnedStream() { SLIDESPARSE_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
  ~OwnedStream() { cudaStreamDestroy(s_); }
  OwnedStream(const OwnedStream&) = delete;
  OwnedStream& operator=(const OwnedStream&) = delete;
  cudaStream_t get() const noexcept { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

void upload(detail::DeviceMemory& dst, const void* src, size_t bytes) {
  dst.reset(bytes);
  SLIDESPARSE_CUDA_CHECK(cudaMemcpy(dst.get(), src, bytes, cudaMemcpyHostToDevice));
}

// The tensors of a checkpoint by name, read in place from the memory-mapped shards.
class Weights {
 public:
  explicit Weights(const std::string& dir) : dir_(dir) {
    const Checkpoint ck = Checkpoint::open(dir);
    files_.reserve(ck.shards.size());
    for (size_t i = 0; i < ck.shards.size(); ++i) files_.push_back(SafetensorsFile::open(ck.shard_path(i)));
    for (size_t i = 0; i < files_.size(); ++i)
      for (const auto& t : files_[i].tensors()) where_[t.name] = {i, &t};
  }

  bool has(const std::string& name) const { return where_.count(name) != 0; }

  const TensorInfo& info(const std::string& name, const std::vector<int64_t>& shape) const {
    auto it = where_.find(name);
    SLIDESPARSE_LLAMA_REQUIRE(it != where_.end(), Status::kNotFound, "{}: tensor '{}' not found", dir_, name);
    const TensorInfo& t = *it->second.second;
    SLIDESPARSE_LLAMA_REQUIRE(t.shape == shape, Status::kBadFormat, "{}: tensor '{}' has shape [{}], config says [{}]",
                              dir_, name, fmt::join(t.shape, ", "), fmt::join(shape, ", "));
    return t;
  }
  const uint8_t* data(const std::string& name) const {
    const auto& [file, t] = where_.at(name);
    return files_[file].data(*t);
  }
  void release(const std::string& name) const {
    const auto& [file, t] = where_.at(name);
    files_[file].release(*t);
  }

  // F32 / F16 / BF16 as f32 (exact).
  std::vector<float> f32(const std::string& name, const std::vector<int64_t>& shape) const {
    const TensorInfo& t = info(name, shape);
    SLIDESPARSE_LLAMA_REQUIRE(t.dtype == DType::kF32 || t.dtype == DType::kF16 || t.dtype == DType::kBF16,
                              Status::kUnsupported, "{}: tensor '{}' has dtype {}; expected f32, f16 or bf16", dir_,
                              name, dtype_token(t.dtype));
    std::vector<float> out(size_t(t.numel()));
    const uint8_t* p = data(name);
    if (t.dtype == DType::kF32) {
      std::memcpy(out.data(), p, out.size() * 4);
    } else {
      for (size_t i = 0; i < out.size(); ++i) {
        uint16_t b;
        std::memcpy(&b, p + 2 * i, 2);
        out[i] = t.dtype == DType::kBF16 ? bf16_to_f32(b) : f16_to_f32(b);
      }
    }
    release(name);
    return out;
  }

  const std::string& dir() const noexcept { return dir_; }

 private:
  std::string dir_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, std::pair<size_t, const TensorInfo*>> where_;
};

constexpr size_t kMaxGraphs = 8;  // captured sequence lengths kept per model

bool is_quantized(DType d) noexcept { return d == DType::kI8 || d == DType::kE4M3; }

DType stored_dtype_of(LinearPrecision p) noexcept {
  return p == LinearPrecision::kI8 ? DType::kI8 : p == LinearPrecision::kE4M3 ? DType::kE4M3 : DType::kBF16;
}

std::string path_name(LinearPath p) {
  return p == LinearPath::kAuto ? "auto" : p == LinearPath::kSparse ? "sparse" : "dense";
}

}  // namespace

struct LlamaGpuModel::Impl {
  struct Layer {
    std::unique_ptr<SlideLinear> qkv, o, gate_up, down;
    detail::DeviceMemory input_norm, post_norm;
  };
  // How the projections of one kind were built, for describe().
  struct KindStats {
    int stored_codes = 0, from_float = 0, dequantized = 0;
    std::map<std::string, int> source_dtypes;
  };

  LlamaConfig cfg;
  LlamaGpuOptions opts;
  OwnedStream stream;
  // Declared before the layers: their buckets (created lazily, also in forward) consult it.
  std::unique_ptr<PlanCache> plan_cache;
  std::vector<Layer> layers;
  std::unique_ptr<SlideLinear> lm_head;
  detail::DeviceMemory embed, final_norm, rope_cos, rope_sin;
  struct Scratch {  // max_tokens rows each
    detail::DeviceMemory tokens, x, xn, qkv, q, k, v, att, proj_out, gate_up, act, logits_bf16, logits_f32;
  } buf;
  // Captured forwards by (tokens, path), oldest first.
  struct Graph {
    int64_t tokens = 0;
    LinearPath path = LinearPath::kAuto;
    cudaGraphExec_t exec = nullptr;
  };
  std::vector<Graph> graphs;
  std::map<std::pair<int64_t, int64_t>, int64_t> crossover;  // (n, k) -> resolved dense_below_m
  std::map<std::string, KindStats> kind_stats;
  std::string description;
  double load_s = 0;
  mutable std::mutex mu;

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() {
    for (const Graph& g : graphs) cudaGraphExecDestroy(g.exec);
  }

  int64_t qd() const noexcept { return cfg.heads * cfg.head_dim; }
  int64_t kvd() const noexcept { return cfg.kv_heads * cfg.head_dim; }

  // One fused projection from the checkpoint tensors `names` (each [n_i, k], stacked along n).
  std::unique_ptr<SlideLinear> projection(const Weights& w, const char* kind,
                                          const std::vector<std::pair<std::string, int64_t>>& parts, int64_t k) {
    KindStats& st = kind_stats[kind];
    int64_t n = 0;
    bool all_stored = true;  // every part holds codes of the precision the layer runs in
    for (const auto& [name, rows] : parts) {
      const TensorInfo& t = w.info(name, {rows, k});
      n += rows;
      st.source_dtypes[dtype_token(t.dtype)] += 1;
      all_stored = all_stored && is_quantized(t.dtype) && t.dtype == stored_dtype_of(opts.precision);
    }
    auto scale_of = [&](const std::string& name, int64_t rows) {
      const std::string sname = layer_prefix(name) + ".weight_scale";
      SLIDESPARSE_LLAMA_REQUIRE(w.has(sname), Status::kBadFormat,
                                "{}: '{}' is quantized but '{}' is missing (docs/FORMAT.md 3)", w.dir(), name, sname);
      const TensorInfo& s = w.info(sname, {rows});
      SLIDESPARSE_LLAMA_REQUIRE(s.dtype == DType::kF32, Status::kBadFormat, "{}: '{}' has dtype {}, expected f32",
                                w.dir(), sname, dtype_token(s.dtype));
      std::vector<float> v(static_cast<size_t>(rows));
      std::memcpy(v.data(), w.data(sname), v.size() * sizeof(float));
      return v;
    };

    SlideLinearOptions so;
    if (opts.pattern) so.pattern = *opts.pattern;
    so.dense_only = !opts.pattern.has_value();
    so.precision = opts.precision;
    so.search = opts.search;
    so.plan_cache = plan_cache.get();
    const auto shape = std::make_pair(n, k);
    const auto known = crossover.find(shape);
    if (opts.path != LinearPath::kAuto) {
      so.dense_below_m = 0;  // forward() forces the path; nothing to measure
    } else if (opts.dense_below_m >= 0) {
      so.dense_below_m = opts.dense_below_m;
    } else {
      so.dense_below_m = known != crossover.end() ? known->second : -1;
    }

    std::unique_ptr<SlideLinear> lin;
    if (all_stored) {
      const size_t es = dtype_size(stored_dtype_of(opts.precision));
      std::vector<uint8_t> q(size_t(n) * size_t(k) * es);
      std::vector<float> s;
      size_t off = 0;
      for (const auto& [name, rows] : parts) {
        std::memcpy(&q[off], w.data(name), size_t(rows) * size_t(k) * es);
        w.release(name);
        off += size_t(rows) * size_t(k) * es;
        const std::vector<float> part_scale = scale_of(name, rows);
        s.insert(s.end(), part_scale.begin(), part_scale.end());
      }
      if (opts.pattern) {
        const PatternReport rep = check_pattern(*opts.pattern, stored_dtype_of(opts.precision), q.data(), n, k);
        SLIDESPARSE_LLAMA_REQUIRE(
            rep.ok(), Status::kInvalidData,
            "{}: the stored {} codes of '{}' do not satisfy {} ({} of {} groups too dense, the first at row {} "
            "group {}, {} nonzeros at most): the checkpoint was pruned to a looser pattern. Load it with "
            "that pattern, without one (dense), or with another precision (dequantized, then pruned)",
            w.dir(), linear_precision_name(opts.precision), parts.front().first, opts.pattern->str(),
            rep.violating_groups, rep.groups, rep.first_bad_row, rep.first_bad_group, rep.max_group_nonzeros);
      }
      lin = std::make_unique<SlideLinear>(SlideLinear::from_quantized(q.data(), s.data(), n, k, so));
      st.stored_codes += 1;
    } else {
      std::vector<float> wf;
      wf.reserve(size_t(n) * size_t(k));
      bool any_quantized = false;
      for (const auto& [name, rows] : parts) {
        const TensorInfo& t = w.info(name, {rows, k});
        if (is_quantized(t.dtype)) {
          any_quantized = true;
          const std::vector<float> s = scale_of(name, rows);
          const uint8_t* p = w.data(name);
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = 0; c < k; ++c) {
              const uint8_t b = p[r * k + c];
              const float code = t.dtype == DType::kI8 ? float(int8_t(b)) : e4m3_to_f32(b);
              wf.push_back(code * s[size_t(r)]);
            }
          w.release(name);
        } else {
          const std::vector<float> part = w.f32(name, {rows, k});
          wf.insert(wf.end(), part.begin(), part.end());
        }
      }
      lin = std::make_unique<SlideLinear>(SlideLinear::from_dense(wf.data(), n, k, so));
      (any_quantized ? st.dequantized : st.from_float) += 1;
    }
    if (opts.pattern && opts.path == LinearPath::kAuto && known == crossover.end())
      crossover[shape] = lin->dense_below_m();
    return lin;
  }

  // Enqueues the whole forward for tokens on `stream`; the logits end in logits_f32. The token
  // upload stays outside the graphs (a graph reads buf.tokens).
  void run(const std::vector<int32_t>& tok) {
    const int64_t T = int64_t(tok.size());
    SLIDESPARSE_LLAMA_REQUIRE(T >= 1 && T <= opts.max_tokens, Status::kInvalidArgument,
                              "forward: {} tokens; this model takes 1 to max_tokens = {}", T, opts.max_tokens);
    for (int64_t t = 0; t < T; ++t)
      SLIDESPARSE_LLAMA_REQUIRE(tok[size_t(t)] >= 0 && tok[size_t(t)] < cfg.vocab, Status::kInvalidArgument,
                                "forward: token {} at position {} is outside [0, {})", tok[size_t(t)], t, cfg.vocab);
    const cudaStream_t s = stream.get();
    SLIDESPARSE_CUDA_CHECK(cudaMemcpyAsync(buf.tokens.get(), tok.data(), size_t(T) * sizeof(int32_t),
                                           cudaMemcpyHostToDevice, s));
    if (opts.cuda_graphs) {
      for (const Graph& g : graphs)
        if (g.tokens == T && g.path == opts.path) {
          SLIDESPARSE_CUDA_CHECK(cudaGraphLaunch(g.exec, s));
          return;
        }
    }
    enqueue(T);  // eager: creates the projections' buckets for T on first use
    if (!opts.cuda_graphs) return;
    SLIDESPARSE_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    cudaGraph_t graph = nullptr;
    try {
      enqueue(T);
    } catch (...) {
      cudaStreamEndCapture(s, &graph);
      if (graph != nullptr) cudaGraphDestroy(graph);
      throw;
    }
    SLIDESPARSE_CUDA_CHECK(cudaStreamEndCapture(s, &graph));
    cudaGraphExec_t exec = nullptr;
    const cudaError_t ie = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    SLIDESPARSE_CUDA_CHECK(ie);
    if (graphs.size() >= kMaxGraphs) {
      cudaGraphExecDestroy(graphs.front().exec);
      graphs.erase(graphs.begin());
    }
    graphs.push_back({T, opts.path, exec});
  }

  // `marker`, when set, is called after each stage with its name (profile_ms records an event).
  void enqueue(int64_t T, const std::function<void(const char*)>* marker = nullptr) {
    const int64_t h = cfg.hidden, hd = cfg.head_dim, ff = cfg.intermediate;
    const cudaStream_t s = stream.get();
    const LinearPath path = opts.path;
    auto mark = [&](const char* stage) {
      if (marker != nullptr) (*marker)(stage);
    };
    auto norm = [&](const int32_t* gather, const void* add, const detail::DeviceMemory& weight) {
      RmsNormParams p;
      p.x = static_cast<float*>(buf.x.get());
      p.tokens = gather;
      p.embed = static_cast<const float*>(embed.get());
      p.add_bf16 = add;
      p.weight = static_cast<const float*>(weight.get());
      p.out_bf16 = buf.xn.get();
      p.rows = T;
      p.h = h;
      p.eps = float(cfg.rms_norm_eps);
      SLIDESPARSE_CUDA_CHECK(residual_rmsnorm(p, s));
    };
    norm(static_cast<const int32_t*>(buf.tokens.get()), nullptr, layers.front().input_norm);
    mark("norm");
    for (size_t l = 0; l < layers.size(); ++l) {
      Layer& L = layers[l];
      L.qkv->forward(buf.xn.get(), T, buf.qkv.get(), s, path);
      mark("qkv");
      RopeSplitParams rp;
      rp.qkv_bf16 = buf.qkv.get();
      rp.cos = static_cast<const float*>(rope_cos.get());
      rp.sin = static_cast<const float*>(rope_sin.get());
      rp.q = static_cast<float*>(buf.q.get());
      rp.k = static_cast<float*>(buf.k.get());
      rp.v = static_cast<float*>(buf.v.get());
      rp.tokens = T;
      rp.heads = int(cfg.heads);
      rp.kv_heads = int(cfg.kv_heads);
      rp.head_dim = int(hd);
      SLIDESPARSE_CUDA_CHECK(rope_split(rp, s));
      mark("rope");
      AttentionParams ap;
      ap.q = rp.q;
      ap.k = rp.k;
      ap.v = rp.v;
      ap.out_bf16 = buf.att.get();
      ap.tokens = T;
      ap.heads = rp.heads;
      ap.kv_heads = rp.kv_heads;
      ap.head_dim = rp.head_dim;
      ap.scale = float(1.0 / std::sqrt(double(hd)));
      SLIDESPARSE_CUDA_CHECK(attention(ap, s));
      mark("attention");
      L.o->forward(buf.att.get(), T, buf.proj_out.get(), s, path);
      mark("o");
      norm(nullptr, buf.proj_out.get(), L.post_norm);
      mark("norm");
      L.gate_up->forward(buf.xn.get(), T, buf.gate_up.get(), s, path);
      mark("gate_up");
      SiluMulParams sp;
      sp.gate_up_bf16 = buf.gate_up.get();
      sp.out_bf16 = buf.act.get();
      sp.rows = T;
      sp.ff = ff;
      SLIDESPARSE_CUDA_CHECK(silu_mul(sp, s));
      mark("silu");
      L.down->forward(buf.act.get(), T, buf.proj_out.get(), s, path);
      mark("down");
      norm(nullptr, buf.proj_out.get(), l + 1 < layers.size() ? layers[l + 1].input_norm : final_norm);
      mark("norm");
    }
    lm_head->forward(buf.xn.get(), T, buf.logits_bf16.get(), s);
    mark("lm_head");
    SLIDESPARSE_CUDA_CHECK(bf16_to_f32(buf.logits_bf16.get(), static_cast<float*>(buf.logits_f32.get()), T * cfg.vocab, s));
    mark("logits");
  }
};

LlamaGpuModel::LlamaGpuModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LlamaGpuModel::LlamaGpuModel(LlamaGpuModel&&) noexcept = default;
LlamaGpuModel& LlamaGpuModel::operator=(LlamaGpuModel&&) noexcept = default;
LlamaGpuModel::~LlamaGpuModel() = default;
const LlamaConfig& LlamaGpuModel::config() const noexcept { return impl_->cfg; }
const LlamaGpuOptions& LlamaGpuModel::options() const noexcept { return impl_->opts; }
double LlamaGpuModel::load_seconds() const noexcept { return impl_->load_s; }
const std::string& LlamaGpuModel::describe() const noexcept { return impl_->description; }

LlamaGpuModel LlamaGpuModel::load(const std::string& dir, const LlamaGpuOptions& opts) {
  const auto t0 = std::chrono::steady_clock::now();
  SLIDESPARSE_LLAMA_REQUIRE(opts.max_tokens >= 1, Status::kInvalidArgument, "max_tokens = {}: at least 1",
                            opts.max_tokens);
  SLIDESPARSE_LLAMA_REQUIRE(opts.dense_below_m >= -1, Status::kInvalidArgument,
                            "dense_below_m = {}: use -1 (measure), 0 (never dense) or a row count", opts.dense_below_m);
  SLIDESPARSE_LLAMA_REQUIRE(opts.pattern.has_value() || opts.path != LinearPath::kSparse, Status::kInvalidArgument,
                            "LinearPath::kSparse needs a pattern (a model without one has dense projections only)");
  int devices = 0;
  const cudaError_t de = cudaGetDeviceCount(&devices);
  SLIDESPARSE_LLAMA_REQUIRE(de == cudaSuccess && devices > 0, Status::kUnsupported, "no CUDA device: {}",
                            de == cudaSuccess ? "0 devices" : cudaGetErrorString(de));

  const fs::path cfg_path = fs::path(dir) / "config.json";
  std::ifstream in(cfg_path);
  SLIDESPARSE_LLAMA_REQUIRE(in.good(), Status::kNotFound, "{}: cannot open config.json", cfg_path.string());
  std::stringstream text;
  text << in.rdbuf();
  auto impl = std::make_unique<Impl>();
  Impl& I = *impl;
  I.opts = opts;
  I.cfg = parse_llama_config(text.str(), cfg_path.string());
  const LlamaConfig& c = I.cfg;
  SLIDESPARSE_LLAMA_REQUIRE(c.head_dim <= kAttentionMaxHeadDim, Status::kUnsupported,
                            "{}: head_dim {} is not supported by the GPU attention kernel (at most {})",
                            cfg_path.string(), c.head_dim, kAttentionMaxHeadDim);
  I.plan_cache = std::make_unique<PlanCache>(backend_env().key());

  const Weights w(dir);
  const int64_t h = c.hidden, qd = I.qd(), kvd = I.kvd(), ff = c.intermediate, T = opts.max_tokens;
  auto norm_weight = [&](detail::DeviceMemory& dst, const std::string& name) {
    const std::vector<float> v = w.f32(name, {h});
    upload(dst, v.data(), v.size() * sizeof(float));
  };
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    Impl::Layer L;
    norm_weight(L.input_norm, p + "input_layernorm.weight");
    norm_weight(L.post_norm, p + "post_attention_layernorm.weight");
    L.qkv = I.projection(w, "qkv",
                         {{p + "self_attn.q_proj.weight", qd},
                          {p + "self_attn.k_proj.weight", kvd},
                          {p + "self_attn.v_proj.weight", kvd}},
                         h);
    L.o = I.projection(w, "o", {{p + "self_attn.o_proj.weight", h}}, qd);
    L.gate_up = I.projection(w, "gate_up", {{p + "mlp.gate_proj.weight", ff}, {p + "mlp.up_proj.weight", ff}}, h);
    L.down = I.projection(w, "down", {{p + "mlp.down_proj.weight", h}}, ff);
    I.layers.push_back(std::move(L));
  }
  norm_weight(I.final_norm, "model.norm.weight");

  const std::vector<float> embed = w.f32("model.embed_tokens.weight", {c.vocab, h});
  upload(I.embed, embed.data(), embed.size() * sizeof(float));
  SlideLinearOptions head;
  head.dense_only = true;
  head.precision = LinearPrecision::kBF16;
  head.search = opts.search;
  head.plan_cache = I.plan_cache.get();
  if (c.tie_word_embeddings) {
    I.lm_head = std::make_unique<SlideLinear>(SlideLinear::from_dense(embed.data(), c.vocab, h, head));
  } else {
    const std::vector<float> lm = w.f32("lm_head.weight", {c.vocab, h});
    I.lm_head = std::make_unique<SlideLinear>(SlideLinear::from_dense(lm.data(), c.vocab, h, head));
  }

  // RoPE tables as the CPU model computes them: inv_freq rounded to f32 once, the angle
  // pos * inv_freq in f32, cos / sin of that angle in double rounded to f32.
  const int64_t half = c.head_dim / 2;
  std::vector<float> cos_t(size_t(T * half)), sin_t(size_t(T * half));
  for (int64_t i = 0; i < half; ++i) {
    const float inv_freq = float(1.0 / std::pow(c.rope_theta, double(2 * i) / double(c.head_dim)));
    for (int64_t t = 0; t < T; ++t) {
      const float ang = float(t) * inv_freq;
      cos_t[size_t(t * half + i)] = float(std::cos(double(ang)));
      sin_t[size_t(t * half + i)] = float(std::sin(double(ang)));
    }
  }
  upload(I.rope_cos, cos_t.data(), cos_t.size() * sizeof(float));
  upload(I.rope_sin, sin_t.data(), sin_t.size() * sizeof(float));

  const size_t rows = size_t(T), bf = 2, f4 = 4;
  I.buf.tokens.reset(rows * sizeof(int32_t));
  I.buf.x.reset(rows * size_t(h) * f4);
  I.buf.xn.reset(rows * size_t(h) * bf);
  I.buf.qkv.reset(rows * size_t(qd + 2 * kvd) * bf);
  I.buf.q.reset(rows * size_t(qd) * f4);
  I.buf.k.reset(rows * size_t(kvd) * f4);
  I.buf.v.reset(rows * size_t(kvd) * f4);
  I.buf.att.reset(rows * size_t(qd) * bf);
  I.buf.proj_out.reset(rows * size_t(h) * bf);
  I.buf.gate_up.reset(rows * size_t(2 * ff) * bf);
  I.buf.act.reset(rows * size_t(ff) * bf);
  I.buf.logits_bf16.reset(rows * size_t(c.vocab) * bf);
  I.buf.logits_f32.reset(rows * size_t(c.vocab) * f4);

  I.load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string d = fmt::format(
      "LlamaGpuModel {}: {} layers, hidden {}, ffn {}, heads {}/{} (head_dim {}), vocab {}; projections {} {} "
      "path {}{}; max_tokens {}{}; loaded in {:.2f} s",
      dir, c.layers, h, ff, c.heads, c.kv_heads, c.head_dim, c.vocab,
      opts.pattern ? opts.pattern->str() : std::string("dense"), linear_precision_name(opts.precision),
      path_name(opts.path), opts.search ? ", searched GEMM algorithms" : "", opts.max_tokens,
      opts.cuda_graphs ? ", CUDA graphs" : "", I.load_s);
  for (const auto& [kind, st] : I.kind_stats) {
    std::string src;
    for (const auto& [dt, count] : st.source_dtypes) src += fmt::format("{}{} x {}", src.empty() ? "" : ", ", count, dt);
    d += fmt::format("\n  {}: {} from stored codes, {} from float weights, {} dequantized (stored tensors: {})", kind,
                     st.stored_codes, st.from_float, st.dequantized, src);
  }
  for (const auto& [shape, below] : I.crossover)
    d += fmt::format("\n  crossover n={} k={}: dense below m = {}", shape.first, shape.second,
                     below == std::numeric_limits<int64_t>::max() ? std::string("never sparse") : std::to_string(below));
  d += fmt::format("\n  lm_head: dense bf16 [{}, {}]{}", c.vocab, h, c.tie_word_embeddings ? " (tied embedding)" : "");
  I.description = std::move(d);
  return LlamaGpuModel(std::move(impl));
}

void LlamaGpuModel::set_path(LinearPath path) {
  Impl& I = *impl_;
  SLIDESPARSE_LLAMA_REQUIRE(I.opts.pattern.has_value() || path != LinearPath::kSparse, Status::kInvalidArgument,
                            "LinearPath::kSparse needs a pattern (a model without one has dense projections only)");
  std::lock_guard<std::mutex> lock(I.mu);
  I.opts.path = path;
}

std::vector<float> LlamaGpuModel::forward(const std::vector<int32_t>& tokens) const {
  Impl& I = *impl_;
  std::lock_guard<std::mutex> lock(I.mu);
  I.run(tokens);
  std::vector<float> logits(tokens.size() * size_t(I.cfg.vocab));
  SLIDESPARSE_CUDA_CHECK(cudaMemcpyAsync(logits.data(), I.buf.logits_f32.get(), logits.size() * sizeof(float),
                                         cudaMemcpyDeviceToHost, I.stream.get()));
  SLIDESPARSE_CUDA_CHECK(cudaStreamSynchronize(I.stream.get()));
  return logits;
}

double LlamaGpuModel::time_forward_ms(const std::vector<int32_t>& tokens, int warmup, int iters) const {
  Impl& I = *impl_;
  SLIDESPARSE_LLAMA_REQUIRE(iters >= 1, Status::kInvalidArgument, "time_forward_ms: iters = {}", iters);
  std::lock_guard<std::mutex> lock(I.mu);
  for (int i = 0; i < std::max(1, warmup); ++i) I.run(tokens);  // creates the buckets
  SLIDESPARSE_CUDA_CHECK(cudaStreamSynchronize(I.stream.get()));
  return detail::time_launches_us([&] { I.run(tokens); }, 0, iters, I.stream.get()) / 1000.0;
}

}  // namespace slidesparse

namespace slidesparse {

std::vector<std::pair<std::string, double>> LlamaGpuModel::profile_ms(const std::vector<int32_t>& tokens,
                                                                     int iters) const {
  Impl& I = *impl_;
  SLIDESPARSE_LLAMA_REQUIRE(iters >= 1, Status::kInvalidArgument, "profile_ms: iters = {}", iters);
  std::lock_guard<std::mutex> lock(I.mu);
  I.run(tokens);  // validates and uploads the tokens, creates the buckets
  const cudaStream_t s = I.stream.get();
  SLIDESPARSE_CUDA_CHECK(cudaStreamSynchronize(s));

  // One event before the first stage and one after each: 1 + 1 + 9 per layer + 2.
  struct Events {
    std::vector<cudaEvent_t> e;
    ~Events() {
      for (cudaEvent_t x : e) cudaEventDestroy(x);
    }
  } ev;
  for (size_t i = 0; i < 4 + 9 * I.layers.size(); ++i) {
    ev.e.push_back(nullptr);
    SLIDESPARSE_CUDA_CHECK(cudaEventCreate(&ev.e.back()));
  }
  std::vector<std::string> names;
  const std::function<void(const char*)> mark = [&](const char* stage) {
    SLIDESPARSE_LLAMA_REQUIRE(names.size() < ev.e.size(), Status::kInternal, "profile_ms: more stages than events");
    // External records: the events of a graph's replay can be timed from the host.
    SLIDESPARSE_CUDA_CHECK(cudaEventRecordWithFlags(ev.e[names.size()], s, cudaEventRecordExternal));
    names.emplace_back(stage);
  };
  // Replayed as a graph, so that the host cost of issuing the launches never shows as GPU time.
  SLIDESPARSE_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  cudaGraph_t graph = nullptr;
  try {
    mark("start");
    I.enqueue(int64_t(tokens.size()), &mark);
  } catch (...) {
    cudaStreamEndCapture(s, &graph);
    if (graph != nullptr) cudaGraphDestroy(graph);
    throw;
  }
  SLIDESPARSE_CUDA_CHECK(cudaStreamEndCapture(s, &graph));
  struct Exec {
    cudaGraphExec_t x = nullptr;
    ~Exec() {
      if (x != nullptr) cudaGraphExecDestroy(x);
    }
  } exec;
  const cudaError_t ie = cudaGraphInstantiate(&exec.x, graph, 0);
  cudaGraphDestroy(graph);
  SLIDESPARSE_CUDA_CHECK(ie);

  std::vector<std::string> order;  // stage names in first-appearance order
  for (size_t i = 1; i < names.size(); ++i)
    if (std::find(order.begin(), order.end(), names[i]) == order.end()) order.push_back(names[i]);
  std::map<std::string, std::vector<double>> per_iter;
  for (int it = 0; it < iters; ++it) {
    SLIDESPARSE_CUDA_CHECK(cudaGraphLaunch(exec.x, s));
    SLIDESPARSE_CUDA_CHECK(cudaStreamSynchronize(s));
    std::map<std::string, double> sum;
    for (size_t i = 1; i < names.size(); ++i) {
      float ms = 0;
      SLIDESPARSE_CUDA_CHECK(cudaEventElapsedTime(&ms, ev.e[i - 1], ev.e[i]));
      sum[names[i]] += double(ms);
    }
    for (const auto& [name, ms] : sum) per_iter[name].push_back(ms);
  }
  std::vector<std::pair<std::string, double>> out;
  for (const std::string& name : order) out.emplace_back(name, detail::median_of(per_iter[name]));
  return out;
}

}  // namespace slidesparse
