// slidesparse_bench_gemm: GEMM-only speed of dense (cuBLASLt), native 2:4 and slid (2N-2):2N
// (cuSPARSELt) on LLM layer shapes, one harness for all of them.
//
// For every precision x model layer (n, K) x m x variant:
//   dense   cuBLASLt on K, the unpruned random weight, best of the top-8 heuristics (timed)
//   2:4     cuSPARSELt on K, the weight pruned 2:4 (magnitude), searched algorithm
//   4:6 6:8 8:10   cuSPARSELt on K' = slide_k(pattern, K): the weight pruned to the pattern, slid;
//           X lifted on the CPU (the GEMM alone is timed, no quantization or lifting kernel)
// Timing: CUDA events around each launch, warm-up, median of --reps (>= 20) launches. X is
// rotated through an arena larger than L2 (every launch reads an X that was not just read), and
// the weight through up to 8 plans holding separate copies when one copy is smaller than the arena
// (extra plans take the first plan's algorithm from the plan cache, no second search).
// Verification, once per (shape, variant) before timing: the sparse D against a dense cuBLASLt
// GEMM on the same pruned operands over sampled rows (i8 exact, floats by relative error), and for
// slid weights X'.W'^T == X.W^T on the CPU at sampled outputs (float64, exact products).
// Output: a table on stdout, and JSON Lines (--out): one "env" record, then per GEMM a "gemm"
// record (time_us, tflops = dense-equivalent 2*m*n*K / time, speedup_vs_dense) and an "offline"
// record (compress_ms, search_ms), "error" records for failures, a final "summary".
// --max-seconds stops cleanly between shapes, keeping everything written so far.
#include <CLI/CLI.hpp>
#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backends/backend.hpp"
#include "backends/plan_cache.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/prune.hpp"
#include "slidesparse/slide.hpp"
#include "slidesparse/types.hpp"

#include "bench_common.hpp"

namespace ss = slidesparse;
using namespace slidesparse::bench;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// ---- options ------------------------------------------------------------------------------------

struct Options {
  std::vector<std::string> precisions{"i8", "e4m3", "bf16"};
  std::vector<std::string> models{"qwen2.5-7b", "llama3-8b"};
  std::vector<std::string> layers;  // empty: all four
  std::vector<int64_t> ms{16, 64, 256, 1024, 4096, 8192, 16384};
  std::vector<std::string> variants{"dense", "2:4", "4:6", "6:8", "8:10"};
  std::string out;
  std::string git_sha = "unknown";
  std::string plan_cache;
  double max_seconds = 420;
  int reps = 30;
  int warmup = 5;
  int search_iters = 5;
  int dense_top_n = 8;
  double rotate_mib = 128;  // X arena (and weight copies) per GEMM: > 2x the 50 MB L2 of H100/H200
  int max_weight_copies = 8;
  int verify_rows = 8;
  int verify_points = 16;
  uint64_t seed = 1;
  int threads = 0;
};

// ---- small utilities ----------------------------------------------------------------------------

int hw_threads(const Options& o) { return resolve_threads(o.threads); }

// Random values of the precision, never zero, magnitudes spread over two binades or more:
//   i8: integers in [-127, 127] \ {0};  e4m3: grid values with |v| in [1/8, 8];  bf16: |v| in [1/64, 1).
// Returned as floats that the precision represents exactly.
float random_value(ss::GemmPrecision p, uint64_t r) {
  const bool neg = r & 1;
  switch (p) {
    case ss::GemmPrecision::kI8: {
      const float v = float((r >> 8) % 127 + 1);
      return neg ? -v : v;
    }
    case ss::GemmPrecision::kE4M3: {
      const float v = std::ldexp(1.0f + float((r >> 8) % 8) / 8.0f, int((r >> 16) % 6) - 3);
      return neg ? -v : v;
    }
    default: {
      const float v = ss::bf16_to_f32(ss::f32_to_bf16(float((r >> 8) % 4096 + 64) / 4160.0f));
      return neg ? -v : v;
    }
  }
}

void encode(ss::GemmPrecision p, float v, uint8_t* out) {
  switch (p) {
    case ss::GemmPrecision::kI8: *out = uint8_t(int8_t(v)); return;
    case ss::GemmPrecision::kE4M3: *out = ss::f32_to_e4m3(v); return;
    case ss::GemmPrecision::kBF16: {
      const uint16_t b = ss::f32_to_bf16(v);
      std::memcpy(out, &b, 2);
      return;
    }
    case ss::GemmPrecision::kF16: {
      const uint16_t b = ss::f32_to_f16(v);
      std::memcpy(out, &b, 2);
      return;
    }
  }
}

std::vector<uint8_t> encode_all(ss::GemmPrecision p, const std::vector<float>& v, int threads) {
  const size_t es = ss::dtype_size(ss::gemm_input_dtype(p));
  std::vector<uint8_t> out(v.size() * es);
  parallel_for(int64_t(v.size()), threads, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) encode(p, v[size_t(i)], &out[size_t(i) * es]);
  });
  return out;
}

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
  std::string name;  // "dense", "2:4", "6:8", ...
  int pattern_n = 0;  // 0: dense
  bool slide = false;
  int64_t k_gemm = 0;
  // Host copies for the CPU check of slid weights: pruned W [n, K] and W' [n, K'] in the dtype.
  std::vector<uint8_t> w_pruned, w_gemm;
  std::vector<uint8_t> x_lifted;  // X' [m_max, K'] (slid variants)
  DevMem w_pruned_dev, w_gemm_dev;  // W for the dense reference (pruned, K) and for the GEMM
};

Variant make_variant(const std::string& name, ss::GemmPrecision prec, const std::vector<float>& w, int64_t n,
                     int64_t k, const std::vector<uint8_t>& x, int64_t m_max, int threads) {
  Variant v;
  v.name = name;
  const ss::DType dt = ss::gemm_input_dtype(prec);
  const size_t es = ss::dtype_size(dt);
  if (name == "dense") {
    v.k_gemm = k;
    v.w_gemm = encode_all(prec, w, threads);
  } else {
    const ss::Pattern pat = ss::Pattern::parse(name);
    v.pattern_n = pat.n();
    v.slide = pat.n() > 2;
    std::vector<float> pruned = w;
    ss::prune_inplace(pat, ss::PruneMethod::kMagnitude, ss::DType::kF32, pruned.data(), n, k, nullptr, name,
                      threads);
    v.w_pruned = encode_all(prec, pruned, threads);
    if (v.slide) {
      v.k_gemm = ss::slide_k(pat, k);
      v.w_gemm.assign(size_t(n * v.k_gemm) * es, 0);
      ss::slide_weight(pat, dt, v.w_pruned.data(), n, k, v.w_gemm.data(), v.k_gemm, name, threads);
      v.x_lifted.assign(size_t(m_max * v.k_gemm) * es, 0);
      parallel_for(m_max, threads, [&](int64_t b, int64_t e) {
        if (e > b)
          ss::lift_activations(pat, dt, &x[size_t(b * k) * es], e - b, k, &v.x_lifted[size_t(b * v.k_gemm) * es],
                               v.k_gemm);
      });
    } else {
      v.k_gemm = k;
      v.w_gemm = v.w_pruned;
    }
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
struct XArena {
  DevMem mem;
  size_t slot_bytes = 0;
  int64_t slots = 0;
  const void* slot(int64_t i) const { return mem.get() + size_t(i % slots) * slot_bytes; }
};

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
  int64_t i = 0;
  auto launch = [&] {
    plans[size_t(i % int64_t(plans.size()))]->run(x.slot(i), d, nullptr, stream);
    ++i;
  };
  for (int w = 0; w < warmup; ++w) launch();
  std::vector<cudaEvent_t> ev(size_t(2 * reps));
  for (auto& e : ev) BENCH_CUDA(cudaEventCreate(&e));
  for (int r = 0; r < reps; ++r) {
    BENCH_CUDA(cudaEventRecord(ev[size_t(2 * r)], stream));
    launch();
    BENCH_CUDA(cudaEventRecord(ev[size_t(2 * r + 1)], stream));
  }
  BENCH_CUDA(cudaStreamSynchronize(stream));
  std::vector<double> us;
  for (int r = 0; r < reps; ++r) {
    float ms = 0;
    BENCH_CUDA(cudaEventElapsedTime(&ms, ev[size_t(2 * r)], ev[size_t(2 * r + 1)]));
    us.push_back(double(ms) * 1e3);
  }
  for (auto& e : ev) cudaEventDestroy(e);
  std::sort(us.begin(), us.end());
  return reps % 2 ? us[size_t(reps / 2)] : 0.5 * (us[size_t(reps / 2 - 1)] + us[size_t(reps / 2)]);
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
      lifted += double(ss::element_to_f32(dt, &v.x_lifted[size_t(i * v.k_gemm + q) * es])) *
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

struct Row {
  std::string precision, model, layer, variant;
  int64_t m, n, k, k_gemm;
  double time_us, tflops, speedup;
};

class Bench {
 public:
  Bench(Options o, ss::BackendEnv env) : o_(std::move(o)), env_(std::move(env)), sink_(o_.out) {
    t0_ = Clock::now();
    if (!o_.plan_cache.empty()) {
      cache_ = ss::PlanCache::load(o_.plan_cache, env_.key());
    } else {
      cache_ = std::make_unique<ss::PlanCache>(env_.key());
    }
    BENCH_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  ~Bench() { cudaStreamDestroy(stream_); }

  int run() {
    json env = {{"type", "env"},
                {"date", now_utc()},
                {"git_sha", o_.git_sha},
                {"gpu", env_.gpu_name},
                {"sm", env_.sm},
                {"sm_count", env_.sm_count},
                {"clock_mhz", env_.clock_khz / 1000},
                {"mem_clock_mhz", env_.mem_clock_khz / 1000},
                {"l2_bytes", env_.l2_bytes},
                {"driver_version", env_.driver_version},
                {"runtime_version", env_.runtime_version},
                {"cusparselt_version", env_.cusparselt_version},
                {"cublaslt_version", env_.cublaslt_version},
                {"reps", o_.reps},
                {"warmup", o_.warmup},
                {"search_iters", o_.search_iters},
                {"dense_top_n", o_.dense_top_n},
                {"rotate_mib", o_.rotate_mib},
                {"max_weight_copies", o_.max_weight_copies},
                {"seed", o_.seed},
                {"max_seconds", o_.max_seconds}};
    sink_.write(env);
    std::cout << fmt::format("{} (sm_{}, {} SMs, {} MHz), driver {}, runtime {}, cuSPARSELt {}, cuBLASLt {}\n",
                             env_.gpu_name, env_.sm, env_.sm_count, env_.clock_khz / 1000, env_.driver_version,
                             env_.runtime_version, env_.cusparselt_version, env_.cublaslt_version);
    std::cout << fmt::format("{:<5} {:<12} {:<8} {:>6} {:>6} {:>6} | {:>10} {:>7} |", "prec", "model", "layer", "m",
                             "n", "K", "dense us", "TFLOPS");
    for (const auto& v : o_.variants)
      if (v != "dense") std::cout << fmt::format(" {:>7}", v);
    std::cout << "   (speedup vs dense)\n" << std::flush;

    bool stopped = false;
    for (const auto& pname : o_.precisions) {
      const auto prec = ss::gemm_precision_from_name(pname);
      for (const auto& mname : o_.models) {
        const Model* model = nullptr;
        for (const auto& m : models())
          if (mname == m.name) model = &m;
        for (const Layer& layer : model->layers) {
          if (!o_.layers.empty() && std::find(o_.layers.begin(), o_.layers.end(), layer.name) == o_.layers.end())
            continue;
          if (out_of_time(last_prep_s_) || !context_lost_.empty()) {
            stopped = true;
            break;
          }
          try {
            run_layer(*prec, *model, layer, stopped);
          } catch (const std::exception& e) {
            error_record(pname, model->name, layer.name, 0, "*", e);
          }
          if (!context_lost_.empty()) stopped = true;
          if (stopped) break;
        }
        if (stopped) break;
      }
      if (stopped) break;
    }
    if (!o_.plan_cache.empty()) cache_->save(o_.plan_cache);
    const double elapsed = seconds();
    sink_.write({{"type", "summary"},
                 {"rows", rows_.size()},
                 {"errors", errors_},
                 {"verification_failures", verify_failures_},
                 {"completed", !stopped},
                 {"context_lost", context_lost_},
                 {"elapsed_s", elapsed}});
    std::cout << fmt::format("\n{} rows, {} errors, {} verification failures, {:.0f} s{}\n", rows_.size(), errors_,
                             verify_failures_, elapsed,
                             stopped ? fmt::format(" (stopped at the {:.0f} s budget)", o_.max_seconds) : "");
    return (errors_ == 0 && verify_failures_ == 0) ? 0 : 1;
  }

 private:
  double seconds() const { return std::chrono::duration<double>(Clock::now() - t0_).count(); }
  // True when a unit expected to take `expect_s` would end past the budget.
  bool out_of_time(double expect_s) const { return seconds() + expect_s > o_.max_seconds; }

  void error_record(const std::string& prec, const std::string& model, const std::string& layer, int64_t m,
                    const std::string& variant, const std::exception& e) {
    ++errors_;
    json j = {{"type", "error"}, {"precision", prec}, {"model", model}, {"layer", layer},
              {"m", m},          {"variant", variant}, {"message", e.what()}};
    if (auto* se = dynamic_cast<const ss::Error*>(&e)) j["status"] = ss::status_name(se->status());
    sink_.write(j);
    std::cout << fmt::format("  ERROR {} {} {} m={} {}: {}\n", prec, model, layer, m, variant, e.what()) << std::flush;
    // A dead CUDA context makes every later measurement meaningless: stop after this record.
    const cudaError_t st = cudaDeviceSynchronize();
    if (st != cudaSuccess) {
      context_lost_ = fmt::format("{}: {}", cudaGetErrorName(st), cudaGetErrorString(st));
      std::cout << "  CUDA context lost (" << context_lost_ << "): stopping\n" << std::flush;
    }
  }

  void run_layer(ss::GemmPrecision prec, const Model& model, const Layer& layer, bool& stopped) {
    const int threads = hw_threads(o_);
    const int64_t n = layer.n, k = layer.k;
    const int64_t m_max = *std::max_element(o_.ms.begin(), o_.ms.end());
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
    for (const auto& name : o_.variants) {
      if (name != "dense" && !ss::cusparselt_compiled()) continue;
      variants.push_back(make_variant(name, prec, w, n, k, x, m_max, threads));
    }
    w.clear();
    w.shrink_to_fit();
    const double prep_s = std::chrono::duration<double>(Clock::now() - t_prep).count();
    last_prep_s_ = prep_s;
    if (!ss::cusparselt_compiled() && o_.variants.size() > 1)
      std::cout << "  (no cuSPARSELt in this build: sparse variants skipped)\n";

    // A unit's time grows at most about linearly with m: expect last * m / m_last (x 1.5).
    double last_unit_s = 0;
    int64_t last_m = 0;
    for (int64_t m : o_.ms) {
      const double expect = last_m > 0 ? 1.5 * last_unit_s * std::max(1.0, double(m) / double(last_m)) : 0;
      if (out_of_time(expect) || !context_lost_.empty()) {
        stopped = true;
        return;
      }
      const auto t_unit = Clock::now();
      run_unit(prec, model, layer, m, x, variants);
      last_unit_s = std::chrono::duration<double>(Clock::now() - t_unit).count();
      last_m = m;
    }
    std::cout << fmt::format("  ({} {} {}: data {:.1f} s)\n", ss::gemm_precision_name(prec), model.name, layer.name,
                             prep_s)
              << std::flush;
  }

  ss::PlanOptions plan_options(bool search) const {
    ss::PlanOptions po;
    po.search = search;
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

  void offline_record(const std::string& prec, const Model& model, const Layer& layer, int64_t m,
                      const Variant& v, const ss::GemmPlan& plan, int copies) {
    const auto& s = plan.stats();
    sink_.write({{"type", "offline"},
                 {"precision", prec},
                 {"model", model.name},
                 {"layer", layer.name},
                 {"m", m},
                 {"n", layer.n},
                 {"k", layer.k},
                 {"k_gemm", v.k_gemm},
                 {"variant", v.name},
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
    const ss::GemmProblem dense_p{m, n, k, prec, false};
    const ss::GemmLayout lk = ss::gemm_layout(dense_p);
    std::optional<XArena> arena_k;  // X on K: dense timing, 2:4 timing, dense references
    DevMem d(lk.d_bytes()), d_ref(lk.d_bytes());
    std::map<std::string, double> speedups;
    double t_dense = 0;
    const uint64_t vseed = mix(o_.seed + uint64_t(m) * 7919 + uint64_t(n));

    for (Variant& v : variants) {
      if (!context_lost_.empty()) break;
      try {
        const bool sparse = v.pattern_n > 0;
        const ss::GemmProblem p{m, n, v.k_gemm, prec, sparse};
        const ss::GemmLayout l = ss::gemm_layout(p);
        if (!arena_k) arena_k.emplace(make_arena(x.data(), m, lk, arena_bytes));
        std::optional<XArena> arena_kp;
        if (v.slide) arena_kp.emplace(make_arena(v.x_lifted.data(), m, l, arena_bytes));
        const XArena& xa = v.slide ? *arena_kp : *arena_k;
        const size_t w_bytes = l.w_bytes(n);
        const int copies = int(std::clamp<int64_t>(int64_t((arena_bytes + w_bytes - 1) / w_bytes), 1,
                                                   int64_t(o_.max_weight_copies)));
        auto plans = make_plans(p, v.w_gemm_dev, copies);
        offline_record(pname, model, layer, m, v, *plans[0], copies);

        Verdict verdict;
        if (sparse) {
          // The dense reference on the same pruned operands (heuristic algorithm, no search).
          auto ref = ss::make_cublaslt_plan(dense_p, plan_options(false));
          ref->prepare_weight(v.w_pruned_dev.get(), stream_);
          BENCH_CUDA(cudaMemsetAsync(d.get(), 0x7F, lk.d_bytes(), stream_));
          BENCH_CUDA(cudaMemsetAsync(d_ref.get(), 0x7F, lk.d_bytes(), stream_));
          ref->run(arena_k->slot(0), d_ref.get(), nullptr, stream_);
          plans[0]->run(xa.slot(0), d.get(), nullptr, stream_);
          BENCH_CUDA(cudaStreamSynchronize(stream_));
          const auto rows = sample_rows(m, o_.verify_rows, vseed);
          verdict = compare_rows(prec, lk, n, fetch_rows(d.get(), lk, rows), fetch_rows(d_ref.get(), lk, rows),
                                 rows.size());
          if (verdict.ok && v.slide)
            verdict = cpu_check_slide(prec, v, x, m, n, k, lk, d.get(), o_.verify_points, vseed);
          if (!verdict.ok) {
            ++verify_failures_;
            std::cout << fmt::format("  VERIFY FAILED {} {} {} m={} {}: {}\n", pname, model.name, layer.name, m,
                                     v.name, verdict.note)
                      << std::flush;
          }
        }
        const double us = time_gemm(plans, xa, d.get(), o_.warmup, o_.reps, stream_);
        if (!sparse) t_dense = us;
        const double tflops = 2.0 * double(m) * double(n) * double(k) / (us * 1e-6) / 1e12;
        const double speedup = t_dense > 0 ? t_dense / us : 0;
        if (sparse) speedups[v.name] = speedup;
        else speedups["dense"] = tflops;
        json row = {{"type", "gemm"},
                    {"precision", pname},
                    {"model", model.name},
                    {"layer", layer.name},
                    {"m", m},
                    {"n", n},
                    {"k", k},
                    {"k_gemm", v.k_gemm},
                    {"variant", v.name},
                    {"backend", plans[0]->backend_name()},
                    {"time_us", us},
                    {"tflops", tflops},
                    {"speedup_vs_dense", t_dense > 0 ? json(speedup) : json(nullptr)},
                    {"plan", plans[0]->describe()},
                    {"weight_copies", copies},
                    {"x_slots", xa.slots},
                    {"verified", sparse ? json(verdict.ok) : json(nullptr)},
                    {"verify_rel_err", sparse ? json(verdict.rel_err) : json(nullptr)}};
        if (!verdict.ok) row["verify_note"] = verdict.note;
        sink_.write(row);
        rows_.push_back({pname, model.name, layer.name, v.name, m, n, k, v.k_gemm, us, tflops, speedup});
      } catch (const std::exception& e) {
        error_record(pname, model.name, layer.name, m, v.name, e);
      }
    }
    std::cout << fmt::format("{:<5} {:<12} {:<8} {:>6} {:>6} {:>6} | {:>10.1f} {:>7.0f} |", pname, model.name,
                             layer.name, m, n, k, t_dense, speedups.count("dense") ? speedups["dense"] : 0.0);
    for (const auto& v : o_.variants) {
      if (v == "dense") continue;
      if (speedups.count(v)) std::cout << fmt::format(" {:>6.2f}x", speedups[v]);
      else std::cout << fmt::format(" {:>7}", "-");
    }
    std::cout << "\n" << std::flush;
  }

  Options o_;
  ss::BackendEnv env_;
  Sink sink_;
  std::unique_ptr<ss::PlanCache> cache_;
  cudaStream_t stream_ = nullptr;
  Clock::time_point t0_;
  std::vector<Row> rows_;
  int errors_ = 0, verify_failures_ = 0;
  double last_prep_s_ = 0;
  std::string context_lost_;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"slidesparse_bench_gemm: dense vs 2:4 vs slid (2N-2):2N GEMMs on LLM layer shapes"};
  app.add_option("--precisions", o.precisions, "i8, e4m3, bf16 (f16 too)")->delimiter(',');
  std::string model_help = "models (default qwen2.5-7b,llama3-8b; 'all' for every one):";
  for (const auto& m : models()) model_help += std::string(" ") + m.name;
  app.add_option("--models", o.models, model_help)->delimiter(',');
  app.add_option("--layers", o.layers, "subset of qkv,o,gate_up,down")->delimiter(',');
  app.add_option("--ms", o.ms, "token counts m")->delimiter(',');
  app.add_option("--variants", o.variants, "dense,2:4,4:6,6:8,8:10 (dense is always measured first)")->delimiter(',');
  app.add_option("--out", o.out, "JSON Lines output file");
  app.add_option("--git-sha", o.git_sha, "commit recorded in the env record");
  app.add_option("--plan-cache", o.plan_cache, "algorithm-choice cache (JSON), loaded and saved");
  app.add_option("--max-seconds", o.max_seconds, "stop cleanly (between GEMM shapes) after this many seconds");
  app.add_option("--reps", o.reps, "timed launches per GEMM (median; >= 20)")->check(CLI::Range(20, 100000));
  app.add_option("--warmup", o.warmup, "untimed launches first");
  app.add_option("--search-iters", o.search_iters, "launches per candidate during algorithm search");
  app.add_option("--dense-top-n", o.dense_top_n, "cuBLASLt heuristic candidates timed");
  app.add_option("--rotate-mib", o.rotate_mib, "X arena / weight copies size, MiB (> L2)");
  app.add_option("--max-weight-copies", o.max_weight_copies, "weight copies (plans) rotated at most");
  app.add_option("--seed", o.seed, "data seed");
  app.add_option("--threads", o.threads, "CPU threads for data preparation (0: all)");
  CLI11_PARSE(app, argc, argv);

  if (o.models.size() == 1 && o.models[0] == "all") {
    o.models.clear();
    for (const auto& m : models()) o.models.push_back(m.name);
  }
  for (const auto& p : o.precisions)
    if (!ss::gemm_precision_from_name(p)) {
      std::cerr << "unknown precision '" << p << "' (i8, e4m3, bf16, f16)\n";
      return 2;
    }
  for (const auto& name : o.models) {
    bool found = false;
    for (const auto& m : models()) found |= name == m.name;
    if (!found) {
      std::cerr << "unknown model '" << name << "'\n";
      return 2;
    }
  }
  // Dense first: every speedup needs the dense time of the same shape.
  o.variants.erase(std::remove(o.variants.begin(), o.variants.end(), "dense"), o.variants.end());
  o.variants.insert(o.variants.begin(), "dense");
  for (const auto& v : o.variants) {
    if (v == "dense") continue;
    try {
      ss::Pattern::parse(v);
    } catch (const ss::Error& e) {
      std::cerr << "bad variant '" << v << "': " << e.what() << "\n";
      return 2;
    }
  }
  for (int64_t m : o.ms)
    if (m < 1) {
      std::cerr << "m must be >= 1\n";
      return 2;
    }
  try {
    Bench bench(o, ss::backend_env());
    return bench.run();
  } catch (const ss::Error& e) {
    std::cerr << "slidesparse_bench_gemm: " << ss::status_name(e.status()) << ": " << e.what() << "\n";
    return e.status() == ss::Status::kUnsupported ? 3 : 1;
  } catch (const std::exception& e) {
    std::cerr << "slidesparse_bench_gemm: " << e.what() << "\n";
    return 1;
  }
}
