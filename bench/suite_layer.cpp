// `slidesparse bench --suite layer`: full-layer time of SlideLinear (quant+lift -> GEMM -> scale
// epilogue) on LLM layer shapes, the dense layer (quantize -> cuBLASLt on K -> the same epilogue)
// as the baseline, one harness for all of them.
//
// For every precision x model layer (n, K) x variant x m:
//   dense        SlideLinear dense_only: W unpruned, per-channel quantized, cuBLASLt on K
//   2:4 4:6 6:8 8:10   SlideLinear with that pattern on its sparse path (cuSPARSELt on K')
//   2:4@P        (--native-kprime) a native 2:4 SlideLinear of width K'(P): X[m, K'] is quantized
//                without lifting, then the same GEMM shape as P. slide_over_native = t(P) / t(2:4@P)
//                (full layer and GEMM alone) is what sliding costs beyond its FLOPs.
//   auto:P       (--policy P) SlideLinear P with its measured crossover (dense_below_m = -1) on
//                LinearPath::kAuto: the small-m policy; speedup_vs_dense must stay >= 0.98.
// Each variant's layer is built once (from_dense: prune, quantize, slide, upload, and for auto:P
// the crossover probes; its host time is the "offline" record), then every m runs on that layer:
// the first forward creates the m's bucket (plan, algorithm search, buffers: "plan_ms"), a sampled
// check against float64 follows, then the timings. All layers share one plan cache (--plan-cache,
// else in memory), so 2:4@P and P run the same GEMM algorithm. Weights are N(0, 1) * 0.02 (qkv
// gets a bias, as in Qwen2.5), X is N(0, 1) in bf16.
// Timing: CUDA events around each call, warm-up, median of --reps. Before every timed call the L2
// is flushed (a --flush-mib memset outside the events) and X rotates through an arena of
// --rotate-mib, so every call reads X and W from DRAM, as a layer inside a model does.
// Per (variant, m): the full forward and each stage alone on the warmed bucket (quant+lift, GEMM,
// epilogue; not for auto:P). The two memory-bound stages are set against a device-to-device copy
// of the same bytes timed the same way in the same run (copy_quant_us, copy_epilogue_us), and
// full_over_gemm_plus_quant_bound = full / (GEMM + copy_quant) is the acceptance ratio "full layer
// within 5% of the GEMM plus a bandwidth-bound quant pass".
// Host overhead, per (layer, variant) at --host-m rows with a warmed bucket (dense and patterns).
// Every host time is the median over the batches of one batch's mean (the mean over all calls is
// kept as *_mean_us):
//   host_us        host clock per forward() call, --host-calls calls issued in batches of
//                  --host-batch behind a stream gate (a host function that holds the stream), so
//                  the GPU never makes the host wait: the pure cost of issuing one forward
//   quant_host_us / gemm_run_host_us / epilogue_host_us  the same per stage alone; the GEMM stage
//                  is exactly the backend's run() on the bucket's cached plan, which for a library
//                  plan launches the graph recorded on the bucket's buffers (GemmPlan::bind)
//   gemm_direct_host_us / host_direct_us  the GEMM stage / the forward with the bindings off: the
//                  library's own host path on every call; bound_identical: both give the same Y
//   back_to_back_us  the calls then one synchronize, per call: GPU-bound at small m
//   graph_host_us  the same gated measurement for cudaGraphLaunch of a captured forward
//   graph_gpu_us / eager_gpu_us  event-timed median of a replay / an eager forward (no flush)
//   graph_identical  the replayed Y equals the eager Y byte for byte
// Records: "offline", "layer", "host", "model" (the four linears summed), "error".
#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "backends/backend.hpp"
#include "backends/plan_cache.hpp"
#include "kernels/l2_scrub.cuh"
#include "slidesparse/error.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/prune.hpp"
#include "slidesparse/slide.hpp"
#include "slidesparse/slide_linear.hpp"
#include "slidesparse/types.hpp"

#include "bench.hpp"
#include "bench_common.hpp"
#include "suites.hpp"

namespace slidesparse::bench {
namespace {

namespace ss = slidesparse;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using Kind = VariantSpec::Kind;

constexpr int64_t kXBlockRows = 256;        // distinct X rows; the arena repeats them
constexpr size_t kCopyCapBytes = size_t(1) << 30;  // copy baseline: above this, scaled linearly

// N(0, 1) from a counter (Box-Muller on two hashed uniforms), reproducible and thread-independent.
float gauss(uint64_t key) {
  const uint64_t a = mix(key), b = mix(key ^ 0xD1B54A32D192ED03ull);
  const double u1 = (double(a >> 11) + 1.0) * 0x1.0p-53, u2 = double(b >> 11) * 0x1.0p-53;
  return float(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
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

// Host microseconds per call of `issue` over `calls` calls, in batches behind a gate: the mean
// over all calls and the median of the batches' means (robust to a batch that a host hiccup hit).
struct HostUs {
  double mean = 0, median = 0;
};
HostUs gated_host_us(const std::function<void()>& issue, int calls, int batch, cudaStream_t stream, bool& waited) {
  double total_us = 0;
  std::vector<double> per_batch;
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
    per_batch.push_back(us / b);
    done += b;
  }
  HostUs r;
  r.mean = total_us / calls;
  std::sort(per_batch.begin(), per_batch.end());
  const size_t h = per_batch.size() / 2;
  r.median = per_batch.size() % 2 ? per_batch[h] : 0.5 * (per_batch[h - 1] + per_batch[h]);
  return r;
}

struct Timing {
  double full_us = 0, quant_us = 0, gemm_us = 0, epilogue_us = 0;
  double copy_quant_us = 0, copy_epilogue_us = 0;  // D2D copies of the stages' bytes
  bool stages = false;                             // the stage fields were measured
  double paired_us = 0, paired_dense_us = 0;       // auto:P timed interleaved with the dense layer
};

std::optional<ss::LinearPrecision> linear_precision_from_name(const std::string& s) {
  if (s == "i8") return ss::LinearPrecision::kI8;
  if (s == "e4m3") return ss::LinearPrecision::kE4M3;
  if (s == "bf16") return ss::LinearPrecision::kBF16;
  return std::nullopt;
}

class LayerSuite {
 public:
  LayerSuite(const BenchOptions& o, const ss::BackendEnv& env, Sink& sink, std::ostream& out)
      : o_(o), env_(env), sink_(sink), out_(out) {
    budget_.max_seconds = o_.max_seconds;
    cache_ = o_.plan_cache.empty() ? std::make_unique<ss::PlanCache>(env_.key())
                                   : ss::PlanCache::load(o_.plan_cache, env_.key());
    BENCH_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    if (o_.flush_mib > 0) {
      flush_ = DevMem(size_t(o_.flush_mib * 1024 * 1024));
      flush_sink_ = DevMem(sizeof(uint32_t));
      BENCH_CUDA(cudaMemset(flush_.get(), 0, flush_.bytes()));  // xor 0: the scrub never writes
    }
  }
  ~LayerSuite() { cudaStreamDestroy(stream_); }
  LayerSuite(const LayerSuite&) = delete;
  LayerSuite& operator=(const LayerSuite&) = delete;

  json run() {
    bool stopped = false;
    for (const auto& pname : o_.precisions) {
      for (const auto& mname : o_.models) {
        const Model* model = find_model(mname);
        for (const Layer& layer : model->layers) {
          if (!o_.layers.empty() && std::find(o_.layers.begin(), o_.layers.end(), layer.name) == o_.layers.end())
            continue;
          if (stopped || budget_.out_of_time(0) || !tally_.context_lost.empty()) {
            stopped = true;
            break;
          }
          run_layer(pname, *model, layer, stopped);
        }
        if (!stopped) model_records(pname, *model);
      }
      if (stopped) break;
    }
    if (!o_.plan_cache.empty()) cache_->save(o_.plan_cache);
    return {{"records", tally_.records},
            {"errors", tally_.errors},
            {"verification_failures", tally_.verification_failures},
            {"completed", !stopped},
            {"context_lost", tally_.context_lost},
            {"policy_min_speedup", policy_min_}};
  }

 private:
  static json where(const std::string& prec, const std::string& model, const std::string& layer, int64_t m,
                    const std::string& variant) {
    return {{"precision", prec}, {"model", model}, {"layer", layer}, {"m", m}, {"variant", variant}};
  }

  // kXBlockRows distinct bf16 rows of length k (N(0, 1)); row r of any arena is block row r % rows.
  const std::vector<uint16_t>& x_block(int64_t k) {
    auto& b = x_blocks_[k];
    if (b.empty()) {
      b.resize(size_t(kXBlockRows * k));
      for (size_t i = 0; i < b.size(); ++i) b[i] = ss::f32_to_bf16(gauss(mix(o_.seed + 77 + uint64_t(k)) + i));
    }
    return b;
  }

  // X arena: slots of [m, k] bf16 rows, at least --rotate-mib in all.
  using Arena = SlotArena;
  Arena make_arena(int64_t m, int64_t k) {
    Arena a;
    a.slot_bytes = size_t(m * k) * 2;
    const size_t target = size_t(o_.rotate_mib * 1024 * 1024);
    a.slots = std::max<int64_t>(2, int64_t((target + a.slot_bytes - 1) / a.slot_bytes));
    const size_t total = a.slot_bytes * size_t(a.slots);
    a.mem = DevMem(total);
    const auto& blk = x_block(k);
    const size_t block = blk.size() * 2;
    BENCH_CUDA(cudaMemcpy(a.mem.get(), blk.data(), std::min(block, total), cudaMemcpyHostToDevice));
    for (size_t have = std::min(block, total); have < total;) {  // doubling copies, whole block rows
      const size_t nbytes = std::min(have, total - have);
      BENCH_CUDA(cudaMemcpy(a.mem.get() + have, a.mem.get(), nbytes, cudaMemcpyDeviceToDevice));
      have += nbytes;
    }
    BENCH_CUDA(cudaDeviceSynchronize());
    return a;
  }

  // The L2 flush before a timed call. read (default): the read-only scrub of a zero buffer
  // (src/kernels/l2_scrub.cuh), which leaves clean lines only; write: a memset of the buffer,
  // which leaves the L2 full of dirty lines that the timed call then pays to write back.
  void flush(int salt) {
    if (flush_.bytes() == 0) return;
    if (o_.flush_mode == "write")
      BENCH_CUDA(cudaMemsetAsync(flush_.get(), salt & 0xFF, flush_.bytes(), stream_));
    else
      BENCH_CUDA(ss::l2_scrub(flush_.get(), flush_.bytes(), 1u, reinterpret_cast<uint32_t*>(flush_sink_.get()), stream_));
  }

  struct Paired {
    double first_us = 0, second_us = 0;  // medians of each side's calls
    double ratio = 0;                     // median over repetitions of first / second (same pair)
    double ratio_iqr = 0;                 // its interquartile range
    int reps = 0;
  };

  // `first` and `second` timed interleaved, call by call: the order swapped every repetition, the
  // L2 flushed before each call, --warmup untimed calls of each first. Repetitions: enough pairs to
  // fill --paired-ms at `est_pair_us` per pair, at least --reps, at most 2000.
  Paired paired_us(const std::function<void(int64_t)>& first, const std::function<void(int64_t)>& second,
                   double est_pair_us) {
    for (int i = 0; i < o_.warmup; ++i) {
      first(i);
      second(i);
    }
    const double want = est_pair_us > 0 ? o_.paired_ms * 1e3 / est_pair_us : 0;
    const int reps = int(std::clamp(want, double(o_.reps), 2000.0));
    Events ev(size_t(4 * reps));
    for (int r = 0; r < reps; ++r)
      for (int h = 0; h < 2; ++h) {
        const int side = (h == 0) == (r % 2 == 0) ? 0 : 1;
        flush(2 * r + h);
        BENCH_CUDA(cudaEventRecord(ev[size_t(4 * r + 2 * side)], stream_));
        (side == 0 ? first : second)(o_.warmup + r);
        BENCH_CUDA(cudaEventRecord(ev[size_t(4 * r + 2 * side + 1)], stream_));
      }
    BENCH_CUDA(cudaStreamSynchronize(stream_));
    std::vector<double> us[2], ratio;
    for (int r = 0; r < reps; ++r) {
      double t[2];
      for (int side = 0; side < 2; ++side) {
        float ms = 0;
        BENCH_CUDA(cudaEventElapsedTime(&ms, ev[size_t(4 * r + 2 * side)], ev[size_t(4 * r + 2 * side + 1)]));
        t[side] = double(ms) * 1e3;
        us[side].push_back(t[side]);
      }
      ratio.push_back(t[1] > 0 ? t[0] / t[1] : 1.0);
    }
    Paired p;
    p.reps = reps;
    p.first_us = median(std::move(us[0]));
    p.second_us = median(std::move(us[1]));
    std::sort(ratio.begin(), ratio.end());
    p.ratio_iqr = ratio[size_t(3 * (ratio.size() - 1) / 4)] - ratio[size_t((ratio.size() - 1) / 4)];
    p.ratio = median(std::move(ratio));
    return p;
  }

  // Median us of `call(i)`, the L2 flushed before each timed call.
  double time_calls(const std::function<void(int64_t)>& call) {
    return time_events_us(call, o_.warmup, o_.reps, stream_, [&](int r) {
      flush(r);
    });
  }

  // A device-to-device copy moving `bytes` in all (bytes/2 read + bytes/2 written), timed like the
  // stages; above 2 x kCopyCapBytes the cap is timed and scaled (the copy is at full bandwidth).
  double copy_us(size_t bytes) {
    const auto it = copy_us_.find(bytes);
    if (it != copy_us_.end()) return it->second;
    const size_t half = std::max<size_t>(bytes / 2, 256);
    const size_t timed = std::min(half, kCopyCapBytes);
    if (copy_src_.bytes() < timed) {
      copy_src_ = DevMem();
      copy_dst_ = DevMem();
      copy_src_ = DevMem(timed);
      copy_dst_ = DevMem(timed);
      BENCH_CUDA(cudaMemset(copy_src_.get(), 1, timed));
    }
    const double us = time_calls([&](int64_t) {
      BENCH_CUDA(cudaMemcpyAsync(copy_dst_.get(), copy_src_.get(), timed, cudaMemcpyDeviceToDevice, stream_));
    });
    const double scaled = us * double(half) / double(timed);
    copy_us_[bytes] = scaled;
    return scaled;
  }

  // Y at sampled (i, j) against float64 X . W_pruned^T (+ bias), relative error over the points.
  double verify(const Layer& L, const std::optional<ss::Pattern>& pat, const void* y_dev, int64_t m, uint64_t seed) {
    const int64_t k = L.k, n = L.n;
    const auto& blk = x_block(k);
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
      const uint16_t* xr = &blk[size_t((i % kXBlockRows) * k)];  // arena slot 0, row i
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

  float weight(const Layer& L, int64_t j, int64_t q) const { return 0.02f * gauss(w_seed_ + uint64_t(j * L.k + q)); }

  // The layer a variant runs: the model's (n, K), or (n, K') for a native-K' variant.
  static Layer layer_of(const Layer& L, const VariantSpec& v) {
    if (v.kind != Kind::kNativeKPrime) return L;
    Layer l = L;
    l.k = ss::slide_k(ss::Pattern::from_n(v.pattern_n), L.k);
    return l;
  }

  void run_layer(const std::string& pname, const Model& model, const Layer& L, bool& stopped) {
    const int threads = resolve_threads(o_.threads);
    const auto prec = *linear_precision_from_name(pname);
    const int64_t n = L.n;
    w_seed_ = mix(o_.seed ^ uint64_t(n * 1000003 + L.k));
    bias_.assign(size_t(n), 0.0f);
    for (int64_t j = 0; j < n; ++j) bias_[size_t(j)] = 0.1f * gauss(~w_seed_ + uint64_t(j));
    const int64_t m_max = o_.ms.back();
    DevMem y(size_t(m_max * n) * 2);
    std::map<std::string, std::map<int64_t, Timing>> results;  // variant -> m -> timing
    // The dense layer stays alive while auto:P variants run: they are timed interleaved with it.
    const bool any_auto = std::any_of(o_.variants.begin(), o_.variants.end(),
                                      [](const VariantSpec& v) { return v.kind == Kind::kAuto; });
    std::optional<ss::SlideLinear> dense_keep, dense_twin;

    for (const VariantSpec& spec : o_.variants) {
      if (stopped || !tally_.context_lost.empty()) break;
      const Layer VL = layer_of(L, spec);
      std::optional<ss::SlideLinear> layer;
      std::optional<ss::Pattern> pat;  // the weight's pattern (pruning) on VL
      if (spec.kind == Kind::kSparse || spec.kind == Kind::kAuto) pat = ss::Pattern::from_n(spec.pattern_n);
      if (spec.kind == Kind::kNativeKPrime) pat = ss::Pattern::from_n(2);
      const ss::LinearPath path = spec.kind == Kind::kDense  ? ss::LinearPath::kDense
                                  : spec.kind == Kind::kAuto ? ss::LinearPath::kAuto
                                                             : ss::LinearPath::kSparse;
      try {
        const auto t_data = Clock::now();
        std::vector<float> w(size_t(VL.n * VL.k));
        parallel_for(VL.n, threads, [&](int64_t b, int64_t e) {
          for (int64_t j = b; j < e; ++j)
            for (int64_t q = 0; q < VL.k; ++q) w[size_t(j * VL.k + q)] = weight(VL, j, q);
        });
        const double data_ms = std::chrono::duration<double, std::milli>(Clock::now() - t_data).count();
        ss::SlideLinearOptions lo;
        lo.precision = prec;
        lo.search = o_.search;
        lo.search_iters = o_.search_iters;
        lo.plan_cache = cache_.get();
        lo.dense_below_m = spec.kind == Kind::kAuto ? -1 : 0;
        lo.backend = spec.sm90 ? ss::LinearBackend::kSm90 : ss::LinearBackend::kLibrary;
        lo.bind_gemm_graphs = o_.bind;
        if (pat) lo.pattern = *pat;
        else lo.dense_only = true;
        const auto t0 = Clock::now();
        layer.emplace(ss::SlideLinear::from_dense(w.data(), VL.n, VL.k, lo, L.bias ? bias_.data() : nullptr));
        if (spec.kind == Kind::kDense && any_auto)  // the control of the interleaved policy timing
          dense_twin.emplace(ss::SlideLinear::from_dense(w.data(), VL.n, VL.k, lo, L.bias ? bias_.data() : nullptr));
        const double build_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        json off = {{"type", "offline"},
                    {"suite", "layer"},
                    {"precision", pname},
                    {"model", model.name},
                    {"layer", L.name},
                    {"variant", spec.name},
                    {"n", n},
                    {"k", L.k},
                    {"k_layer", VL.k},
                    {"k_gemm", pat ? layer->k_sparse() : layer->k_dense()},
                    {"weights_ms", data_ms},
                    {"from_dense_ms", build_ms}};
        if (spec.kind == Kind::kAuto) {
          json probes = json::array();
          for (const auto& p : layer->crossover_probes())
            probes.push_back({{"m", p.m},
                              {"sparse_us", p.sparse_us},
                              {"dense_us", p.dense_us},
                              {"dense_over_sparse", p.dense_over_sparse},
                              {"pairs", p.pairs}});
          off["crossover_probes"] = probes;
          const int64_t db = layer->dense_below_m();
          off["dense_below_m"] = db == std::numeric_limits<int64_t>::max() ? json("never-sparse") : json(db);
        }
        sink_.write(off);
      } catch (const std::exception& e) {
        tally_.error(sink_, out_, where(pname, model.name, L.name, 0, spec.name), e);
        continue;
      }

      double last_unit_s = 0;
      int64_t last_m = 0;
      for (int64_t m : o_.ms) {
        const double expect = last_m > 0 ? 1.5 * last_unit_s * std::max(1.0, double(m) / double(last_m)) : 0;
        if (budget_.out_of_time(expect) || !tally_.context_lost.empty()) {
          stopped = true;
          break;
        }
        const auto t_unit = Clock::now();
        try {
          run_unit(pname, prec, model, L, VL, spec, pat, path, *layer, m, y, results,
                   spec.kind == Kind::kAuto && dense_keep ? &*dense_keep : nullptr,
                   spec.kind == Kind::kAuto && dense_twin ? &*dense_twin : nullptr);
          const bool host_here =
              m == o_.host_m || (m == o_.ms.front() && std::find(o_.ms.begin(), o_.ms.end(), o_.host_m) == o_.ms.end());
          if (o_.host && host_here && (spec.kind == Kind::kDense || spec.kind == Kind::kSparse))
            host_record(pname, model, L, spec.name, path, *layer, m, y);
        } catch (const std::exception& e) {
          tally_.error(sink_, out_, where(pname, model.name, L.name, m, spec.name), e);
        }
        last_unit_s = std::chrono::duration<double>(Clock::now() - t_unit).count();
        last_m = m;
      }
      if (spec.kind == Kind::kDense && any_auto) dense_keep = std::move(layer);
    }
    print_layer_table(pname, model, L, results);
    for (auto& [v, per_m] : results)
      for (auto& [m, t] : per_m) sums_[pname][model.name][v][m][L.name] = t;
  }

  // Per m: the dense layer's times, each variant's full-layer (and GEMM-only) speedup.
  void print_layer_table(const std::string& pname, const Model& model, const Layer& L,
                         std::map<std::string, std::map<int64_t, Timing>>& results) {
    out_ << fmt::format("\n{} {} {} (n={}, K={})  full-layer speedup vs dense [GEMM-only]\n", pname, model.name, L.name,
                        L.n, L.k);
    out_ << fmt::format("{:>6} | {:>10} {:>9} {:>9} {:>9} |", "m", "dense us", "quant", "gemm", "epi");
    for (const auto& v : o_.variants)
      if (v.kind != Kind::kDense) out_ << fmt::format(" {:>15}", v.name);
    out_ << "\n";
    for (int64_t m : o_.ms) {
      const auto dit = results["dense"].find(m);
      if (dit == results["dense"].end()) continue;
      const Timing& d = dit->second;
      out_ << fmt::format("{:>6} | {:>10.1f} {:>9.1f} {:>9.1f} {:>9.1f} |", m, d.full_us, d.quant_us, d.gemm_us,
                          d.epilogue_us);
      for (const auto& v : o_.variants) {
        if (v.kind == Kind::kDense) continue;
        const auto it = results[v.name].find(m);
        if (it == results[v.name].end()) out_ << fmt::format(" {:>15}", "-");
        else if (!it->second.stages) out_ << fmt::format(" {:>6.2f}x {:>7}", d.full_us / it->second.full_us, "");
        else
          out_ << fmt::format(" {:>6.2f}x [{:>4.2f}x]", d.full_us / it->second.full_us, d.gemm_us / it->second.gemm_us);
      }
      out_ << "\n";
    }
    out_ << std::flush;
  }

  void run_unit(const std::string& pname, ss::LinearPrecision prec, const Model& model, const Layer& L,
                const Layer& VL, const VariantSpec& spec, const std::optional<ss::Pattern>& pat, ss::LinearPath path,
                ss::SlideLinear& layer, int64_t m, DevMem& y, std::map<std::string, std::map<int64_t, Timing>>& results,
                ss::SlideLinear* dense_ref = nullptr, ss::SlideLinear* dense_twin = nullptr) {
    const int64_t n = L.n, k = L.k;
    Arena x = make_arena(m, VL.k);
    // First call: creates the bucket (plan, algorithm choice, buffers).
    const auto t0 = Clock::now();
    BENCH_CUDA(cudaMemsetAsync(y.get(), 0xFF, size_t(m * n) * 2, stream_));
    layer.forward(x.slot(0), m, y.get(), stream_, path);
    BENCH_CUDA(cudaStreamSynchronize(stream_));
    const double plan_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    const bool dense_path = path == ss::LinearPath::kDense || (path == ss::LinearPath::kAuto && layer.takes_dense_path(m));
    // The auto layer's dense path runs its pruned weight: the reference is pruned either way.
    const double rel_err = verify(VL, pat, y.get(), m, uint64_t(m) * 7919 + uint64_t(n));
    const bool ok = rel_err <= tolerance(prec);
    if (!ok) {
      ++tally_.verification_failures;
      out_ << fmt::format("  VERIFY FAILED {} {} {} m={} {}: relative error {:.3g} (tolerance {:.2g})\n", pname,
                          model.name, L.name, m, spec.name, rel_err, tolerance(prec))
           << std::flush;
    }
    Timing t;
    auto stage = [&](unsigned stages) {
      return time_calls([&](int64_t i) { layer.forward(x.slot(i), m, y.get(), stream_, path, stages); });
    };
    t.full_us = stage(ss::kStageAll);
    const int64_t k_gemm = dense_path ? layer.k_dense() : layer.k_sparse();
    const size_t acc_bytes = prec == ss::LinearPrecision::kBF16 ? 2 : 4;
    const size_t quant_bytes = size_t(m) * size_t(VL.k) * 2 + size_t(m) * size_t(k_gemm) * (acc_bytes == 2 ? 2 : 1) +
                               (acc_bytes == 2 ? 0 : size_t(m) * 4);
    const size_t epi_bytes = size_t(m) * size_t(n) * (acc_bytes + 2) + (acc_bytes == 2 ? 0 : size_t(m) * 4);
    if (spec.kind != Kind::kAuto) {
      t.stages = true;
      t.quant_us = stage(ss::kStageQuant);
      t.gemm_us = stage(ss::kStageGemm);
      t.epilogue_us = stage(ss::kStageEpilogue);
      t.copy_quant_us = copy_us(quant_bytes);
      t.copy_epilogue_us = copy_us(epi_bytes);
    }
    results[spec.name][m] = t;
    const auto dense = results["dense"].find(m);
    const bool have_dense = dense != results["dense"].end() && spec.kind != Kind::kDense;
    const double flops = 2.0 * double(m) * double(n) * double(k);
    json rec = {{"type", "layer"},
                {"suite", "layer"},
                {"precision", pname},
                {"model", model.name},
                {"layer", L.name},
                {"variant", spec.name},
                {"m", m},
                {"n", n},
                {"k", k},
                {"k_layer", VL.k},
                {"k_gemm", k_gemm},
                {"path", dense_path ? "dense" : "sparse"},
                {"bias", L.bias},
                {"bucket_rows", ss::SlideLinear::bucket_rows(m)},
                {"full_us", t.full_us},
                {"tflops", spec.kind == Kind::kNativeKPrime ? json(nullptr) : json(flops / (t.full_us * 1e-6) / 1e12)},
                {"speedup_vs_dense", have_dense ? json(dense->second.full_us / t.full_us) : json(nullptr)},
                {"plan_ms", plan_ms},
                {"x_slots", x.slots},
                {"verified", ok},
                {"verify_rel_err", rel_err}};
    if (t.stages) {
      rec["quant_us"] = t.quant_us;
      rec["gemm_us"] = t.gemm_us;
      rec["epilogue_us"] = t.epilogue_us;
      rec["stages_sum_us"] = t.quant_us + t.gemm_us + t.epilogue_us;
      rec["quant_bytes"] = quant_bytes;
      rec["epilogue_bytes"] = epi_bytes;
      rec["copy_quant_us"] = t.copy_quant_us;
      rec["copy_epilogue_us"] = t.copy_epilogue_us;
      rec["quant_gbps"] = double(quant_bytes) / (t.quant_us * 1e3);
      rec["epilogue_gbps"] = double(epi_bytes) / (t.epilogue_us * 1e3);
      rec["epilogue_fraction_of_copy"] = t.copy_epilogue_us / t.epilogue_us;
      rec["quant_fraction_of_copy"] = t.copy_quant_us / t.quant_us;
      rec["full_over_gemm_plus_quant_bound"] = t.full_us / (t.gemm_us + t.copy_quant_us);
      rec["gemm_tflops"] = spec.kind == Kind::kNativeKPrime ? json(nullptr) : json(flops / (t.gemm_us * 1e-6) / 1e12);
      rec["gemm_speedup_vs_dense"] =
          have_dense && dense->second.stages ? json(dense->second.gemm_us / t.gemm_us) : json(nullptr);
    }
    if (spec.kind == Kind::kNativeKPrime) {
      const std::string slid = ss::Pattern::from_n(spec.pattern_n).str();
      rec["native_kprime_of"] = slid;
      const auto s = results[slid].find(m);
      if (s != results[slid].end()) {
        rec["slide_over_native"] = s->second.full_us / t.full_us;
        if (s->second.stages) rec["slide_over_native_gemm"] = s->second.gemm_us / t.gemm_us;
      }
    }
    double paired = 0;
    if (spec.kind == Kind::kAuto && dense_ref != nullptr) {
      // The policy layer and the dense layer timed interleaved, call by call (the order swapped
      // every repetition, the L2 flushed before each call): slow drifts of clock and power hit
      // both alike, which two separate runs of --reps calls do not guarantee.
      // Estimated pair time: both calls plus both flushes (a flush reads flush_mib at ~3 TB/s).
      const double est_pair = 2 * (have_dense ? dense->second.full_us : t.full_us) + 2 * (o_.flush_mib / 3.0);
      const Paired p = paired_us(
          [&](int64_t i) { dense_ref->forward(x.slot(i), m, y.get(), stream_, ss::LinearPath::kDense); },
          [&](int64_t i) { layer.forward(x.slot(i), m, y.get(), stream_, path); }, est_pair);
      // Control: a second dense layer built from the same weight with the same options against the
      // dense layer, timed the same way: the harness's floor for two identical layers.
      if (dense_twin != nullptr) {
        const Paired c = paired_us(
            [&](int64_t i) { dense_ref->forward(x.slot(i), m, y.get(), stream_, ss::LinearPath::kDense); },
            [&](int64_t i) { dense_twin->forward(x.slot(i), m, y.get(), stream_, ss::LinearPath::kDense); },
            est_pair);
        rec["control_twin_ratio"] = c.ratio;
        rec["control_twin_ratio_of_medians"] = c.first_us / c.second_us;
        rec["control_twin_ratio_iqr"] = c.ratio_iqr;
      }
      paired = p.ratio;
      rec["paired_full_us"] = p.second_us;
      rec["paired_dense_us"] = p.first_us;
      rec["paired_speedup_vs_dense"] = paired;
      rec["paired_ratio_of_medians"] = p.first_us / p.second_us;
      rec["paired_ratio_iqr"] = p.ratio_iqr;
      rec["paired_reps"] = p.reps;
      results[spec.name][m].paired_us = p.second_us;
      results[spec.name][m].paired_dense_us = p.first_us;
    }
    if (spec.kind == Kind::kAuto && (have_dense || paired > 0)) {
      // The interleaved ratio where it was measured, else the two separate medians'.
      const double r = paired > 0 ? paired : dense->second.full_us / t.full_us;
      auto& mn = policy_min_[pname + " " + model.name + " " + spec.name];
      if (mn.is_null() || r < mn["speedup"].get<double>()) mn = {{"speedup", r}, {"layer", L.name}, {"m", m}};
    }
    sink_.write(rec);
    ++tally_.records;
  }

  void host_record(const std::string& pname, const Model& model, const Layer& L, const std::string& vname,
                   ss::LinearPath path, ss::SlideLinear& layer, int64_t m, DevMem& y) {
    Arena x = make_arena(m, L.k);
    auto fwd = [&] { layer.forward(x.slot(0), m, y.get(), stream_, path); };
    bool waited = false, graph_waited = false;
    const HostUs host = gated_host_us(fwd, o_.host_calls, o_.host_batch, stream_, waited);
    // The same per stage: kStageGemm alone is the backend's run() on the bucket's cached plan,
    // which launches the graph recorded on the bucket's buffers (GemmPlan::bind; library plans).
    HostUs stage[3];
    bool stage_waited = false;
    const unsigned stage_bits[3] = {ss::kStageQuant, ss::kStageGemm, ss::kStageEpilogue};
    for (int i = 0; i < 3; ++i) {
      bool w = false;
      stage[i] = gated_host_us([&] { layer.forward(x.slot(0), m, y.get(), stream_, path, stage_bits[i]); },
                               o_.host_calls, o_.host_batch, stream_, w);
      stage_waited = stage_waited || w;
    }
    // The library called directly on every forward (no recorded graph): its host path, and the
    // output, which must be the same bits.
    const size_t y_bytes = size_t(m * L.n) * 2;
    std::vector<uint8_t> direct_y(y_bytes), bound_y(y_bytes);
    layer.set_bind_gemm_graphs(false, stream_);
    bool direct_waited = false;
    const HostUs gemm_direct = gated_host_us(
        [&] { layer.forward(x.slot(0), m, y.get(), stream_, path, ss::kStageGemm); }, o_.host_calls, o_.host_batch,
        stream_, direct_waited);
    const HostUs host_direct = gated_host_us(fwd, o_.host_calls, o_.host_batch, stream_, direct_waited);
    BENCH_CUDA(cudaMemsetAsync(y.get(), 0xFF, y_bytes, stream_));
    fwd();
    BENCH_CUDA(cudaMemcpyAsync(direct_y.data(), y.get(), y_bytes, cudaMemcpyDeviceToHost, stream_));
    BENCH_CUDA(cudaStreamSynchronize(stream_));
    layer.set_bind_gemm_graphs(true, stream_);
    BENCH_CUDA(cudaMemsetAsync(y.get(), 0xFF, y_bytes, stream_));
    fwd();
    BENCH_CUDA(cudaMemcpyAsync(bound_y.data(), y.get(), y_bytes, cudaMemcpyDeviceToHost, stream_));
    BENCH_CUDA(cudaStreamSynchronize(stream_));
    const bool bound_identical = direct_y == bound_y;
    if (!bound_identical) {
      ++tally_.verification_failures;
      out_ << fmt::format("  VERIFY FAILED {} {} {} m={}: the bound (recorded-graph) GEMM differs from the direct call\n",
                          pname, L.name, vname, m);
    }

    const auto t0 = Clock::now();
    for (int i = 0; i < o_.host_calls; ++i) fwd();
    BENCH_CUDA(cudaStreamSynchronize(stream_));
    const double b2b_us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / o_.host_calls;
    std::vector<uint8_t> eager(y_bytes), replayed(y_bytes);
    BENCH_CUDA(cudaMemcpy(eager.data(), y.get(), y_bytes, cudaMemcpyDeviceToHost));

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
    BENCH_CUDA(cudaMemsetAsync(y.get(), 0xFF, y_bytes, stream_));
    replay();
    BENCH_CUDA(cudaStreamSynchronize(stream_));
    BENCH_CUDA(cudaMemcpy(replayed.data(), y.get(), y_bytes, cudaMemcpyDeviceToHost));
    const bool identical = eager == replayed;
    const HostUs graph_host = gated_host_us(replay, o_.host_calls, o_.host_batch, stream_, graph_waited);
    const double graph_gpu_us = time_events_us([&](int64_t) { replay(); }, o_.warmup, o_.reps, stream_);
    const double eager_gpu_us = time_events_us([&](int64_t) { fwd(); }, o_.warmup, o_.reps, stream_);
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    if (!identical) {
      ++tally_.verification_failures;
      out_ << fmt::format("  VERIFY FAILED {} {} {} m={}: graph replay output differs from the eager forward\n",
                          pname, L.name, vname, m);
    }
    sink_.write({{"type", "host"},
                 {"suite", "layer"},
                 {"precision", pname},
                 {"model", model.name},
                 {"layer", L.name},
                 {"variant", vname},
                 {"m", m},
                 {"calls", o_.host_calls},
                 {"batch", o_.host_batch},
                 {"host_us", host.median},
                 {"host_mean_us", host.mean},
                 {"host_waited", waited},
                 {"quant_host_us", stage[0].median},
                 {"gemm_run_host_us", stage[1].median},
                 {"epilogue_host_us", stage[2].median},
                 {"gemm_run_host_mean_us", stage[1].mean},
                 {"gemm_direct_host_us", gemm_direct.median},
                 {"gemm_direct_host_mean_us", gemm_direct.mean},
                 {"host_direct_us", host_direct.median},
                 {"direct_waited", direct_waited},
                 {"bound_identical", bound_identical},
                 {"stage_host_waited", stage_waited},
                 {"back_to_back_us", b2b_us},
                 {"graph_host_us", graph_host.median},
                 {"graph_host_waited", graph_waited},
                 {"graph_gpu_us", graph_gpu_us},
                 {"eager_gpu_us", eager_gpu_us},
                 {"graph_identical", identical}});
    out_ << fmt::format("  host {} {} {} m={} (median of batches): forward() {:.1f} us/call issued (quant {:.1f}, "
                        "GEMM run() {:.1f} [library called directly {:.1f}; forward {:.1f}], epilogue {:.1f}), {:.1f} "
                        "us/call back to back; graph launch {:.1f} us issued, replay {:.1f} us vs eager {:.1f} us "
                        "(GPU){}{}\n",
                        pname, L.name, vname, m, host.median, stage[0].median, stage[1].median, gemm_direct.median,
                        host_direct.median, stage[2].median, b2b_us, graph_host.median, graph_gpu_us, eager_gpu_us,
                        identical ? "" : ", REPLAY DIFFERS", bound_identical ? "" : ", BOUND GEMM DIFFERS")
         << std::flush;
  }

  // The four linears of a model summed, per m and variant, when every layer has the m.
  void model_records(const std::string& pname, const Model& model) {
    auto& per_v = sums_[pname][model.name];
    if (!o_.layers.empty() || per_v.empty()) return;
    out_ << fmt::format("\n{} {}: four linears summed, full-layer speedup vs dense [GEMM-only]\n", pname, model.name);
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
      // Best dense: the faster of the library dense layer and our sm90 dense layer (--sm90).
      const auto sdfull = sum("sm90:dense", &Timing::full_us);
      const double best_dense = sdfull ? std::min(*dfull, *sdfull) : *dfull;
      out_ << fmt::format("{:>6} | dense {:>9.1f} us{} |", m, *dfull,
                          sdfull ? fmt::format(" (sm90 dense {:.1f} us)", *sdfull) : std::string());
      for (const auto& spec : o_.variants) {
        const std::string& v = spec.name;
        const auto full = sum(v, &Timing::full_us);
        if (!full) continue;
        json rec = {{"type", "model"},
                    {"suite", "layer"},
                    {"precision", pname},
                    {"model", model.name},
                    {"variant", v},
                    {"m", m},
                    {"full_us", *full},
                    {"speedup_vs_dense", *dfull / *full},
                    {"best_dense_us", best_dense},
                    {"speedup_vs_best_dense", best_dense / *full}};
        if (spec.kind == Kind::kAuto) {
          const auto pa = sum(v, &Timing::paired_us), pd = sum(v, &Timing::paired_dense_us);
          if (pa && pd && *pa > 0 && *pd > 0) {
            rec["paired_full_us"] = *pa;
            rec["paired_dense_us"] = *pd;
            rec["paired_speedup_vs_dense"] = *pd / *pa;
          }
        }
        const bool stages = spec.kind != Kind::kAuto;
        std::optional<double> gemm;
        if (stages) {
          gemm = sum(v, &Timing::gemm_us);
          const auto quant = sum(v, &Timing::quant_us), epi = sum(v, &Timing::epilogue_us);
          const auto cq = sum(v, &Timing::copy_quant_us), ce = sum(v, &Timing::copy_epilogue_us);
          rec["gemm_us"] = *gemm;
          rec["quant_us"] = *quant;
          rec["epilogue_us"] = *epi;
          rec["copy_quant_us"] = *cq;
          rec["copy_epilogue_us"] = *ce;
          rec["gemm_speedup_vs_dense"] = *dgemm / *gemm;
          rec["full_over_gemm_plus_quant_bound"] = *full / (*gemm + *cq);
          rec["epilogue_fraction_of_copy"] = *ce / *epi;
        }
        if (spec.kind == Kind::kNativeKPrime) {
          const std::string slid = ss::Pattern::from_n(spec.pattern_n).str();
          const auto sfull = sum(slid, &Timing::full_us), sgemm = sum(slid, &Timing::gemm_us);
          rec["native_kprime_of"] = slid;
          if (sfull) rec["slide_over_native"] = *sfull / *full;
          if (sgemm) rec["slide_over_native_gemm"] = *sgemm / *gemm;
        }
        sink_.write(rec);
        if (spec.kind == Kind::kDense) continue;
        if (spec.sm90) out_ << fmt::format(" {} {:.2f}x (vs best dense {:.2f}x)", v, *dfull / *full, best_dense / *full);
        else if (gemm) out_ << fmt::format(" {} {:.2f}x [{:.2f}x]", v, *dfull / *full, *dgemm / *gemm);
        else out_ << fmt::format(" {} {:.2f}x", v, *dfull / *full);
      }
      out_ << "\n";
    }
    out_ << std::flush;
  }

  const BenchOptions& o_;
  const ss::BackendEnv& env_;
  Sink& sink_;
  std::ostream& out_;
  Budget budget_;
  Tally tally_;
  std::unique_ptr<ss::PlanCache> cache_;
  cudaStream_t stream_ = nullptr;
  DevMem flush_, flush_sink_, copy_src_, copy_dst_;
  std::map<size_t, double> copy_us_;
  uint64_t w_seed_ = 0;
  std::vector<float> bias_;
  std::map<int64_t, std::vector<uint16_t>> x_blocks_;
  // precision -> model -> variant -> m -> layer -> timing
  std::map<std::string, std::map<std::string, std::map<std::string, std::map<int64_t, std::map<std::string, Timing>>>>>
      sums_;
  json policy_min_ = json::object();  // "precision model auto:P" -> the smallest speedup_vs_dense seen
};

}  // namespace

json run_layer_suite(const BenchOptions& o, const ss::BackendEnv& env, Sink& sink, std::ostream& out) {
  LayerSuite suite(o, env, sink, out);
  return suite.run();
}

}  // namespace slidesparse::bench
