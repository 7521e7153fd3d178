// `slidesparse verify`: pattern compliance of every pruned layer, consistency of scales and slid
// weights, and (with --against) that every kept value equals the dense original.
#include <chrono>
#include <cmath>
#include <cstring>
#include <optional>

#include <fmt/ranges.h>

#include "common/check.hpp"
#include "convert/convert.hpp"
#include "convert/metadata_util.hpp"
#include "slidesparse/slide.hpp"
#include "slidesparse/ternary.hpp"

namespace slidesparse {
namespace {

// Relative error of one E4M3 rounding (3 mantissa bits, round to nearest): 2^-4; below the
// smallest normal the absolute error is half the subnormal step, 2^-10 in units of the scale.
constexpr double kE4M3RelTol = 0.0625;
constexpr double kE4M3SubnormalHalfStep = 1.0 / 1024;
// f32 arithmetic in the quantizer: inv = Q/a, w*inv and scale = a/Q each round (2^-24 relative),
// which moves q*s by up to ~2.3e-5 s at an exact .5 tie of INT8 -- 4.6e-5 relative to s/2.
constexpr double kSlack = 1e-4;

struct AgainstResult {
  int64_t mismatches = 0, over_pruned_groups = 0, nonfinite = 0;
  int64_t first_row = -1, first_col = -1;
};

// sparsegpt changes kept values (error compensation), so they cannot be compared with the dense
// original. What still holds for every group of a float output: the mask keeps min(len, 2N-2)
// positions and drops zeros first, and a kept value that was nonzero when the mask was chosen
// stays nonzero, so a group ends with at least min(2N-2, dense nonzeros) nonzeros. Fewer means more
// was dropped than the pattern needs (or a weight on a dead input column, whose Hessian diagonal
// is zero, was zeroed: also reported). For INT8/FP8 outputs a small kept value may legitimately
// quantize to a zero code, so the count is not checked there (reported as null).
AgainstResult compare_updated_with_dense(Pattern p, DType dt, const uint8_t* w, DType dense_dt, const uint8_t* dense,
                                         int64_t n, int64_t k) {
  AgainstResult r;
  const size_t es = dtype_size(dt), des = dtype_size(dense_dt);
  const bool quantized = dt == DType::kI8 || dt == DType::kE4M3;
  for (int64_t row = 0; row < n; ++row) {
    for (int64_t g0 = 0; g0 < k; g0 += p.group()) {
      int64_t nnz_dense = 0, nnz = 0;
      for (int64_t c = g0; c < std::min(k, g0 + p.group()); ++c) {
        const uint8_t* pw = w + size_t(row * k + c) * es;
        nnz_dense += !element_is_zero(dense_dt, dense + size_t(row * k + c) * des);
        nnz += !element_is_zero(dt, pw);
        if (!quantized && !std::isfinite(element_to_f32(dt, pw)) && r.nonfinite++ == 0) r.first_row = row, r.first_col = c;
      }
      if (!quantized && nnz < std::min<int64_t>(p.keep(), nnz_dense)) ++r.over_pruned_groups;
    }
  }
  return r;
}

// Compare a pruned layer with its dense original. `scale` is null for --precision keep.
AgainstResult compare_with_dense(Pattern p, DType dt, const uint8_t* w, const float* scale,
                                 DType dense_dt, const uint8_t* dense, int64_t n, int64_t k) {
  AgainstResult r;
  const size_t es = dtype_size(dt), des = dtype_size(dense_dt);
  const int64_t g = p.group();
  for (int64_t row = 0; row < n; ++row) {
    for (int64_t g0 = 0; g0 < k; g0 += g) {
      int64_t nnz_dense = 0, dropped = 0;
      for (int64_t c = g0; c < std::min(k, g0 + g); ++c) {
        const uint8_t* pw = w + size_t(row * k + c) * es;
        const uint8_t* pd = dense + size_t(row * k + c) * des;
        const bool dz = element_is_zero(dense_dt, pd), wz = element_is_zero(dt, pw);
        nnz_dense += !dz;
        bool ok = true;
        if (!scale) {
          ok = wz ? true : std::memcmp(pw, pd, es) == 0;
          dropped += (!dz && wz);
        } else {
          const double orig = element_to_f32(dense_dt, pd), s = scale[row];
          const double q = element_to_f32(dt, pw), rec = q * s;
          const double err = std::fabs(rec - orig);
          const double tol = dt == DType::kI8 ? 0.5 * s : kE4M3RelTol * std::fabs(orig) + kE4M3SubnormalHalfStep * s;
          if (!wz) ok = err <= tol * (1 + kSlack) + 1e-30;
          // A zero that quantization alone explains is not counted as pruned.
          if (!dz && wz && std::fabs(orig) > tol * (1 + kSlack)) ++dropped;
        }
        if (!ok) {
          if (r.mismatches++ == 0) r.first_row = row, r.first_col = c;
        }
      }
      if (dropped > std::max<int64_t>(0, nnz_dense - p.keep())) ++r.over_pruned_groups;
    }
  }
  return r;
}

// A ternary layer against its dense original: the codes and the scale must be exactly what
// quantize_ternary gives for the dense weight (docs/FORMAT.md section 3). over_pruned_groups counts
// groups holding fewer nonzero codes than the rule leaves.
AgainstResult compare_ternary_with_dense(Pattern p, const int8_t* q, float scale, DType dense_dt,
                                         const uint8_t* dense, int64_t n, int64_t k, const std::string& name,
                                         bool& scale_ok, float& want_scale, int threads) {
  std::vector<int8_t> want(size_t(n * k));
  const TernaryResult tr = quantize_ternary(p, dense_dt, dense, n, k, want.data(), name, threads);
  want_scale = tr.scale;
  scale_ok = std::memcmp(&scale, &tr.scale, 4) == 0;
  AgainstResult r;
  for (int64_t row = 0; row < n; ++row)
    for (int64_t g0 = 0; g0 < k; g0 += p.group()) {
      int64_t have = 0, need = 0;
      for (int64_t c = g0; c < std::min(k, g0 + p.group()); ++c) {
        const size_t i = size_t(row * k + c);
        have += q[i] != 0;
        need += want[i] != 0;
        if (q[i] != want[i] && r.mismatches++ == 0) r.first_row = row, r.first_col = c;
      }
      if (have < need) ++r.over_pruned_groups;
    }
  return r;
}

}  // namespace

nlohmann::json verify_checkpoint(const std::string& path, const VerifyOptions& opts) {
  const auto t0 = std::chrono::steady_clock::now();
  const Checkpoint ckpt = Checkpoint::open(path);
  const SlideMetadata meta = read_slide_metadata(ckpt);
  const auto tensors = index_tensors(ckpt);
  std::vector<SafetensorsFile> shards;
  for (size_t i = 0; i < ckpt.shards.size(); ++i) shards.push_back(SafetensorsFile::open(ckpt.shard_path(i)));

  std::optional<Checkpoint> dense_ckpt;
  std::map<std::string, TensorLocation> dense_tensors;
  std::vector<SafetensorsFile> dense_shards;
  if (!opts.against.empty()) {
    dense_ckpt = Checkpoint::open(opts.against);
    dense_tensors = index_tensors(*dense_ckpt);
    for (size_t i = 0; i < dense_ckpt->shards.size(); ++i)
      dense_shards.push_back(SafetensorsFile::open(dense_ckpt->shard_path(i)));
  }

  nlohmann::json problems = nlohmann::json::array(), layers = nlohmann::json::array();
  auto problem = [&](std::string s) { problems.push_back(std::move(s)); };
  uint64_t total = 0, done = 0;
  for (const auto& [prefix, layer] : meta.layers) {
    auto it = tensors.find(prefix + ".weight");
    if (it != tensors.end()) total += it->second.info.nbytes();
  }

  for (const auto& [prefix, layer] : meta.layers) {
    const std::string name = prefix + ".weight";
    if (opts.progress) opts.progress(done, total, name);
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      problem(fmt::format("{}: listed in metadata but missing", name));
      continue;
    }
    const TensorInfo& t = it->second.info;
    const SafetensorsFile& f = shards[it->second.shard];
    done += t.nbytes();
    if (t.shape.size() != 2 || t.shape[1] != layer.k || layer.precision != dtype_token(t.dtype)) {
      problem(fmt::format("{}: shape [{}] {} does not match metadata (k = {}, precision {})", name,
                          fmt::join(t.shape, ", "), dtype_token(t.dtype), layer.k, layer.precision));
      continue;
    }
    const int64_t n = t.shape[0], k = t.shape[1];
    const uint8_t* w = f.data(t);
    nlohmann::json lj = {{"tensor", name}, {"shape", {n, k}}, {"dtype", dtype_token(t.dtype)}};

    const PatternReport pr = check_pattern(meta.pattern, t.dtype, w, n, k);
    lj["groups"] = pr.groups;
    lj["violating_groups"] = pr.violating_groups;
    lj["max_group_nonzeros"] = pr.max_group_nonzeros;
    lj["sparsity"] = 1.0 - double(pr.nonzeros) / double(n * k);
    lj["pattern_ok"] = pr.ok();
    if (!pr.ok())
      problem(fmt::format("{}: {} of {} groups hold more than {} nonzeros (first: row {}, group {})", name,
                          pr.violating_groups, pr.groups, meta.pattern.keep(), pr.first_bad_row,
                          pr.first_bad_group));

    // Per-channel scale of quantized layers.
    std::vector<float> scale;
    const bool quantized = t.dtype == DType::kI8 || t.dtype == DType::kE4M3;
    if (quantized) {
      auto st = tensors.find(prefix + ".weight_scale");
      if (st == tensors.end() || st->second.info.dtype != DType::kF32 || st->second.info.shape != std::vector<int64_t>{n}) {
        problem(fmt::format("{}: quantized layer needs '{}.weight_scale' F32 [{}]", name, prefix, n));
      } else {
        scale.resize(size_t(n));
        std::memcpy(scale.data(), shards[st->second.shard].data(st->second.info), size_t(n) * 4);
        int64_t bad = 0;
        for (float s : scale) bad += !(std::isfinite(s) && s > 0);
        if (bad) problem(fmt::format("{}.weight_scale: {} entries are not finite and positive", prefix, bad));
      }
    }

    // A ternary layer: codes in {-1, 0, 1} and one scale shared by every row.
    const bool ternary = layer.quant == kQuantTernary;
    if (ternary) {
      lj["quant"] = layer.quant;
      const auto* q = reinterpret_cast<const int8_t*>(w);
      int64_t bad = 0, first = -1;
      for (int64_t i = 0; i < n * k; ++i)
        if (q[i] < -1 || q[i] > 1) {
          if (bad++ == 0) first = i;
        }
      lj["codes_ok"] = bad == 0;
      if (bad)
        problem(fmt::format("{}: {} ternary codes outside {{-1, 0, 1}} (first: row {}, column {}, value {})", name, bad,
                            first / k, first % k, int(q[first])));
      if (!scale.empty()) {
        int64_t differ = 0, first_row = -1;
        for (int64_t r = 1; r < n; ++r)
          if (std::memcmp(&scale[size_t(r)], &scale[0], 4) != 0 && differ++ == 0) first_row = r;
        lj["one_scale"] = differ == 0;
        if (differ)
          problem(fmt::format("{}.weight_scale: a ternary layer has one scale for every row, but {} rows differ from "
                              "row 0 ({}; first: row {} = {})",
                              prefix, differ, scale[0], first_row, scale[size_t(first_row)]));
      }
      if (meta.method != prune_method_name(PruneMethod::kMagnitude))
        problem(fmt::format("{}: a ternary layer must be pruned by magnitude, metadata says method {}", name,
                            meta.method));
    }

    // The slid weight: 2:4 in every window, and it maps back to P.weight exactly.
    if (layer.k_slide > 0) {
      auto st = tensors.find(prefix + ".slide_weight");
      const int64_t kp = slide_k(meta.pattern, k);
      nlohmann::json sj = {{"k_slide", layer.k_slide}};
      if (layer.k_slide != kp) {
        problem(fmt::format("{}: metadata k_slide {} != {} required by the pattern", prefix, layer.k_slide, kp));
      } else if (st == tensors.end() || st->second.info.dtype != t.dtype ||
                 st->second.info.shape != std::vector<int64_t>{n, kp}) {
        problem(fmt::format("{}: needs '{}.slide_weight' {} [{}, {}]", name, prefix, dtype_token(t.dtype), n, kp));
      } else {
        const uint8_t* ws = shards[st->second.shard].data(st->second.info);
        const TwoFourReport tf = check_2to4(t.dtype, ws, n, kp);
        sj["twofour_ok"] = tf.ok();
        if (!tf.ok())
          problem(fmt::format("{}.slide_weight: {} windows hold more than 2 nonzeros (first: row {}, window {})",
                              prefix, tf.violating_windows, tf.first_bad_row, tf.first_bad_window));
        std::vector<uint8_t> back(t.nbytes());
        bool roundtrip = true;
        try {
          unslide_weight(meta.pattern, t.dtype, ws, n, kp, back.data(), k, prefix + ".slide_weight");
          const size_t es = dtype_size(t.dtype);
          for (int64_t i = 0; i < n * k && roundtrip; ++i) {
            const uint8_t *a = back.data() + size_t(i) * es, *b = w + size_t(i) * es;
            roundtrip = std::memcmp(a, b, es) == 0 || (element_is_zero(t.dtype, a) && element_is_zero(t.dtype, b));
          }
        } catch (const Error& e) {
          roundtrip = false;
          problem(e.message());
        }
        sj["roundtrip_ok"] = roundtrip;
        if (!roundtrip) problem(fmt::format("{}.slide_weight does not map back to {}", prefix, name));
        shards[st->second.shard].release(st->second.info);
      }
      lj["slide"] = sj;
    }

    if (dense_ckpt) {
      auto dt = dense_tensors.find(name);
      if (dt == dense_tensors.end() || dt->second.info.shape != t.shape) {
        problem(fmt::format("{}: --against checkpoint has no tensor of shape [{}, {}] with this name", name, n, k));
      } else if (!quantized && dt->second.info.dtype != t.dtype) {
        problem(fmt::format("{}: dtype {} but the dense original is {}", name, dtype_token(t.dtype),
                            dtype_token(dt->second.info.dtype)));
      } else if (quantized && scale.empty()) {
        // already reported
      } else {
        const SafetensorsFile& df = dense_shards[dt->second.shard];
        if (ternary) {
          bool scale_ok = false;
          float want_scale = 0.0f;
          AgainstResult ar;
          try {
            ar = compare_ternary_with_dense(meta.pattern, reinterpret_cast<const int8_t*>(w), scale[0],
                                            dt->second.info.dtype, df.data(dt->second.info), n, k, name, scale_ok,
                                            want_scale, resolve_threads(opts.num_threads));
          } catch (const Error& e) {
            problem(fmt::format("{}: cannot recompute the ternary codes from the dense original: {}", name,
                                e.message()));
            df.release(dt->second.info);
            f.release(t);
            layers.push_back(lj);
            continue;
          }
          df.release(dt->second.info);
          lj["against"] = {{"mismatches", ar.mismatches}, {"over_pruned_groups", ar.over_pruned_groups},
                           {"scale_ok", scale_ok}};
          if (!scale_ok)
            problem(fmt::format("{}.weight_scale: {} but the mean |w| of the dense original gives {}", prefix,
                                scale[0], want_scale));
          if (ar.mismatches)
            problem(fmt::format("{}: {} ternary codes differ from those the dense original gives (first: row {}, "
                                "column {})",
                                name, ar.mismatches, ar.first_row, ar.first_col));
          f.release(t);
          layers.push_back(lj);
          continue;
        }
        const bool updated = meta.method == prune_method_name(PruneMethod::kSparseGpt);
        const AgainstResult ar =
            updated ? compare_updated_with_dense(meta.pattern, t.dtype, w, dt->second.info.dtype,
                                                 df.data(dt->second.info), n, k)
                    : compare_with_dense(meta.pattern, t.dtype, w, quantized ? scale.data() : nullptr,
                                         dt->second.info.dtype, df.data(dt->second.info), n, k);
        df.release(dt->second.info);
        lj["against"] = {{"mismatches", ar.mismatches}, {"over_pruned_groups", ar.over_pruned_groups}};
        if (updated) {
          lj["against"]["values"] = "values updated by sparsegpt (not compared)";
          if (quantized) lj["against"]["over_pruned_groups"] = nullptr;
          if (ar.nonfinite)
            problem(fmt::format("{}: {} non-finite values (first: row {}, column {})", name, ar.nonfinite,
                                ar.first_row, ar.first_col));
        }
        if (ar.mismatches)
          problem(fmt::format("{}: {} kept values differ from the dense original (first: row {}, column {})", name,
                              ar.mismatches, ar.first_row, ar.first_col));
        if (ar.over_pruned_groups)
          problem(fmt::format("{}: {} groups dropped more values than the pattern requires", name,
                              ar.over_pruned_groups));
      }
    }
    f.release(t);
    layers.push_back(lj);
  }
  if (opts.progress) opts.progress(total, total, "");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return {{"command", "verify"}, {"path", path}, {"pattern", meta.pattern.str()}, {"method", meta.method},
          {"against", opts.against}, {"compliant", problems.empty()}, {"problems", problems},
          {"layers", layers}, {"num_layers", layers.size()}, {"seconds", seconds}};
}

}  // namespace slidesparse
