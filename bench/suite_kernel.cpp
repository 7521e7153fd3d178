// `slidesparse bench --suite kernel`: GEMM-only speed of dense (cuBLASLt), native 2:4 and slid
// (2N-2):2N (cuSPARSELt) on LLM layer shapes, one harness for all of them.
//
// For every precision x model layer (n, K) x m x variant:
//   dense     cuBLASLt on K, the unpruned random weight, best of the top-8 heuristics (timed)
//   2:4       cuSPARSELt on K, the weight pruned 2:4 (magnitude), searched algorithm
//   4:6 6:8 8:10   cuSPARSELt on K' = slide_k(pattern, K): the weight pruned to the pattern, slid;
//             X lifted on the CPU (the GEMM alone is timed, no quantization or lifting kernel)
//   2:4@P     (--native-kprime) a native 2:4 weight of width K'(P) with its own X: the same GEMM
//             shape as the slid P, so "slide_over_native" = t(P) / t(2:4@P) isolates what sliding
//             costs beyond its FLOPs. Both share the plan cache (same key: the same algorithm).
// Timing: CUDA events around each launch, warm-up, median of --reps launches. X is rotated
// through an arena larger than L2 (every launch reads an X that was not just read), and the
// weight through up to --max-weight-copies plans holding separate copies when one copy is smaller
// than the arena (extra plans take the first plan's algorithm from the plan cache, no second search).
// Verification, once per (shape, variant) before timing: the sparse D against a dense cuBLASLt
// GEMM on the same pruned operands over sampled rows (i8 exact, floats by relative error), and for
// slid weights X'.W'^T == X.W^T on the CPU at sampled outputs (float64, exact products).
// Records (JSON Lines): per GEMM a "gemm" record (time_us, tflops = dense-equivalent 2*m*n*K /
// time, speedup_vs_dense) and an "offline" record (compress_ms, search_ms); "error" records.
#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "backends/backend.hpp"
#include "backends/plan_cache.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/prune.hpp"
#include "slidesparse/slide.hpp"
#include "slidesparse/types.hpp"

#include "bench.hpp"
#include "bench_common.hpp"
#include "suites.hpp"

namespace slidesparse::bench {
namespace {

namespace ss = slidesparse;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int kVerifyRows = 8;
constexpr int kVerifyPoints = 16;

double output_value(ss::DType t, const uint8_t* e) {
  switch (t) {
    case ss::DType::kI32: {
      int32_t v;
      std::memcpy(&v, e, 4);
      return v;
    }
    case ss::DType::kF32: {
      float v;
      std::memcpy(&v, e, 4);
      return v;
    }
    default: return ss::element_to_f32(t, e);
  }
}

// ---- one layer's data ---------------------------------------------------------------------------

struct Variant {
  VariantSpec spec;
  bool sparse = false;
  bool slide = false;  // slid pattern: the GEMM runs on K' with X lifted
  int64_t k_gemm = 0;  // the GEMM's reduction length
  int64_t k_ref = 0;   // the reduction length of the dense reference (K; K' for a native-K' weight)
  // Host copies for the CPU check of slid weights: pruned W [n, K] and W' [n, K'] in the dtype.
  std::vector<uint8_t> w_pruned, w_gemm;
  std::vector<uint8_t> x_own;  // X' [m_max, K'] lifted (slid) or drawn (native K'); empty: shared X on K
  DevMem w_pruned_dev, w_gemm_dev;  // W for the dense reference (pruned, k_ref) and for the GEMM
};

// dense: the unpruned weight on K. Sparse pattern: pruned (magnitude) on K, slid to K' when N > 2.
// Native K': its own random weight [n, K'] pruned 2:4 and its own X [m_max, K'].
Variant make_variant(const VariantSpec& spec, ss::GemmPrecision prec, const std::vector<float>& w, int64_t n,
                     int64_t k, const std::vector<uint8_t>& x, int64_t m_max, uint64_t seed, int threads) {
  Variant v;
  v.spec = spec;
  const ss::DType dt = ss::gemm_input_dtype(prec);
  const size_t es = ss::dtype_size(dt);
  if (spec.kind == VariantSpec::Kind::kDense) {
    v.k_gemm = v.k_ref = k;
    v.w_gemm = encode_all(prec, w, threads);
  } else if (spec.kind == VariantSpec::Kind::kNativeKPrime) {
    v.sparse = true;
    v.k_gemm = v.k_ref = ss::slide_k(ss::Pattern::from_n(spec.pattern_n), k);
    const int64_t kp = v.k_gemm;
    std::vector<float> wk(size_t(n * kp));
    parallel_for(int64_t(wk.size()), threads, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) wk[size_t(i)] = random_value(prec, mix(seed * 3 + uint64_t(i)));
    });
    ss::prune_inplace(ss::Pattern::from_n(2), ss::PruneMethod::kMagnitude, ss::DType::kF32, wk.data(), n, kp, nullptr,
                      spec.name, threads);
    v.w_pruned = encode_all(prec, wk, threads);
    v.w_gemm = v.w_pruned;
    v.x_own.resize(size_t(m_max * kp) * es);
    parallel_for(m_max * kp, threads, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) encode(prec, random_value(prec, mix(~seed * 5 + uint64_t(i))), &v.x_own[size_t(i) * es]);
    });
  } else {
    const ss::Pattern pat = ss::Pattern::from_n(spec.pattern_n);
    v.sparse = true;
    v.slide = pat.n() > 2;
    v.k_ref = k;
    std::vector<float> pruned = w;
    ss::prune_inplace(pat, ss::PruneMethod::kMagnitude, ss::DType::kF32, pruned.data(), n, k, nullptr, spec.name,
                      threads);
    v.w_pruned = encode_all(prec, pruned, threads);
    if (v.slide) {
      v.k_gemm = ss::slide_k(pat, k);
      v.w_gemm.assign(size_t(n * v.k_gemm) * es, 0);
      ss::slide_weight(pat, dt, v.w_pruned.data(), n, k, v.w_gemm.data(), v.k_gemm, spec.name, threads);
      v.x_own.assign(size_t(m_max * v.k_gemm) * es, 0);
      parallel_for(m_max, threads, [&](int64_t b, int64_t e) {
        if (e > b)
          ss::lift_activations(pat, dt, &x[size_t(b * k) * es], e - b, k, &v.x_own[size_t(b * v.k_gemm) * es],
                               v.k_gemm);
      });
    } else {
      v.k_gemm = k;
      v.w_gemm = v.w_pruned;
    }
  }
  if (v.sparse) {
    v.w_pruned_dev = DevMem(v.w_pruned.size());
    BENCH_CUDA(cudaMemcpy(v.w_pruned_dev.get(), v.w_pruned.data(), v.w_pruned.size(), cudaMemcpyHostToDevice));
  }
  v.w_gemm_dev = DevMem(v.w_gemm.size());
  BENCH_CUDA(cudaMemcpy(v.w_gemm_dev.get(), v.w_gemm.data(), v.w_gemm.size(), cudaMemcpyHostToDevice));
  if (!v.slide) {  // only the CPU check of slid weights needs the host copies
    v.w_gemm.clear();
    v.w_gemm.shrink_to_fit();
    v.w_pruned.clear();
    v.w_pruned.shrink_to_fit();
  }
  return v;
}

// X for m rows, laid out for `l`, copied into `slots` consecutive 256-byte-aligned slots of an
// arena of at least `arena_bytes`; launch i reads slot i % slots.
using XArena = SlotArena;

XArena make_arena(const uint8_t* host_x, int64_t m, const ss::GemmLayout& l, size_t arena_bytes) {
  XArena a;
  a.slot_bytes = (l.x_bytes() + 255) / 256 * 256;
  a.slots = std::max<int64_t>(2, int64_t((arena_bytes + a.slot_bytes - 1) / a.slot_bytes));
  a.mem = DevMem(a.slot_bytes * size_t(a.slots));
  const size_t es = ss::dtype_size(l.x_dtype);
  const size_t valid = size_t(m * l.k) * es;
  BENCH_CUDA(cudaMemset(a.mem.get(), 0, a.slot_bytes));
  BENCH_CUDA(cudaMemcpy(a.mem.get(), host_x, valid, cudaMemcpyHostToDevice));
  for (int64_t s = 1; s < a.slots; ++s)
    BENCH_CUDA(cudaMemcpy(a.mem.get() + size_t(s) * a.slot_bytes, a.mem.get(), a.slot_bytes, cudaMemcpyDeviceToDevice));
  BENCH_CUDA(cudaDeviceSynchronize());
  return a;
}

// ---- timing -------------------------------------------------------------------------------------

// Median us per launch; launch i uses plan i % plans and X slot i % slots.
double time_gemm(const std::vector<std::unique_ptr<ss::GemmPlan>>& plans, const XArena& x, void* d, int warmup,
                 int reps, cudaStream_t stream) {
  return time_events_us(
      [&](int64_t i) { plans[size_t(i % int64_t(plans.size()))]->run(x.slot(i), d, nullptr, stream); }, warmup, reps,
      stream);
}

// ---- verification -------------------------------------------------------------------------------

struct Verdict {
  bool ok = true;
  double rel_err = 0;  // ||D_sparse - D_dense|| / ||D_dense|| over the sampled rows
  int64_t mismatches = 0;
  std::string note;
};

std::vector<int64_t> sample_rows(int64_t m, int count, uint64_t seed) {
  std::vector<int64_t> rows{0, m - 1};
  for (int i = 0; i < count; ++i) rows.push_back(int64_t(mix(seed + uint64_t(i)) % uint64_t(m)));
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  return rows;
}

std::vector<uint8_t> fetch_rows(const void* d, const ss::GemmLayout& l, const std::vector<int64_t>& rows) {
  const size_t row_bytes = size_t(l.n_cols) * ss::dtype_size(l.d_dtype);
  std::vector<uint8_t> out(rows.size() * row_bytes);
  for (size_t r = 0; r < rows.size(); ++r)
    BENCH_CUDA(cudaMemcpy(&out[r * row_bytes], static_cast<const uint8_t*>(d) + size_t(rows[r]) * row_bytes,
                          row_bytes, cudaMemcpyDeviceToHost));
  return out;
}

// Sparse vs dense D on the same operands, over sampled rows. i8: equal, except that an i32 value
// beyond 2^24 may have passed through cuSPARSELt's f32 epilogue (one f32 rounding allowed).
Verdict compare_rows(ss::GemmPrecision p, const ss::GemmLayout& l, int64_t n, const std::vector<uint8_t>& got,
                     const std::vector<uint8_t>& want, size_t rows) {
  Verdict v;
  const size_t es = ss::dtype_size(l.d_dtype);
  double num = 0, den = 0;
  for (size_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j) {
      const size_t at = (r * size_t(l.n_cols) + size_t(j)) * es;
      const double a = output_value(l.d_dtype, &got[at]), b = output_value(l.d_dtype, &want[at]);
      if (!std::isfinite(a) || !std::isfinite(b)) {
        ++v.mismatches;
        continue;
      }
      num += (a - b) * (a - b);
      den += b * b;
      if (p == ss::GemmPrecision::kI8 && a != b && std::fabs(a - b) > std::fabs(b) * std::ldexp(1.0, -23))
        ++v.mismatches;
    }
  v.rel_err = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  // e4m3: Hopper FP8 tensor cores may accumulate with reduced precision ("fast accumulation"),
  // reported up to ~2% relative error; a layout or indexing bug gives errors near 1.
  const double tol = p == ss::GemmPrecision::kI8 ? 0 : p == ss::GemmPrecision::kE4M3 ? 2e-2 : 1e-2;
  v.ok = v.mismatches == 0 && (p == ss::GemmPrecision::kI8 || v.rel_err <= tol);
  if (!v.ok)
    v.note = fmt::format("{} mismatching/non-finite elements, relative error {:.3g} (tolerance {:.1g})",
                         v.mismatches, v.rel_err, tol);
  return v;
}

// X'.W'^T == X.W^T on the CPU at sampled (i, j), in float64 (every product exact), and the GPU
// value at those points within the precision's tolerance of it.
Verdict cpu_check_slide(ss::GemmPrecision p, const Variant& v, const std::vector<uint8_t>& x, int64_t m, int64_t n,
                        int64_t k, const ss::GemmLayout& l, const void* d_sparse, int points, uint64_t seed) {
  Verdict out;
  const ss::DType dt = ss::gemm_input_dtype(p);
  const size_t es = ss::dtype_size(dt);
  const size_t des = ss::dtype_size(l.d_dtype);
  for (int t = 0; t < points; ++t) {
    const int64_t i = int64_t(mix(seed * 31 + uint64_t(t)) % uint64_t(m));
    const int64_t j = int64_t(mix(seed * 37 + uint64_t(t) + 1000) % uint64_t(n));
    double ref = 0, lifted = 0, mag = 0;
    for (int64_t q = 0; q < k; ++q) {
      const double a = ss::element_to_f32(dt, &x[size_t(i * k + q) * es]);
      const double b = ss::element_to_f32(dt, &v.w_pruned[size_t(j * k + q) * es]);
      ref += a * b;
      mag += std::fabs(a * b);
    }
    for (int64_t q = 0; q < v.k_gemm; ++q)
      lifted += double(ss::element_to_f32(dt, &v.x_own[size_t(i * v.k_gemm + q) * es])) *
                double(ss::element_to_f32(dt, &v.w_gemm[size_t(j * v.k_gemm + q) * es]));
    if (std::fabs(lifted - ref) > 1e-9 * std::max(mag, 1.0)) {
      out.ok = false;
      out.note = fmt::format("X'.W'^T = {} but X.W^T = {} at ({}, {})", lifted, ref, i, j);
      return out;
    }
    uint8_t buf[4];
    BENCH_CUDA(cudaMemcpy(buf, static_cast<const uint8_t*>(d_sparse) + size_t(i * l.n_cols + j) * des, des,
                          cudaMemcpyDeviceToHost));
    const double g = output_value(l.d_dtype, buf);
    // i8: exact below 2^24 (one f32 rounding above); e4m3 f32 out: accumulation-order and FP8
    // accumulator effects relative to sum |x*w|; bf16 out: one bf16 rounding plus the same.
    const double tol = p == ss::GemmPrecision::kI8    ? (std::fabs(ref) < 16777216.0 ? 0 : std::fabs(ref) * 1.2e-7)
                       : p == ss::GemmPrecision::kE4M3 ? 1e-3 * mag
                                                       : std::fabs(ref) * std::ldexp(1.0, -8) + 1e-3 * mag;
    if (!(std::fabs(g - ref) <= tol)) {
      out.ok = false;
      out.note = fmt::format("GPU D[{}, {}] = {} but the CPU gives {} (tolerance {:.3g})", i, j, g, ref, tol);
      return out;
    }
  }
  return out;
}

// ---- the run ------------------------------------------------------------------------------------

class KernelSuite {
 public:
  KernelSuite(const BenchOptions& o, const ss::BackendEnv& env, Sink& sink, std::ostream& out)
      : o_(o), env_(env), sink_(sink), out_(out) {
    budget_.max_seconds = o_.max_seconds;
    cache_ = o_.plan_cache.empty() ? std::make_unique<ss::PlanCache>(env_.key())
                                   : ss::PlanCache::load(o_.plan_cache, env_.key());
    BENCH_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  ~KernelSuite() { cudaStreamDestroy(stream_); }
  KernelSuite(const KernelSuite&) = delete;
  KernelSuite& operator=(const KernelSuite&) = delete;

  json run() {
    out_ << fmt::format("{:<5} {:<12} {:<8} {:>6} {:>6} {:>6} | {:>10} {:>7} |", "prec", "model", "layer", "m", "n",
                        "K", "dense us", "TFLOPS");
    for (const auto& v : o_.variants)
      if (v.kind != VariantSpec::Kind::kDense) out_ << fmt::format(" {:>8}", v.name);
    out_ << "   (speedup vs dense)\n" << std::flush;

    bool stopped = false;
    for (const auto& pname : o_.precisions) {
      const auto prec = ss::gemm_precision_from_name(pname);
      for (const auto& mname : o_.models) {
        const Model* model = find_model(mname);
        for (const Layer& layer : model->layers) {
          if (!o_.layers.empty() && std::find(o_.layers.begin(), o_.layers.end(), layer.name) == o_.layers.end())
            continue;
          if (budget_.out_of_time(last_prep_s_) || !tally_.context_lost.empty()) {
            stopped = true;
            break;
          }
          try {
            run_layer(*prec, *model, layer, stopped);
          } catch (const std::exception& e) {
            tally_.error(sink_, out_, where(pname, model->name, layer.name, 0, "*"), e);
          }
          if (!tally_.context_lost.empty()) stopped = true;
          if (stopped) break;
        }
        if (stopped) break;
      }
      if (stopped) break;
    }
    if (!o_.plan_cache.empty()) cache_->save(o_.plan_cache);
    return {{"records", tally_.records},
            {"errors", tally_.errors},
            {"verification_failures", tally_.verification_failures},
            {"completed", !stopped},
            {"context_lost", tally_.context_lost}};
  }

 private:
  static json where(const std::string& prec, const std::string& model, const std::string& layer, int64_t m,
                    const std::string& variant) {
    return {{"precision", prec}, {"model", model}, {"layer", layer}, {"m", m}, {"variant", variant}};
  }

  void run_layer(ss::GemmPrecision prec, const Model& model, const Layer& layer, bool& stopped) {
    const int threads = resolve_threads(o_.threads);
    const int64_t n = layer.n, k = layer.k;
    const int64_t m_max = o_.ms.back();
    const uint64_t seed = mix(o_.seed ^ (uint64_t(prec) << 56) ^ uint64_t(n * 1000003 + k));
    const auto t_prep = Clock::now();

    // W [n, K] (floats the precision represents exactly), X [m_max, K] in the input dtype.
    std::vector<float> w(size_t(n * k));
    parallel_for(int64_t(w.size()), threads, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) w[size_t(i)] = random_value(prec, mix(seed + uint64_t(i)));
    });
    const ss::DType dt = ss::gemm_input_dtype(prec);
    const size_t es = ss::dtype_size(dt);
    std::vector<uint8_t> x(size_t(m_max * k) * es);
    parallel_for(m_max * k, threads, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        encode(prec, random_value(prec, mix(~seed + uint64_t(i))), &x[size_t(i) * es]);
    });
    std::vector<Variant> variants;
    for (const auto& spec : o_.variants) variants.push_back(make_variant(spec, prec, w, n, k, x, m_max, seed, threads));
    w.clear();
    w.shrink_to_fit();
    const double prep_s = std::chrono::duration<double>(Clock::now() - t_prep).count();
    last_prep_s_ = prep_s;

    // A unit's time grows at most about linearly with m: expect last * m / m_last (x 1.5).
    double last_unit_s = 0;
    int64_t last_m = 0;
    for (int64_t m : o_.ms) {
      const double expect = last_m > 0 ? 1.5 * last_unit_s * std::max(1.0, double(m) / double(last_m)) : 0;
      if (budget_.out_of_time(expect) || !tally_.context_lost.empty()) {
        stopped = true;
        return;
      }
      const auto t_unit = Clock::now();
      run_unit(prec, model, layer, m, x, variants);
      last_unit_s = std::chrono::duration<double>(Clock::now() - t_unit).count();
      last_m = m;
    }
    out_ << fmt::format("  ({} {} {}: data {:.1f} s)\n", ss::gemm_precision_name(prec), model.name, layer.name, prep_s)
         << std::flush;
  }

  ss::PlanOptions plan_options(bool search) const {
    ss::PlanOptions po;
    po.search = search && o_.search;
    po.search_iters = o_.search_iters;
    po.dense_top_n = o_.dense_top_n;
    po.cache = cache_.get();
    return po;
  }

  // Plans over `copies` weight copies: the first chooses the algorithm (search + cache), the
  // others take it from the cache.
  std::vector<std::unique_ptr<ss::GemmPlan>> make_plans(const ss::GemmProblem& p, const DevMem& w_dev, int copies) {
    std::vector<std::unique_ptr<ss::GemmPlan>> plans;
    for (int c = 0; c < copies; ++c) {
      plans.push_back(ss::make_gemm_plan(p, plan_options(true)));
      plans.back()->prepare_weight(w_dev.get(), stream_);
    }
    return plans;
  }

  void offline_record(const std::string& prec, const Model& model, const Layer& layer, int64_t m, const Variant& v,
                      const ss::GemmPlan& plan, int copies) {
    const auto& s = plan.stats();
    sink_.write({{"type", "offline"},
                 {"suite", "kernel"},
                 {"precision", prec},
                 {"model", model.name},
                 {"layer", layer.name},
                 {"m", m},
                 {"n", layer.n},
                 {"k", layer.k},
                 {"k_gemm", v.k_gemm},
                 {"variant", v.spec.name},
                 {"backend", plan.backend_name()},
                 {"compress_ms", s.compress_ms},
                 {"search_ms", s.search_ms},
                 {"prepare_ms", s.prepare_ms},
                 {"selection_source", s.source},
                 {"selection_time_us", s.measured_us},
                 {"weight_copies", copies},
                 {"workspace_bytes", plan.workspace_bytes()}});
  }

  void run_unit(ss::GemmPrecision prec, const Model& model, const Layer& layer, int64_t m,
                const std::vector<uint8_t>& x, std::vector<Variant>& variants) {
    const std::string pname = ss::gemm_precision_name(prec);
    const int64_t n = layer.n, k = layer.k;
    const size_t arena_bytes = size_t(o_.rotate_mib * 1024 * 1024);
    const ss::GemmLayout lk = ss::gemm_layout(ss::GemmProblem{m, n, k, prec, false});
    std::optional<XArena> arena_k;  // X on K: dense timing, 2:4 timing, dense references on K
    std::map<std::string, double> speedups, times;
    std::map<std::string, std::pair<double, std::string>> sm90_best;  // variant -> (us, kernel)
    double t_dense = 0;
    const uint64_t vseed = mix(o_.seed + uint64_t(m) * 7919 + uint64_t(n));

    for (Variant& v : variants) {
      if (!tally_.context_lost.empty()) break;
      try {
        const ss::GemmProblem p{m, n, v.k_gemm, prec, v.sparse};
        const ss::GemmLayout l = ss::gemm_layout(p);
        const ss::GemmProblem ref_p{m, n, v.k_ref, prec, false};
        const ss::GemmLayout lref = ss::gemm_layout(ref_p);
        if (!arena_k) arena_k.emplace(make_arena(x.data(), m, lk, arena_bytes));
        std::optional<XArena> arena_own;
        if (!v.x_own.empty()) arena_own.emplace(make_arena(v.x_own.data(), m, l, arena_bytes));
        const XArena& xa = arena_own ? *arena_own : *arena_k;
        // The reference reads X on k_ref: the shared X on K, or the native-K' variant's own X.
        const XArena& xref = v.slide ? *arena_k : xa;
        const size_t w_bytes = l.w_bytes(n);
        const int copies = int(std::clamp<int64_t>(int64_t((arena_bytes + w_bytes - 1) / w_bytes), 1,
                                                   int64_t(o_.max_weight_copies)));
        auto plans = make_plans(p, v.w_gemm_dev, copies);
        offline_record(pname, model, layer, m, v, *plans[0], copies);
        DevMem d(l.d_bytes()), d_ref(lref.d_bytes());

        Verdict verdict;
        if (v.sparse) {
          // The dense reference on the same pruned operands (heuristic algorithm, no search).
          auto ref = ss::make_cublaslt_plan(ref_p, plan_options(false));
          ref->prepare_weight(v.w_pruned_dev.get(), stream_);
          BENCH_CUDA(cudaMemsetAsync(d.get(), 0x7F, l.d_bytes(), stream_));
          BENCH_CUDA(cudaMemsetAsync(d_ref.get(), 0x7F, lref.d_bytes(), stream_));
          ref->run(xref.slot(0), d_ref.get(), nullptr, stream_);
          plans[0]->run(xa.slot(0), d.get(), nullptr, stream_);
          BENCH_CUDA(cudaStreamSynchronize(stream_));
          const auto rows = sample_rows(m, kVerifyRows, vseed);
          verdict = compare_rows(prec, lref, n, fetch_rows(d.get(), lref, rows), fetch_rows(d_ref.get(), lref, rows),
                                 rows.size());
          if (verdict.ok && v.slide)
            verdict = cpu_check_slide(prec, v, x, m, n, k, lref, d.get(), kVerifyPoints, vseed);
          if (!verdict.ok) {
            ++tally_.verification_failures;
            out_ << fmt::format("  VERIFY FAILED {} {} {} m={} {}: {}\n", pname, model.name, layer.name, m,
                                v.spec.name, verdict.note)
                 << std::flush;
          }
        }
        const double us = time_gemm(plans, xa, d.get(), o_.warmup, o_.reps, stream_);
        if (!v.sparse) t_dense = us;
        times[v.spec.name] = us;
        const double tflops = 2.0 * double(m) * double(n) * double(k) / (us * 1e-6) / 1e12;
        const double speedup = t_dense > 0 ? t_dense / us : 0;
        if (v.sparse) speedups[v.spec.name] = speedup;
        else speedups["dense"] = tflops;
        json row = {{"type", "gemm"},
                    {"suite", "kernel"},
                    {"precision", pname},
                    {"model", model.name},
                    {"layer", layer.name},
                    {"m", m},
                    {"n", n},
                    {"k", k},
                    {"k_gemm", v.k_gemm},
                    {"variant", v.spec.name},
                    {"backend", plans[0]->backend_name()},
                    {"time_us", us},
                    {"tflops", tflops},
                    {"speedup_vs_dense", v.sparse && t_dense > 0 ? json(speedup) : json(nullptr)},
                    {"plan", plans[0]->describe()},
                    {"weight_copies", copies},
                    {"x_slots", xa.slots},
                    {"verified", v.sparse ? json(verdict.ok) : json(nullptr)},
                    {"verify_rel_err", v.sparse ? json(verdict.rel_err) : json(nullptr)}};
        if (v.spec.kind == VariantSpec::Kind::kNativeKPrime) {
          // The same GEMM shape as the slid pattern: what sliding costs beyond its FLOPs.
          const std::string slid = ss::Pattern::from_n(v.spec.pattern_n).str();
          row["tflops"] = nullptr;  // not the dense-equivalent FLOPs of this layer: its K' is real work
          row["native_kprime_of"] = slid;
          const auto it = times.find(slid);
          row["slide_over_native"] = it != times.end() ? json(it->second / us) : json(nullptr);
        }
        if (!verdict.ok) row["verify_note"] = verdict.note;
        sink_.write(row);
        ++tally_.records;
        if (o_.sm90 && v.spec.kind != VariantSpec::Kind::kNativeKPrime)
          run_sm90(prec, model, layer, m, v, xa, copies, v.sparse ? d_ref : d, v.sparse ? lref : l, t_dense, times,
                   sm90_best);
      } catch (const std::exception& e) {
        tally_.error(sink_, out_, where(pname, model.name, layer.name, m, v.spec.name), e);
      }
    }
    if (o_.sm90 && !sm90_best.empty()) {
      // Best dense = the faster of cuBLASLt and our dense kernels; every sparse backend against it.
      const auto dn = sm90_best.find("dense");
      const double best_dense = dn != sm90_best.end() && dn->second.first > 0 ? std::min(t_dense, dn->second.first) : t_dense;
      out_ << fmt::format("  sm90 {} m={}: best dense {:.1f} us (cuBLASLt {:.1f}, sm90 {:.1f});", layer.name, m,
                          best_dense, t_dense, dn != sm90_best.end() ? dn->second.first : 0.0);
      for (const auto& v : o_.variants) {
        if (v.kind != VariantSpec::Kind::kSparse) continue;
        const auto it = sm90_best.find(v.name);
        const auto lib = times.find(v.name);
        json rec = {{"type", "sm90_best"},
                    {"suite", "kernel"},
                    {"precision", pname},
                    {"model", model.name},
                    {"layer", layer.name},
                    {"m", m},
                    {"n", n},
                    {"k", k},
                    {"variant", v.name},
                    {"dense_cublaslt_us", t_dense},
                    {"dense_sm90_us", dn != sm90_best.end() ? json(dn->second.first) : json(nullptr)},
                    {"dense_sm90_kernel", dn != sm90_best.end() ? json(dn->second.second) : json(nullptr)},
                    {"best_dense_us", best_dense},
                    {"cusparselt_us", lib != times.end() ? json(lib->second) : json(nullptr)}};
        if (it != sm90_best.end()) {
          rec["sm90_us"] = it->second.first;
          rec["sm90_kernel"] = it->second.second;
          rec["sm90_speedup_vs_best_dense"] = best_dense / it->second.first;
          if (lib != times.end()) {
            rec["cusparselt_speedup_vs_best_dense"] = best_dense / lib->second;
            rec["sm90_over_cusparselt"] = lib->second / it->second.first;
          }
          out_ << fmt::format(" {} {:.2f}x (cuSPARSELt {:.2f}x)", v.name, best_dense / it->second.first,
                              lib != times.end() ? best_dense / lib->second : 0.0);
        }
        sink_.write(rec);
      }
      out_ << "\n" << std::flush;
    }
    out_ << fmt::format("{:<5} {:<12} {:<8} {:>6} {:>6} {:>6} | {:>10.1f} {:>7.0f} |", pname, model.name, layer.name, m,
                        n, k, t_dense, speedups.count("dense") ? speedups["dense"] : 0.0);
    for (const auto& v : o_.variants) {
      if (v.kind == VariantSpec::Kind::kDense) continue;
      if (speedups.count(v.name)) out_ << fmt::format(" {:>7.2f}x", speedups[v.name]);
      else out_ << fmt::format(" {:>8}", "-");
    }
    out_ << "\n" << std::flush;
  }

  // Every compiled sm90 kernel for this variant: fused GEMM (s_x, s_w, bias -> bf16 Y), checked once
  // against the reference D on sampled rows (scales 1, no bias: Y = bf16(acc)), then timed over the
  // same X arena and as many weight copies as the library plans.
  void run_sm90(ss::GemmPrecision prec, const Model& model, const Layer& layer, int64_t m, const Variant& v,
                const XArena& xa, int copies, const DevMem& d_ref, const ss::GemmLayout& lref, double t_dense,
                const std::map<std::string, double>& times,
                std::map<std::string, std::pair<double, std::string>>& best) {
    if (!ss::sm90_available()) return;
    const std::string pname = ss::gemm_precision_name(prec);
    const int64_t n = layer.n, k = layer.k;
    const ss::GemmProblem p{m, n, v.k_gemm, prec, v.sparse};
    const int64_t ldy = (n + 7) / 8 * 8;
    DevMem y(size_t(m * ldy) * 2), sx(size_t(m) * 4), sw(size_t(n) * 4), bias(size_t(n) * 4);
    {
      std::vector<float> ones(size_t(std::max(m, n)), 1.0f), zeros(size_t(n), 0.0f);
      BENCH_CUDA(cudaMemcpy(sx.get(), ones.data(), size_t(m) * 4, cudaMemcpyHostToDevice));
      BENCH_CUDA(cudaMemcpy(sw.get(), ones.data(), size_t(n) * 4, cudaMemcpyHostToDevice));
      BENCH_CUDA(cudaMemcpy(bias.get(), zeros.data(), size_t(n) * 4, cudaMemcpyHostToDevice));
    }
    const bool scaled = prec != ss::GemmPrecision::kBF16;
    ss::GemmPlan::FusedOutput out;
    out.s_x = scaled ? static_cast<const float*>(static_cast<const void*>(sx.get())) : nullptr;
    out.s_w = scaled ? static_cast<const float*>(static_cast<const void*>(sw.get())) : nullptr;
    out.bias = static_cast<const float*>(static_cast<const void*>(bias.get()));
    out.y = y.get();
    out.ldy = ldy;
    out.m = m;
    const uint64_t vseed = mix(o_.seed + uint64_t(m) * 7919 + uint64_t(n));
    const auto rows = sample_rows(m, kVerifyRows, vseed);
    const auto ref_rows = fetch_rows(d_ref.get(), lref, rows);
    for (const std::string& name : ss::sm90_kernels_for(prec, v.sparse)) {
      const std::string vname = "sm90:" + v.spec.name;
      try {
        ss::PlanOptions po = plan_options(false);
        po.cache = nullptr;
        std::vector<std::unique_ptr<ss::GemmPlan>> plans;
        for (int c = 0; c < copies; ++c) {
          plans.push_back(ss::make_sm90_plan(p, po, name));
          plans.back()->prepare_weight(v.w_gemm_dev.get(), stream_);
        }
        // Check: Y = bf16(acc) against the reference rows.
        BENCH_CUDA(cudaMemsetAsync(y.get(), 0x7F, size_t(m * ldy) * 2, stream_));
        plans[0]->run_fused(xa.slot(0), out, stream_);
        BENCH_CUDA(cudaStreamSynchronize(stream_));
        double num = 0, den = 0;
        int64_t bad = 0;
        const size_t res = ss::dtype_size(lref.d_dtype);
        for (size_t r = 0; r < rows.size(); ++r) {
          std::vector<uint16_t> yr(static_cast<size_t>(n));
          BENCH_CUDA(cudaMemcpy(yr.data(), y.get() + size_t(rows[r] * ldy) * 2, size_t(n) * 2, cudaMemcpyDeviceToHost));
          for (int64_t j = 0; j < n; ++j) {
            const double a = ss::bf16_to_f32(yr[size_t(j)]);
            const double b = output_value(lref.d_dtype, &ref_rows[(r * size_t(lref.n_cols) + size_t(j)) * res]);
            if (!std::isfinite(a) || !std::isfinite(b)) {
              ++bad;
              continue;
            }
            num += (a - b) * (a - b);
            den += b * b;
            // bf16 output: one rounding (2^-9 relative), plus the reference's own accumulation error.
            if (prec == ss::GemmPrecision::kI8 && std::fabs(a - b) > std::fabs(b) * std::ldexp(1.0, -8)) ++bad;
          }
        }
        const double rel = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
        const double tol = prec == ss::GemmPrecision::kE4M3 ? 2e-2 : 1e-2;
        const bool ok = bad == 0 && rel <= tol;
        if (!ok) {
          ++tally_.verification_failures;
          out_ << fmt::format("  VERIFY FAILED sm90 {} {} {} m={} {} {}: {} bad elements, relative error {:.3g}\n",
                              pname, model.name, layer.name, m, v.spec.name, name, bad, rel)
               << std::flush;
        }
        const double us = time_events_us(
            [&](int64_t i) { plans[size_t(i % int64_t(plans.size()))]->run_fused(xa.slot(i), out, stream_); },
            o_.warmup, o_.reps, stream_);
        const double tflops = 2.0 * double(m) * double(n) * double(k) / (us * 1e-6) / 1e12;
        const auto lib = times.find(v.spec.name);
        json row = {{"type", "gemm"},
                    {"suite", "kernel"},
                    {"precision", pname},
                    {"model", model.name},
                    {"layer", layer.name},
                    {"m", m},
                    {"n", n},
                    {"k", k},
                    {"k_gemm", v.k_gemm},
                    {"variant", vname},
                    {"backend", "sm90"},
                    {"kernel", name},
                    {"fused_epilogue", true},
                    {"time_us", us},
                    {"tflops", tflops},
                    {"gemm_tflops", 2.0 * double(m) * double(n) * double(v.sparse ? v.k_gemm / 2 : v.k_gemm) /
                                        (us * 1e-6) / 1e12},
                    {"speedup_vs_dense", t_dense > 0 ? json(t_dense / us) : json(nullptr)},
                    {"speedup_vs_library", lib != times.end() ? json(lib->second / us) : json(nullptr)},
                    {"plan", plans[0]->describe()},
                    {"weight_copies", copies},
                    {"x_slots", xa.slots},
                    {"verified", ok},
                    {"verify_rel_err", rel}};
        sink_.write(row);
        ++tally_.records;
        auto& b = best[v.spec.name];
        if (ok && (b.first <= 0 || us < b.first)) b = {us, name};
      } catch (const std::exception& e) {
        tally_.error(sink_, out_, where(pname, model.name, layer.name, m, vname + "/" + name), e);
      }
    }
  }

  const BenchOptions& o_;
  const ss::BackendEnv& env_;
  Sink& sink_;
  std::ostream& out_;
  Budget budget_;
  Tally tally_;
  std::unique_ptr<ss::PlanCache> cache_;
  cudaStream_t stream_ = nullptr;
  double last_prep_s_ = 0;
};

}  // namespace

json run_kernel_suite(const BenchOptions& o, const ss::BackendEnv& env, Sink& sink, std::ostream& out) {
  KernelSuite suite(o, env, sink, out);
  return suite.run();
}

}  // namespace slidesparse::bench
