// `slidesparse prune`: select target linears, prune them (2N-2):2N from their original values,
// optionally quantize per output channel, and stream everything else through byte for byte.
#include <re2/re2.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <optional>
#include <set>
#include <thread>

#include <fmt/ranges.h>

#include "common/check.hpp"
#include "convert/convert.hpp"
#include "convert/output.hpp"
#include "slidesparse/checkpoint.hpp"
#include "slidesparse/ternary.hpp"

namespace slidesparse {
namespace {

std::unique_ptr<RE2> compile_regex(const std::string& pattern, const char* option) {
  if (pattern.empty()) return nullptr;
  RE2::Options o;
  o.set_log_errors(false);
  auto re = std::make_unique<RE2>(pattern, o);
  SLIDESPARSE_CHECK(re->ok(), Status::kInvalidArgument, "invalid {} regular expression '{}': {}",
                    option, pattern, re->error());
  return re;
}

void store_u16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

bool prunable_dtype(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

DType output_dtype(Precision p, DType in) {
  switch (p) {
    case Precision::kInt8:
    case Precision::kTernary: return DType::kI8;
    case Precision::kFp8: return DType::kE4M3;
    case Precision::kKeep: break;
  }
  return in;
}

// A calibration file written by `calibrate --sequential M --pattern P` describes the model pruned
// with M and P layer by layer; pruning with anything else would use another model's statistics.
void check_sequential_calibration(const SafetensorsFile& calib, const PruneOptions& opts) {
  const auto it = calib.metadata().find("slidesparse_calibration");
  if (it == calib.metadata().end()) return;
  const nlohmann::json info = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
  if (!info.is_object() || !info.contains("sequential") || !info["sequential"].is_object()) return;
  const nlohmann::json& sq = info["sequential"];
  const std::string m = sq.value("method", std::string()), p = sq.value("pattern", std::string());
  const bool same_pattern = [&] {
    try {
      return Pattern::parse(p) == opts.pattern;
    } catch (const Error&) {
      return false;
    }
  }();
  SLIDESPARSE_CHECK(m == prune_method_name(opts.method) && same_pattern, Status::kInvalidArgument,
                    "--calib '{}' was collected sequentially for --method {} --pattern {}; pruning with --method {} "
                    "--pattern {} would use the statistics of a different model (collect them again, or calibrate "
                    "without --sequential)",
                    opts.calib_path, m, p, prune_method_name(opts.method), opts.pattern.str());
  if (opts.method == PruneMethod::kSparseGpt && sq.contains("damp") && sq["damp"].is_number())
    SLIDESPARSE_CHECK(sq["damp"].get<double>() == opts.damp, Status::kInvalidArgument,
                      "--calib '{}' was collected sequentially with --damp {}; prune was given --damp {}",
                      opts.calib_path, sq["damp"].get<double>(), opts.damp);
}

}  // namespace

int resolve_threads(int requested) noexcept {
  if (requested > 0) return requested;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw ? int(hw) : 1;
}

nlohmann::json prune_checkpoint(const std::string& in, const std::string& out, const PruneOptions& opts) {
  const auto t0 = std::chrono::steady_clock::now();
  const int threads = resolve_threads(opts.num_threads);
  check_output_path(in, out, opts.force);
  const Checkpoint ckpt = Checkpoint::open(in);

  auto include = compile_regex(opts.include_re, "--include");
  auto exclude = compile_regex(opts.exclude_re, "--exclude");

  const bool obs = opts.method == PruneMethod::kSparseGpt;
  const bool ternary = opts.precision == Precision::kTernary;
  // Ternary pruning is defined by |w| alone (docs/FORMAT.md section 3): activation-aware scores
  // would need their own rule, and sparsegpt's updated values would change the per-tensor scale.
  SLIDESPARSE_CHECK(!ternary || opts.method == PruneMethod::kMagnitude, Status::kInvalidArgument,
                    "--precision ternary prunes by magnitude only (drops the smallest |w| among the nonzero ternary "
                    "codes); --method {} is not supported with it",
                    prune_method_name(opts.method));
  SLIDESPARSE_CHECK(std::isfinite(opts.damp) && opts.damp >= 0.0, Status::kInvalidArgument,
                    "--damp must be a finite value >= 0, got {}", opts.damp);
  std::optional<SafetensorsFile> calib;
  if (opts.method == PruneMethod::kWanda) {
    SLIDESPARSE_CHECK(!opts.calib_path.empty(), Status::kInvalidArgument,
                      "--method wanda needs --calib FILE (per-column input norms, see docs/FORMAT.md)");
    calib.emplace(SafetensorsFile::open(opts.calib_path));
  } else if (obs) {
    SLIDESPARSE_CHECK(!opts.calib_path.empty(), Status::kInvalidArgument,
                      "--method sparsegpt needs --calib FILE with input Hessians (`calibrate --hessian`, see "
                      "docs/FORMAT.md)");
    calib.emplace(SafetensorsFile::open(opts.calib_path));
  }
  if (calib) check_sequential_calibration(*calib, opts);

  // Pass 1, headers only: choose targets and validate everything before writing a byte.
  SlideMetadata meta;
  meta.pattern = opts.pattern;
  meta.method = prune_method_name(opts.method);
  std::set<std::string> targets, all_names;
  nlohmann::json skipped = nlohmann::json::array();
  int64_t params_total = 0;
  for (size_t i = 0; i < ckpt.shards.size(); ++i) {
    const SafetensorsFile shard = SafetensorsFile::open(ckpt.shard_path(i));
    auto it = shard.metadata().find(kMetadataKey);
    SLIDESPARSE_CHECK(it == shard.metadata().end(), Status::kInvalidArgument,
                      "'{}' is already a slidesparse checkpoint; prune the dense original instead",
                      ckpt.shard_path(i));
    for (const auto& t : shard.tensors()) {
      all_names.insert(t.name);
      params_total += t.numel();
      bool selected = include ? RE2::PartialMatch(t.name, *include) : is_default_target(t.name);
      if (selected && exclude && RE2::PartialMatch(t.name, *exclude)) selected = false;
      if (!selected) continue;
      const std::string prefix = layer_prefix(t.name);
      std::string why;
      if (prefix.empty()) why = "name does not end in .weight";
      else if (t.shape.size() != 2) why = fmt::format("{}-D, pruning needs a 2-D [n, k] weight", t.shape.size());
      else if (!prunable_dtype(t.dtype))
        why = fmt::format("dtype {} (prunable: f32, f16, bf16)", dtype_token(t.dtype));
      else if (t.shape[0] == 0 || t.shape[1] == 0) why = "empty tensor";
      if (!why.empty()) {
        skipped.push_back({{"tensor", t.name}, {"reason", why}});
        continue;
      }
      const int64_t k = t.shape[1];
      if (calib && obs) {
        const std::string h_name = prefix + ".input_hessian";
        const TensorInfo* ht = calib->find(h_name);
        SLIDESPARSE_CHECK(ht != nullptr, Status::kInvalidData,
                          "calibration file '{}' has no tensor '{}' for layer '{}' (write it with `calibrate "
                          "--hessian`)",
                          opts.calib_path, h_name, t.name);
        SLIDESPARSE_CHECK(ht->dtype == DType::kF32 && ht->shape.size() == 2 && ht->shape[0] == k && ht->shape[1] == k,
                          Status::kInvalidData, "calibration tensor '{}' must be F32 [{}, {}], got {} [{}]", h_name, k,
                          k, dtype_token(ht->dtype), fmt::join(ht->shape, ", "));
      } else if (calib) {
        const std::string norm_name = prefix + ".input_norm";
        const TensorInfo* nt = calib->find(norm_name);
        SLIDESPARSE_CHECK(nt != nullptr, Status::kInvalidData,
                          "calibration file '{}' has no tensor '{}' for layer '{}'", opts.calib_path,
                          norm_name, t.name);
        SLIDESPARSE_CHECK(nt->dtype == DType::kF32 && nt->shape.size() == 1 && nt->shape[0] == k,
                          Status::kInvalidData, "calibration tensor '{}' must be F32 [{}], got {} [{}]",
                          norm_name, k, dtype_token(nt->dtype), fmt::join(nt->shape, ", "));
      }
      meta.layers[prefix] = LayerFormat{k, dtype_token(output_dtype(opts.precision, t.dtype)), 0,
                                        ternary ? kQuantTernary : ""};
      targets.insert(t.name);
    }
  }
  SLIDESPARSE_CHECK(!targets.empty(), Status::kInvalidArgument,
                    "no tensor of '{}' was selected for pruning (default: 2-D *_proj.weight of "
                    "q/k/v/o/gate/up/down, qkv, gate_up; use --include REGEX to choose others)",
                    in);
  if (opts.precision != Precision::kKeep) {
    for (const auto& name : targets) {
      const std::string scale = layer_prefix(name) + ".weight_scale";
      SLIDESPARSE_CHECK(!all_names.count(scale), Status::kInvalidData,
                        "input already holds '{}'; it would clash with the new per-channel scale", scale);
    }
  }
  const std::string meta_json = meta.to_json();

  // Pass 2: stream. Per-layer results are collected as the shards are written.
  nlohmann::json layers = nlohmann::json::array();
  int64_t params_pruned = 0, params_in_targets = 0;
  // sparsegpt: the last few factorizations with the Hessian bytes they came from. Layers are emitted
  // in file order (e.g. k, o, q, v within a block), so a handful of entries lets q/k/v and gate/up
  // (identical copies of one input's Hessian) factor once.
  constexpr size_t kFactorCache = 4;
  std::vector<std::pair<std::vector<float>, std::shared_ptr<const ObsFactor>>> cache;
  int64_t factorizations = 0;
  double factor_s = 0.0, sweep_s = 0.0;
  auto prune_layer_obs = [&](const TensorInfo& t, uint8_t* buf, int64_t n, int64_t k) -> int64_t {
    const TensorInfo* ht = calib->find(layer_prefix(t.name) + ".input_hessian");
    const float* h = reinterpret_cast<const float*>(calib->data(*ht));
    const auto f0 = std::chrono::steady_clock::now();
    std::shared_ptr<const ObsFactor> factor;
    for (auto& [bytes, f] : cache)
      if (bytes.size() == size_t(k * k) && std::memcmp(bytes.data(), h, bytes.size() * sizeof(float)) == 0) factor = f;
    if (!factor) {
      if (cache.size() == kFactorCache) cache.erase(cache.begin());
      std::vector<float> bytes(h, h + size_t(k * k));
      factor = std::make_shared<const ObsFactor>(obs_factor(bytes.data(), k, opts.damp, t.name, threads));
      cache.emplace_back(std::move(bytes), factor);
      ++factorizations;
    }
    calib->release(*ht);
    const auto f1 = std::chrono::steady_clock::now();
    std::vector<float> wf(size_t(n * k));
    const size_t es = dtype_size(t.dtype);
    for (int64_t i = 0; i < n * k; ++i) wf[size_t(i)] = element_to_f32(t.dtype, buf + size_t(i) * es);
    prune_obs(opts.pattern, wf.data(), n, k, *factor, t.name, threads);
    // Back to the checkpoint dtype (round to nearest even); dropped entries are exact +0.
    int64_t dropped = 0;
    for (int64_t i = 0; i < n * k; ++i) {
      uint8_t* e = buf + size_t(i) * es;
      const bool was_zero = element_is_zero(t.dtype, e);
      const float v = wf[size_t(i)];
      if (t.dtype == DType::kF32) std::memcpy(e, &v, 4);
      else if (t.dtype == DType::kBF16) store_u16(e, f32_to_bf16(v));
      else store_u16(e, f32_to_f16(v));
      SLIDESPARSE_CHECK(std::isfinite(element_to_f32(t.dtype, e)), Status::kInvalidData,
                        "layer '{}': updated weight {} at row {}, column {} does not fit {}", t.name, v, i / k,
                        i % k, dtype_token(t.dtype));
      dropped += !was_zero && element_is_zero(t.dtype, e);
    }
    factor_s += std::chrono::duration<double>(f1 - f0).count();
    sweep_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - f1).count();
    return dropped;
  };
  auto planner = [&](const SafetensorsFile& shard) {
    std::vector<OutTensor> plan;
    for (const TensorInfo& t : shard.tensors()) {
      if (!targets.count(t.name)) {
        plan.push_back({{t.name, t.dtype, t.shape}, [&shard, t](SafetensorsWriter& w) { copy_tensor(shard, t, w); },
                        t.nbytes()});
        continue;
      }
      const int64_t n = t.shape[0], k = t.shape[1];
      const DType out_dtype = output_dtype(opts.precision, t.dtype);
      auto scale = std::make_shared<std::vector<float>>();
      auto emit_weight = [&, t, n, k, out_dtype, scale](SafetensorsWriter& w) {
        std::vector<uint8_t> buf(shard.data(t), shard.data(t) + t.nbytes());
        shard.release(t);
        std::vector<float> norms;
        if (calib && !obs) {
          const TensorInfo* nt = calib->find(layer_prefix(t.name) + ".input_norm");
          norms.resize(size_t(k));
          std::memcpy(norms.data(), calib->data(*nt), size_t(k) * sizeof(float));
          validate_col_norms(norms.data(), k, t.name);
        }
        if (ternary) {
          // Quantize first (the scale is the mean |w| of the unmasked weight), then prune the codes.
          std::vector<int8_t> q(size_t(n * k));
          const TernaryResult tr = quantize_ternary(opts.pattern, t.dtype, buf.data(), n, k, q.data(), t.name, threads);
          scale->assign(size_t(n), tr.scale);
          params_pruned += tr.pruned;
          params_in_targets += n * k;
          layers.push_back({{"tensor", t.name}, {"shape", {n, k}}, {"dtype_in", dtype_token(t.dtype)},
                            {"dtype_out", dtype_token(out_dtype)}, {"pruned", tr.pruned},
                            {"pruned_fraction", double(tr.pruned) / double(n * k)},
                            {"ternary", {{"scale", tr.scale}, {"nonzeros_before_pruning", tr.nonzeros},
                                         {"zero_fraction", 1.0 - double(tr.nonzeros - tr.pruned) / double(n * k)}}}});
          w.append(q.data(), q.size());
          return;
        }
        const int64_t dropped = obs ? prune_layer_obs(t, buf.data(), n, k)
                                    : prune_inplace(opts.pattern, opts.method, t.dtype, buf.data(), n, k,
                                                    calib ? norms.data() : nullptr, t.name, threads);
        params_pruned += dropped;
        params_in_targets += n * k;
        layers.push_back({{"tensor", t.name}, {"shape", {n, k}}, {"dtype_in", dtype_token(t.dtype)},
                          {"dtype_out", dtype_token(out_dtype)}, {"pruned", dropped},
                          {"pruned_fraction", double(dropped) / double(n * k)}});
        if (opts.precision == Precision::kKeep) {
          w.append(buf.data(), buf.size());
          return;
        }
        std::vector<uint8_t> q(size_t(n * k));
        scale->resize(size_t(n));
        if (opts.precision == Precision::kInt8)
          quantize_rows_i8(t.dtype, buf.data(), n, k, reinterpret_cast<int8_t*>(q.data()), scale->data(), threads);
        else
          quantize_rows_e4m3(t.dtype, buf.data(), n, k, q.data(), scale->data(), threads);
        w.append(q.data(), q.size());
      };
      plan.push_back({{t.name, out_dtype, t.shape}, emit_weight, t.nbytes()});
      if (opts.precision != Precision::kKeep) {
        OutTensor scale_tensor;
        scale_tensor.spec = TensorSpec{layer_prefix(t.name) + ".weight_scale", DType::kF32, std::vector<int64_t>{n}};
        scale_tensor.emit = [scale](SafetensorsWriter& w) { w.append(scale->data(), scale->size() * sizeof(float)); };
        plan.push_back(std::move(scale_tensor));
      }
    }
    return plan;
  };
  const uint64_t out_bytes = write_converted(ckpt, out, opts.force, meta_json, planner, opts.progress);

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json extra = nlohmann::json::object();
  if (obs)
    extra["sparsegpt"] = {{"damp", opts.damp}, {"factorizations", factorizations}, {"factor_seconds", factor_s},
                          {"sweep_seconds", sweep_s}};
  nlohmann::json r = {{"command", "prune"},
          {"input", in},
          {"output", out},
          {"pattern", opts.pattern.str()},
          {"method", prune_method_name(opts.method)},
          {"precision", precision_name(opts.precision)},
          {"layers", layers},
          {"skipped", skipped},
          {"num_layers", layers.size()},
          {"params_total", params_total},
          {"params_in_layers", params_in_targets},
          {"params_pruned", params_pruned},
          {"output_bytes", out_bytes},
          {"threads", threads},
          {"seconds", seconds}};
  r.update(extra);
  return r;
}

}  // namespace slidesparse
