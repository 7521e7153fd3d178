// slidesparse_bench_layer: full-layer time of SlideLinear (quant+lift -> GEMM -> scale epilogue)
// on LLM layer shapes, the dense layer (quantize -> cuBLASLt on K -> the same epilogue) as the
// baseline, one harness for all of them.
//
// For every precision x model layer (n, K) x variant x m:
//   dense          SlideLinear dense_only: W unpruned, per-channel quantized, cuBLASLt on K
//   2:4 4:6 6:8 8:10   SlideLinear with that pattern on its sparse path (cuSPARSELt on K')
// Each variant's layer is built once (from_dense: prune, quantize, slide, upload; its host time
// is the "offline" record), then every m runs on that layer: the first forward creates the m's
// bucket (plan, algorithm search, buffers: "plan_ms"), a sampled check against float64 follows,
// then the timings. Weights are N(0, 1) * 0.02 (qkv gets a bias, as in Qwen2.5), X is N(0, 1) in
// bf16.
// Timing: CUDA events around each call, warm-up, median of --reps. Before every timed call the L2
// is flushed (a --flush-mib memset between the events of consecutive calls) and X rotates through
// an arena of --rotate-mib, so every call reads X and W from DRAM, as a layer inside a model does.
// Per (variant, m): the full forward, and each stage alone on the warmed bucket (quant+lift, GEMM,
// epilogue). Speedups are against the dense layer of the same shape (full layer, and GEMM alone).
// Host overhead, per (layer, variant) at --host-m rows with a warmed bucket:
//   host_us        host clock per forward() call, 1000 calls issued in batches of 100 behind a
//                  stream gate (a host function that holds the stream), so the GPU never makes
//                  the host wait: the pure cost of issuing one forward (three launches)
//   back_to_back_us  1000 forward() calls then one synchronize, per call: GPU-bound at small m
//   graph_host_us  the same gated measurement for cudaGraphLaunch of a captured forward
//   graph_gpu_us / eager_gpu_us  event-timed median of a replay / an eager forward (no flush)
// Output: a table on stdout and JSON Lines (--out): "env", per layer variant an "offline" record,
// per (variant, m) a "layer" record, per (layer, variant) a "host" record, "error" records, per
// (precision, model, m, variant) a "model" record (the four linears summed), a final "summary".
// --max-seconds stops cleanly between units, keeping everything written so far.
#include <CLI/CLI.hpp>
#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "backends/backend.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/prune.hpp"
#include "slidesparse/slide_linear.hpp"
#include "slidesparse/types.hpp"

#include "bench_common.hpp"

namespace ss = slidesparse;
using namespace slidesparse::bench;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::vector<std::string> precisions{"i8", "e4m3"};
  std::vector<std::string> models{"qwen2.5-7b"};
  std::vector<std::string> layers;  // empty: all four
  std::vector<int64_t> ms{16, 64, 256, 1024, 4096, 8192, 16384};
  std::vector<std::string> variants{"dense", "2:4", "4:6", "6:8", "8:10"};
  std::string out;
  std::string git_sha = "unknown";
  double max_seconds = 420;
  int reps = 20;
  int warmup = 3;
  bool search = true;
  int search_iters = 5;
  double flush_mib = 128;   // > 2x the 50 MB L2 of H100/H200
  double rotate_mib = 128;
  int host_calls = 1000;
  int host_batch = 100;
  int64_t host_m = 16;
  int verify_points = 64;
  uint64_t seed = 1;
  int threads = 0;
};

int hw_threads(const Options& o) { return resolve_threads(o.threads); }

// N(0, 1) from a counter (Box-Muller on two hashed uniforms), reproducible and thread-independent.
float gauss(uint64_t key) {
  const uint64_t a = mix(key), b = mix(key ^ 0xD1B54A32D192ED03ull);
  const double u1 = (double(a >> 11) + 1.0) * 0x1.0p-53, u2 = double(b >> 11) * 0x1.0p-53;
  return float(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

class Events {
 public:
  explicit Events(size_t n) : ev_(n) {
    for (auto& e : ev_) BENCH_CUDA(cudaEventCreate(&e));
  }
  ~Events() {
    for (auto& e : ev_) cudaEventDestroy(e);
  }
  Events(const Events&) = delete;
  Events& operator=(const Events&) = delete;
  cudaEvent_t operator[](size_t i) const { return ev_[i]; }

 private:
  std::vector<cudaEvent_t> ev_;
};

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

// Holds a stream until released (or 5 s passed, so a mistake cannot hang the run): work issued
// behind it waits on the GPU side while the host keeps issuing.
struct Gate {
  std::atomic<bool> open{false};
  static void CUDART_CB hold(void* p) {
    auto* g = static_cast<Gate*>(p);
    const auto t0 = Clock::now();
    while (!g->open.load(std::memory_order_acquire) && Clock::now() - t0 < std::chrono::seconds(5))
      std::this_thread::yield();
  }
};

// Host microseconds per call of `issue` over `calls` calls, in batches behind a gate.
double gated_host_us(const std::function<void()>& issue, int calls, int batch, cudaStream_t stream, bool& waited) {
  double total_us = 0;
  waited = false;
  for (int done = 0; done < calls;) {
    const int b = std::min(batch, calls - done);
    Gate gate;
    BENCH_CUDA(cudaLaunchHostFunc(stream, &Gate::hold, &gate));
    const auto t0 = Clock::now();
    for (int i = 0; i < b; ++i) issue();
    const double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    gate.open.store(true, std::memory_order_release);
    BENCH_CUDA(cudaStreamSynchronize(stream));
    if (us > 1e6) waited = true;  // the launch queue filled: the host waited for the gate
    total_us += us;
    done += b;
  }
  return total_us / calls;
}

struct Timing {
  double full_us = 0, quant_us = 0, gemm_us = 0, epilogue_us = 0;
};

struct VariantResult {  // per m
  Timing t;
  int64_t k_gemm = 0;
  bool ok = false;
};

class Bench {
 public:
  Bench(Options o, ss::BackendEnv env) : o_(std::move(o)), env_(std::move(env)), sink_(o_.out) {
    t0_ = Clock::now();
    BENCH_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    if (o_.flush_mib > 0) flush_ = DevMem(size_t(o_.flush_mib * 1024 * 1024));
  }
  ~Bench() { cudaStreamDestroy(stream_); }

  int run() {
    sink_.write({{"type", "env"},
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
                 {"search", o_.search},
                 {"search_iters", o_.search_iters},
                 {"flush_mib", o_.flush_mib},
                 {"rotate_mib", o_.rotate_mib},
                 {"host_calls", o_.host_calls},
                 {"host_m", o_.host_m},
                 {"seed", o_.seed},
                 {"max_seconds", o_.max_seconds}});
    std::cout << fmt::format("{} (sm_{}, {} SMs), driver {}, runtime {}, cuSPARSELt {}, cuBLASLt {}\n", env_.gpu_name,
                             env_.sm, env_.sm_count, env_.driver_version, env_.runtime_version,
                             env_.cusparselt_version, env_.cublaslt_version)
              << std::flush;
    bool stopped = false;
    for (const auto& pname : o_.precisions) {
      for (const auto& mname : o_.models) {
        const Model* model = nullptr;
        for (const auto& m : models())
          if (mname == m.name) model = &m;
        for (const Layer& layer : model->layers) {
          if (!o_.layers.empty() && std::find(o_.layers.begin(), o_.layers.end(), layer.name) == o_.layers.end())
            continue;
          if (stopped || out_of_time(0) || !context_lost_.empty()) {
            stopped = true;
            break;
          }
          run_layer(pname, *model, layer, stopped);
        }
        if (!stopped) model_records(pname, *model);
      }
      if (stopped) break;
    }
    const double elapsed = seconds();
    sink_.write({{"type", "summary"},
                 {"records", records_},
                 {"errors", errors_},
                 {"verification_failures", verify_failures_},
                 {"completed", !stopped},
                 {"context_lost", context_lost_},
                 {"elapsed_s", elapsed}});
    std::cout << fmt::format("\n{} layer records, {} errors, {} verification failures, {:.0f} s{}\n", records_,
                             errors_, verify_failures_, elapsed,
                             stopped ? fmt::format(" (stopped at the {:.0f} s budget)", o_.max_seconds) : "");
    return (errors_ == 0 && verify_failures_ == 0) ? 0 : 1;
  }

 private:
  double seconds() const { return std::chrono::duration<double>(Clock::now() - t0_).count(); }
  bool out_of_time(double expect_s) const { return seconds() + expect_s > o_.max_seconds; }

  void error_record(const std::string& prec, const std::string& model, const std::string& layer, int64_t m,
                    const std::string& variant, const std::exception& e) {
    ++errors_;
    json j = {{"type", "error"}, {"precision", prec}, {"model", model}, {"layer", layer},
              {"m", m},          {"variant", variant}, {"message", e.what()}};
    if (auto* se = dynamic_cast<const ss::Error*>(&e)) j["status"] = ss::status_name(se->status());
    sink_.write(j);
    std::cout << fmt::format("  ERROR {} {} {} m={} {}: {}\n", prec, model, layer, m, variant, e.what()) << std::flush;
    const cudaError_t st = cudaDeviceSynchronize();
    if (st != cudaSuccess) {
      context_lost_ = fmt::format("{}: {}", cudaGetErrorName(st), cudaGetErrorString(st));
      std::cout << "  CUDA context lost (" << context_lost_ << "): stopping\n" << std::flush;
    }
  }

  // X arena: slots of [m, k] bf16 rows; row r of the arena is host block row r % block_rows.
  struct Arena {
    DevMem mem;
    size_t slot_bytes = 0;
    int64_t slots = 0;
    const void* slot(int64_t i) const { return mem.get() + size_t(i % slots) * slot_bytes; }
  };
  Arena make_arena(int64_t m, int64_t k) {
    Arena a;
    a.slot_bytes = size_t(m * k) * 2;
    const size_t target = size_t(o_.rotate_mib * 1024 * 1024);
    a.slots = std::max<int64_t>(2, int64_t((target + a.slot_bytes - 1) / a.slot_bytes));
    const size_t total = a.slot_bytes * size_t(a.slots);
    a.mem = DevMem(total);
    const size_t block = x_block_.size() * 2;
    BENCH_CUDA(cudaMemcpy(a.mem.get(), x_block_.data(), std::min(block, total), cudaMemcpyHostToDevice));
    for (size_t have = std::min(block, total); have < total;) {  // doubling copies, whole block rows
      const size_t nbytes = std::min(have, total - have);
      BENCH_CUDA(cudaMemcpy(a.mem.get() + have, a.mem.get(), nbytes, cudaMemcpyDeviceToDevice));
      have += nbytes;
    }
    BENCH_CUDA(cudaDeviceSynchronize());
    return a;
  }

  // Median us of `call(i)` over reps, each between its own events, L2 flushed before each.
  double time_calls(const std::function<void(int64_t)>& call) {
    for (int i = 0; i < o_.warmup; ++i) call(i);
    Events ev(size_t(2 * o_.reps));
    for (int r = 0; r < o_.reps; ++r) {
      if (flush_.bytes() > 0) BENCH_CUDA(cudaMemsetAsync(flush_.get(), r & 0xFF, flush_.bytes(), stream_));
      BENCH_CUDA(cudaEventRecord(ev[size_t(2 * r)], stream_));
      call(o_.warmup + r);
      BENCH_CUDA(cudaEventRecord(ev[size_t(2 * r + 1)], stream_));
    }
    BENCH_CUDA(cudaStreamSynchronize(stream_));
    std::vector<double> us;
    for (int r = 0; r < o_.reps; ++r) {
      float ms = 0;
      BENCH_CUDA(cudaEventElapsedTime(&ms, ev[size_t(2 * r)], ev[size_t(2 * r + 1)]));
      us.push_back(double(ms) * 1e3);
    }
    return median(std::move(us));
  }

  // Y at sampled (i, j) against float64 X . W_pruned^T (+ bias), relative error over the points.
  double verify(const Layer& L, const std::optional<ss::Pattern>& pat,
                const void* y_dev, int64_t m, uint64_t seed) {
    const int64_t k = L.k, n = L.n;
    double num = 0, den = 0;
    std::vector<float> wrow(static_cast<size_t>(k));
    std::vector<uint8_t> keep(static_cast<size_t>(k));
    for (int t = 0; t < o_.verify_points; ++t) {
      const int64_t i = int64_t(mix(seed * 31 + uint64_t(t)) % uint64_t(m));
      const int64_t j = int64_t(mix(seed * 37 + uint64_t(t) + 1000) % uint64_t(n));
      for (int64_t q = 0; q < k; ++q) wrow[size_t(q)] = weight(L, j, q);
      if (pat) {
        ss::prune_row_mask(*pat, ss::PruneMethod::kMagnitude, wrow.data(), k, nullptr, keep.data());
        for (int64_t q = 0; q < k; ++q)
          if (!keep[size_t(q)]) wrow[size_t(q)] = 0;
      }
      // Arena slot 0, row i = host block row i % block rows.
      const uint16_t* xr = &x_block_[size_t((i % x_block_rows_) * k)];
      double ref = L.bias ? bias_[size_t(j)] : 0.0;
      for (int64_t q = 0; q < k; ++q) ref += double(ss::bf16_to_f32(xr[q])) * double(wrow[size_t(q)]);
      uint16_t got = 0;
      BENCH_CUDA(cudaMemcpy(&got, static_cast<const uint8_t*>(y_dev) + size_t(i * n + j) * 2, 2,
                            cudaMemcpyDeviceToHost));
      const double g = ss::bf16_to_f32(got);
      num += (g - ref) * (g - ref);
      den += ref * ref;
      if (!std::isfinite(g)) num = INFINITY;
    }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  }

  static double tolerance(ss::LinearPrecision p) {
    // Quantization of both operands dominates: i8 ~1%, e4m3 ~4%; a layout bug gives ~1.
    return p == ss::LinearPrecision::kI8 ? 0.05 : p == ss::LinearPrecision::kE4M3 ? 0.12 : 0.03;
  }

  float weight(const Layer& L, int64_t j, int64_t q) const {
    return 0.02f * gauss(w_seed_ + uint64_t(j * L.k + q));
  }

  void run_layer(const std::string& pname, const Model& model, const Layer& L, bool& stopped) {
    const int threads = hw_threads(o_);
    const auto prec = *linear_precision_from_name(pname);
    const int64_t n = L.n, k = L.k;
    w_seed_ = mix(o_.seed ^ uint64_t(n * 1000003 + k));
    const auto t_data = Clock::now();
    std::vector<float> w(size_t(n * k));
    parallel_for(n, threads, [&](int64_t b, int64_t e) {
      for (int64_t j = b; j < e; ++j)
        for (int64_t q = 0; q < k; ++q) w[size_t(j * k + q)] = weight(L, j, q);
    });
    bias_.assign(size_t(n), 0.0f);
    for (int64_t j = 0; j < n; ++j) bias_[size_t(j)] = 0.1f * gauss(~w_seed_ + uint64_t(j));
    x_block_rows_ = 256;
    x_block_.resize(size_t(x_block_rows_ * k));
    for (size_t i = 0; i < x_block_.size(); ++i) x_block_[i] = ss::f32_to_bf16(gauss(mix(o_.seed + 77) + i));
    const double data_s = std::chrono::duration<double>(Clock::now() - t_data).count();

    const int64_t m_max = *std::max_element(o_.ms.begin(), o_.ms.end());
    DevMem y(size_t(m_max * n) * 2);
    std::map<std::string, std::map<int64_t, VariantResult>> results;  // variant -> m -> result

    for (const std::string& vname : o_.variants) {
      if (stopped || !context_lost_.empty()) break;
      if (vname != "dense" && !ss::cusparselt_compiled()) continue;
      std::optional<ss::SlideLinear> layer;
      std::optional<ss::Pattern> pat;
      if (vname != "dense") pat = ss::Pattern::parse(vname);
      const ss::LinearPath path = pat ? ss::LinearPath::kSparse : ss::LinearPath::kDense;
      try {
        ss::SlideLinearOptions lo;
        lo.precision = prec;
        lo.search = o_.search;
        lo.search_iters = o_.search_iters;
        lo.dense_below_m = 0;
        if (pat) lo.pattern = *pat;
        else lo.dense_only = true;
        const auto t0 = Clock::now();
        layer.emplace(ss::SlideLinear::from_dense(w.data(), n, k, lo, L.bias ? bias_.data() : nullptr));
        const double build_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        sink_.write({{"type", "offline"}, {"precision", pname}, {"model", model.name}, {"layer", L.name},
                     {"variant", vname}, {"n", n}, {"k", k}, {"k_gemm", pat ? layer->k_sparse() : layer->k_dense()},
                     {"from_dense_ms", build_ms}});
      } catch (const std::exception& e) {
        error_record(pname, model.name, L.name, 0, vname, e);
        continue;
      }

      double last_unit_s = 0;
      int64_t last_m = 0;
      for (int64_t m : o_.ms) {
        const double expect = last_m > 0 ? 1.5 * last_unit_s * std::max(1.0, double(m) / double(last_m)) : 0;
        if (out_of_time(expect) || !context_lost_.empty()) {
          stopped = true;
          break;
        }
        const auto t_unit = Clock::now();
        try {
          run_unit(pname, prec, model, L, vname, pat, path, *layer, m, y, results);
          if (m == o_.host_m || (m == o_.ms.front() && std::find(o_.ms.begin(), o_.ms.end(), o_.host_m) == o_.ms.end()))
            host_record(pname, model, L, vname, path, *layer, m, y);
        } catch (const std::exception& e) {
          error_record(pname, model.name, L.name, m, vname, e);
        }
        last_unit_s = std::chrono::duration<double>(Clock::now() - t_unit).count();
        last_m = m;
      }
    }

    // Table: per m, dense full-layer time and each variant's full-layer (and GEMM-only) speedup.
    std::cout << fmt::format("\n{} {} {} (n={}, K={}; data {:.1f} s)  full-layer speedup vs dense [GEMM-only]\n",
                             pname, model.name, L.name, n, k, data_s);
    std::cout << fmt::format("{:>6} | {:>10} {:>9} {:>9} {:>9} |", "m", "dense us", "quant", "gemm", "epi");
    for (const auto& v : o_.variants)
      if (v != "dense") std::cout << fmt::format(" {:>15}", v);
    std::cout << "\n";
    for (int64_t m : o_.ms) {
      const auto dit = results["dense"].find(m);
      if (dit == results["dense"].end()) continue;
      const Timing& d = dit->second.t;
      std::cout << fmt::format("{:>6} | {:>10.1f} {:>9.1f} {:>9.1f} {:>9.1f} |", m, d.full_us, d.quant_us, d.gemm_us,
                               d.epilogue_us);
      for (const auto& v : o_.variants) {
        if (v == "dense") continue;
        const auto it = results[v].find(m);
        if (it == results[v].end()) std::cout << fmt::format(" {:>15}", "-");
        else
          std::cout << fmt::format(" {:>6.2f}x [{:>4.2f}x]", d.full_us / it->second.t.full_us,
                                   d.gemm_us / it->second.t.gemm_us);
      }
      std::cout << "\n";
    }
    std::cout << std::flush;
    for (auto& [v, per_m] : results)
      for (auto& [m, r] : per_m) sums_[pname][model.name][v][m][L.name] = r.t;
  }

  void run_unit(const std::string& pname, ss::LinearPrecision prec, const Model& model, const Layer& L,
                const std::string& vname, const std::optional<ss::Pattern>& pat, ss::LinearPath path,
                ss::SlideLinear& layer, int64_t m, DevMem& y,
                std::map<std::string, std::map<int64_t, VariantResult>>& results) {
    const int64_t n = L.n, k = L.k;
    Arena x = make_arena(m, k);
    // First call: creates the bucket (plan, algorithm choice, buffers).
    const auto t0 = Clock::now();
    BENCH_CUDA(cudaMemsetAsync(y.get(), 0xFF, size_t(m * n) * 2, stream_));
    layer.forward(x.slot(0), m, y.get(), stream_, path);
    BENCH_CUDA(cudaStreamSynchronize(stream_));
    const double plan_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    const double rel_err = verify(L, pat, y.get(), m, uint64_t(m) * 7919 + uint64_t(n));
    const bool ok = rel_err <= tolerance(prec);
    if (!ok) {
      ++verify_failures_;
      std::cout << fmt::format("  VERIFY FAILED {} {} {} m={} {}: relative error {:.3g} (tolerance {:.2g})\n", pname,
                               model.name, L.name, m, vname, rel_err, tolerance(prec))
                << std::flush;
    }
    Timing t;
    auto stage = [&](unsigned stages) {
      return time_calls([&](int64_t i) { layer.forward(x.slot(i), m, y.get(), stream_, path, stages); });
    };
    t.full_us = stage(ss::kStageAll);
    t.quant_us = stage(ss::kStageQuant);
    t.gemm_us = stage(ss::kStageGemm);
    t.epilogue_us = stage(ss::kStageEpilogue);
    VariantResult& r = results[vname][m];
    r.t = t;
    r.k_gemm = pat ? layer.k_sparse() : layer.k_dense();
    r.ok = ok;
    const auto dense = results["dense"].find(m);
    const bool have_dense = dense != results["dense"].end() && vname != "dense";
    const double flops = 2.0 * double(m) * double(n) * double(k);
    json rec = {{"type", "layer"},
                {"precision", pname},
                {"model", model.name},
                {"layer", L.name},
                {"variant", vname},
                {"m", m},
                {"n", n},
                {"k", k},
                {"k_gemm", r.k_gemm},
                {"bias", L.bias},
                {"bucket_rows", ss::SlideLinear::bucket_rows(m)},
                {"full_us", t.full_us},
                {"quant_us", t.quant_us},
                {"gemm_us", t.gemm_us},
                {"epilogue_us", t.epilogue_us},
                {"stages_sum_us", t.quant_us + t.gemm_us + t.epilogue_us},
                {"tflops", flops / (t.full_us * 1e-6) / 1e12},
                {"gemm_tflops", flops / (t.gemm_us * 1e-6) / 1e12},
                {"speedup_vs_dense", have_dense ? json(dense->second.t.full_us / t.full_us) : json(nullptr)},
                {"gemm_speedup_vs_dense", have_dense ? json(dense->second.t.gemm_us / t.gemm_us) : json(nullptr)},
                {"plan_ms", plan_ms},
                {"x_slots", x.slots},
                {"verified", ok},
                {"verify_rel_err", rel_err}};
    sink_.write(rec);
    ++records_;
  }

  void host_record(const std::string& pname, const Model& model, const Layer& L, const std::string& vname,
                   ss::LinearPath path, ss::SlideLinear& layer, int64_t m, DevMem& y) {
    Arena x = make_arena(m, L.k);
    auto fwd = [&] { layer.forward(x.slot(0), m, y.get(), stream_, path); };
    bool waited = false, graph_waited = false;
    const double host_us = gated_host_us(fwd, o_.host_calls, o_.host_batch, stream_, waited);

    const auto t0 = Clock::now();
    for (int i = 0; i < o_.host_calls; ++i) fwd();
    BENCH_CUDA(cudaStreamSynchronize(stream_));
    const double b2b_us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / o_.host_calls;

    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    BENCH_CUDA(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    try {
      fwd();
    } catch (...) {
      cudaStreamEndCapture(stream_, &graph);
      if (graph) cudaGraphDestroy(graph);
      throw;
    }
    BENCH_CUDA(cudaStreamEndCapture(stream_, &graph));
    BENCH_CUDA(cudaGraphInstantiate(&exec, graph, 0));
    auto replay = [&] { BENCH_CUDA(cudaGraphLaunch(exec, stream_)); };
    const double graph_host_us = gated_host_us(replay, o_.host_calls, o_.host_batch, stream_, graph_waited);
    auto event_median = [&](const std::function<void()>& f) {
      Events ev(size_t(2 * o_.reps));
      for (int i = 0; i < o_.warmup; ++i) f();
      for (int r = 0; r < o_.reps; ++r) {
        BENCH_CUDA(cudaEventRecord(ev[size_t(2 * r)], stream_));
        f();
        BENCH_CUDA(cudaEventRecord(ev[size_t(2 * r + 1)], stream_));
      }
      BENCH_CUDA(cudaStreamSynchronize(stream_));
      std::vector<double> us;
      for (int r = 0; r < o_.reps; ++r) {
        float ms = 0;
        BENCH_CUDA(cudaEventElapsedTime(&ms, ev[size_t(2 * r)], ev[size_t(2 * r + 1)]));
        us.push_back(double(ms) * 1e3);
      }
      return median(std::move(us));
    };
    const double graph_gpu_us = event_median(replay);
    const double eager_gpu_us = event_median(fwd);
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    sink_.write({{"type", "host"},
                 {"precision", pname},
                 {"model", model.name},
                 {"layer", L.name},
                 {"variant", vname},
                 {"m", m},
                 {"calls", o_.host_calls},
                 {"batch", o_.host_batch},
                 {"host_us", host_us},
                 {"host_waited", waited},
                 {"back_to_back_us", b2b_us},
                 {"graph_host_us", graph_host_us},
                 {"graph_host_waited", graph_waited},
                 {"graph_gpu_us", graph_gpu_us},
                 {"eager_gpu_us", eager_gpu_us}});
    std::cout << fmt::format("  host {} {} {} m={}: forward() {:.1f} us/call issued, {:.1f} us/call back to back; "
                             "graph launch {:.1f} us issued, replay {:.1f} us vs eager {:.1f} us (GPU)\n",
                             pname, L.name, vname, m, host_us, b2b_us, graph_host_us, graph_gpu_us, eager_gpu_us)
              << std::flush;
  }

  // The four linears of a model summed, per m and variant, when every layer has the m.
  void model_records(const std::string& pname, const Model& model) {
    auto& per_v = sums_[pname][model.name];
    if (!o_.layers.empty() || per_v.empty()) return;
    std::cout << fmt::format("\n{} {}: four linears summed, full-layer speedup vs dense [GEMM-only]\n", pname,
                             model.name);
    for (int64_t m : o_.ms) {
      auto sum = [&](const std::string& v, double Timing::*f) -> std::optional<double> {
        const auto it = per_v[v].find(m);
        if (it == per_v[v].end() || it->second.size() != model.layers.size()) return std::nullopt;
        double s = 0;
        for (const auto& [name, t] : it->second) s += t.*f;
        return s;
      };
      const auto dfull = sum("dense", &Timing::full_us), dgemm = sum("dense", &Timing::gemm_us);
      if (!dfull) continue;
      std::cout << fmt::format("{:>6} | dense {:>9.1f} us |", m, *dfull);
      for (const auto& v : o_.variants) {
        const auto full = sum(v, &Timing::full_us), gemm = sum(v, &Timing::gemm_us);
        if (!full) continue;
        const auto quant = sum(v, &Timing::quant_us), epi = sum(v, &Timing::epilogue_us);
        sink_.write({{"type", "model"},
                     {"precision", pname},
                     {"model", model.name},
                     {"variant", v},
                     {"m", m},
                     {"full_us", *full},
                     {"gemm_us", *gemm},
                     {"quant_us", *quant},
                     {"epilogue_us", *epi},
                     {"speedup_vs_dense", *dfull / *full},
                     {"gemm_speedup_vs_dense", *dgemm / *gemm}});
        if (v != "dense") std::cout << fmt::format(" {} {:.2f}x [{:.2f}x]", v, *dfull / *full, *dgemm / *gemm);
      }
      std::cout << "\n";
    }
    std::cout << std::flush;
  }

  static std::optional<ss::LinearPrecision> linear_precision_from_name(const std::string& s) {
    if (s == "i8") return ss::LinearPrecision::kI8;
    if (s == "e4m3") return ss::LinearPrecision::kE4M3;
    if (s == "bf16") return ss::LinearPrecision::kBF16;
    return std::nullopt;
  }

 public:
  static bool valid_precision(const std::string& s) { return linear_precision_from_name(s).has_value(); }

 private:
  Options o_;
  ss::BackendEnv env_;
  Sink sink_;
  cudaStream_t stream_ = nullptr;
  DevMem flush_;
  Clock::time_point t0_;
  uint64_t w_seed_ = 0;
  std::vector<float> bias_;
  std::vector<uint16_t> x_block_;
  int64_t x_block_rows_ = 256;
  // precision -> model -> variant -> m -> layer -> timing
  std::map<std::string, std::map<std::string, std::map<std::string, std::map<int64_t, std::map<std::string, Timing>>>>>
      sums_;
  int records_ = 0, errors_ = 0, verify_failures_ = 0;
  std::string context_lost_;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"slidesparse_bench_layer: full SlideLinear layers (quant+lift, GEMM, epilogue), dense vs 2:4 vs slid"};
  app.add_option("--precisions", o.precisions, "i8, e4m3, bf16")->delimiter(',');
  std::string model_help = "models:";
  for (const auto& m : models()) model_help += std::string(" ") + m.name;
  app.add_option("--models", o.models, model_help)->delimiter(',');
  app.add_option("--layers", o.layers, "subset of qkv,o,gate_up,down (no model sums then)")->delimiter(',');
  app.add_option("--ms", o.ms, "token counts m")->delimiter(',');
  app.add_option("--variants", o.variants, "dense,2:4,4:6,6:8,8:10 (dense is always measured first)")->delimiter(',');
  app.add_option("--out", o.out, "JSON Lines output file");
  app.add_option("--git-sha", o.git_sha, "commit recorded in the env record");
  app.add_option("--max-seconds", o.max_seconds, "stop cleanly (between units) after this many seconds");
  app.add_option("--reps", o.reps, "timed calls per measurement (median; >= 10)")->check(CLI::Range(10, 100000));
  app.add_option("--warmup", o.warmup, "untimed calls first");
  app.add_flag("--search,!--no-search", o.search, "searched GEMM algorithms (default) or the library defaults");
  app.add_option("--search-iters", o.search_iters, "launches per candidate during algorithm search")
      ->check(CLI::Range(1, 1000));
  app.add_option("--flush-mib", o.flush_mib, "L2 flush (memset) before every timed call, MiB (0: none)");
  app.add_option("--rotate-mib", o.rotate_mib, "X arena size, MiB");
  app.add_option("--host-calls", o.host_calls, "forward() calls for the host-overhead measurement");
  app.add_option("--host-batch", o.host_batch, "calls issued behind one stream gate")->check(CLI::Range(1, 1000));
  app.add_option("--host-m", o.host_m, "m of the host-overhead measurement (must be in --ms)");
  app.add_option("--verify-points", o.verify_points, "sampled outputs checked against float64");
  app.add_option("--seed", o.seed, "data seed");
  app.add_option("--threads", o.threads, "CPU threads for data preparation (0: all)");
  CLI11_PARSE(app, argc, argv);

  for (const auto& p : o.precisions)
    if (!Bench::valid_precision(p)) {
      std::cerr << "unknown precision '" << p << "' (i8, e4m3, bf16)\n";
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
  std::sort(o.ms.begin(), o.ms.end());
  o.ms.erase(std::unique(o.ms.begin(), o.ms.end()), o.ms.end());
  if (o.ms.empty() || o.ms.front() < 1) {
    std::cerr << "m must be >= 1\n";
    return 2;
  }
  try {
    Bench bench(o, ss::backend_env());
    return bench.run();
  } catch (const ss::Error& e) {
    std::cerr << "slidesparse_bench_layer: " << ss::status_name(e.status()) << ": " << e.what() << "\n";
    return e.status() == ss::Status::kUnsupported ? 3 : 1;
  } catch (const std::exception& e) {
    std::cerr << "slidesparse_bench_layer: " << e.what() << "\n";
    return 1;
  }
}
