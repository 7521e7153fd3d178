// `slidesparse bench --suite load`: how long a whole model's linears take to become SlideLinear
// layers ready to run, with the weight preparation on the GPU (from_dense_device) against the CPU
// path (from_dense), and what an in-place weight update costs per step (update_weight_device).
//
// Per precision x pattern, for the --models' linears (Qwen2.5-7B: 28 decoder layers x qkv, o,
// gate_up, down; --layers selects a subset):
//   weights   one random bf16 W[n, k] per shape (a bell-shaped sum of uniforms, made on the host and
//             uploaded once, before any timing); every decoder layer's linear of that shape is built
//             from it independently (the work does not depend on the values).
//   device    for every decoder layer and shape: from_dense_device(W, bf16) (prune with nm_mask,
//             quantize, slide on the GPU; allocations of the layer's buffers) and warmup(--ms[0],
//             sparse path, plans only): the buckets up to that m (default 16: one bucket, one GEMM
//             plan, one cuSPARSELt compression; larger m make their bucket on first use, as
//             SlideLinear always does), with algorithm search (--search) through one plan cache
//             per precision x pattern, so each shape searches once; host wall clock from the
//             first call to the last synchronize: load_s.
//   cpu       the same for --cpu-layers decoder layers through from_dense (f32 host copy of the same
//             W: prune, quantize, slide on the host threads, upload), the f32 copies made beforehand
//             and not timed; extrapolated to all decoder layers (cpu_load_s_extrapolated, marked so).
//   verify    per shape, before the update timings: the device-built and the CPU-built layer give
//             the same Y bytes for m = --ms[0] rows (same plan cache: same algorithm).
//   update    per shape, on a device-built layer holding its sparse bucket, CUDA events, warm-up,
//             median of --reps: update_weight_device(check = false) (nm_mask + quantize + slide +
//             compression into the bucket's plan), the same on a layer without buckets (weight
//             preparation alone), update_weight_codes_device(check = false) (slide + compression),
//             and update_weight_device(check = true) on the host clock (scan + synchronize + the
//             rest); forward_us: one full sparse forward of the layer at m = 4096 for scale. An
//             update recompresses into every sparse bucket and copies into every dense one, so
//             its cost grows with the buckets a layer holds (one here).
// Records: "load" (one per precision x pattern x model), "update" (per shape), "error".
#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "backends/backend.hpp"
#include "backends/plan_cache.hpp"
#include "kernels/nm_mask.cuh"
#include "kernels/weight_prep.cuh"
#include "slidesparse/error.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/slide_linear.hpp"
#include "slidesparse/types.hpp"

#include "bench.hpp"
#include "bench_common.hpp"
#include "suites.hpp"

namespace slidesparse::bench {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int64_t kForwardM = 4096;  // update records: one forward at this many rows, for scale

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

LinearPrecision precision_of(const std::string& p) {
  return p == "i8" ? LinearPrecision::kI8 : p == "e4m3" ? LinearPrecision::kE4M3 : LinearPrecision::kBF16;
}

// W[n, k] bf16 on the host: a bell-shaped sum of three uniforms, about N(0, 0.02^2) like a trained
// projection, distinct per shape through the seed.
std::vector<uint16_t> make_weight(int64_t n, int64_t k, uint64_t seed, int threads) {
  std::vector<uint16_t> w(size_t(n * k));
  parallel_for(n, threads, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0 * k; i < r1 * k; ++i) {
      const uint64_t x = mix(seed + uint64_t(i));
      const float u = float(x & 0xfffff) + float((x >> 20) & 0xfffff) + float((x >> 40) & 0xfffff);
      w[size_t(i)] = f32_to_bf16((u * (1.0f / 1048576.0f) - 1.5f) * 0.035f);
    }
  });
  return w;
}

struct Shape {
  const Layer* layer;
  DevMem w;                    // bf16 W[n, k]
  std::vector<float> w_host;   // f32 copy for the CPU path
  std::vector<float> bias;     // qkv only
  DevMem codes, scales;        // pruned, quantized W (update_weight_codes_device)
};

class LoadSuite {
 public:
  LoadSuite(const BenchOptions& o, const BackendEnv& env, Sink& sink, std::ostream& out)
      : o_(o), env_(env), sink_(sink), out_(out), threads_(resolve_threads(o.threads)) {}

  json run() {
    BENCH_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    const int64_t m = o_.ms.front();
    for (const auto& model_name : o_.models) {
      const Model& model = *find_model(model_name);
      std::vector<std::unique_ptr<Shape>> shapes;
      for (const Layer& L : model.layers) {
        if (!o_.layers.empty() && std::find(o_.layers.begin(), o_.layers.end(), L.name) == o_.layers.end()) continue;
        auto s = std::make_unique<Shape>();
        s->layer = &L;
        const std::vector<uint16_t> h = make_weight(L.n, L.k, o_.seed + uint64_t(L.n * 131 + L.k), threads_);
        s->w = DevMem(h.size() * 2);
        BENCH_CUDA(cudaMemcpy(s->w.get(), h.data(), h.size() * 2, cudaMemcpyHostToDevice));
        s->w_host.resize(h.size());
        parallel_for(int64_t(h.size()), threads_, [&](int64_t a, int64_t b) {
          for (int64_t i = a; i < b; ++i) s->w_host[size_t(i)] = bf16_to_f32(h[size_t(i)]);
        });
        if (L.bias) {
          s->bias.resize(size_t(L.n));
          for (int64_t j = 0; j < L.n; ++j) s->bias[size_t(j)] = float(int(j % 17) - 8) * 0.01f;
        }
        shapes.push_back(std::move(s));
      }
      out_ << fmt::format("\n{}: {} decoder layers x {} linears, load bucket m = {}\n", model.name,
                          model.decoder_layers, shapes.size(), m);
      out_ << fmt::format("{:>6} {:>5} {:>10} {:>10} {:>10} {:>12} {:>8}\n", "prec", "pat", "device_s", "prep_s",
                          "bucket_s", "cpu_s(extr)", "speedup");
      for (const auto& prec : o_.precisions)
        for (const auto& v : o_.variants) {
          if (v.kind != VariantSpec::Kind::kSparse) continue;
          try {
            measure(model, shapes, prec, Pattern::from_n(v.pattern_n), m);
          } catch (const Error& e) {
            ++errors_;
            sink_.write({{"type", "error"}, {"suite", "load"}, {"model", model.name}, {"precision", prec},
                         {"pattern", v.name}, {"message", e.what()}});
            out_ << "  error: " << e.what() << "\n";
            if (cudaDeviceSynchronize() != cudaSuccess) {
              context_lost_ = e.what();
              break;
            }
          }
        }
      if (!context_lost_.empty()) break;
    }
    cudaStreamDestroy(stream_);
    return {{"records", records_},
            {"errors", errors_},
            {"verification_failures", verify_failures_},
            {"completed", context_lost_.empty()},
            {"context_lost", context_lost_}};
  }

 private:
  SlideLinearOptions options(const std::string& prec, Pattern p, PlanCache* cache) const {
    SlideLinearOptions so;
    so.pattern = p;
    so.precision = precision_of(prec);
    so.dense_below_m = 0;  // the sparse path at every m: the load makes its bucket
    so.search = o_.search;
    so.search_iters = o_.search_iters;
    so.plan_cache = cache;
    so.backend = LinearBackend::kLibrary;
    return so;
  }

  void measure(const Model& model, std::vector<std::unique_ptr<Shape>>& shapes, const std::string& prec, Pattern p,
               int64_t m) {
    PlanCache cache(env_.key());
    const SlideLinearOptions so = options(prec, p, &cache);
    const int layers = model.decoder_layers;

    // Device path: every decoder layer, every shape.
    std::vector<SlideLinear> built;
    built.reserve(size_t(layers) * shapes.size());
    double prep_s = 0, bucket_s = 0;
    BENCH_CUDA(cudaDeviceSynchronize());
    const auto t0 = Clock::now();
    for (int l = 0; l < layers; ++l)
      for (auto& s : shapes) {
        const auto ta = Clock::now();
        built.push_back(SlideLinear::from_dense_device(s->w.get(), DType::kBF16, s->layer->n, s->layer->k, so,
                                                       s->bias.empty() ? nullptr : s->bias.data(), stream_));
        const auto tb = Clock::now();
        built.back().warmup(m, stream_, LinearPath::kSparse, /*with_buffers=*/false);
        prep_s += std::chrono::duration<double>(tb - ta).count();
        bucket_s += seconds_since(tb);
      }
    BENCH_CUDA(cudaStreamSynchronize(stream_));
    const double device_s = seconds_since(t0);
    size_t free_b = 0, total_b = 0;
    BENCH_CUDA(cudaMemGetInfo(&free_b, &total_b));

    // CPU path: --cpu-layers decoder layers, then extrapolated. The first device-built layer of each
    // shape stays for the verification and the update timings; the rest are freed first.
    std::vector<SlideLinear> keep;
    for (size_t i = 0; i < shapes.size(); ++i) keep.push_back(std::move(built[i]));
    built.clear();
    std::vector<SlideLinear> cpu_built;
    const auto t1 = Clock::now();
    for (int l = 0; l < o_.cpu_layers; ++l)
      for (auto& s : shapes) {
        SlideLinear h = SlideLinear::from_dense(s->w_host.data(), s->layer->n, s->layer->k, so,
                                                s->bias.empty() ? nullptr : s->bias.data());
        h.warmup(m, stream_, LinearPath::kSparse, false);
        if (l == 0) cpu_built.push_back(std::move(h));
      }
    BENCH_CUDA(cudaStreamSynchronize(stream_));
    const double cpu_s = seconds_since(t1);
    const double cpu_extrapolated = cpu_s * double(layers) / double(o_.cpu_layers);

    // Verification: device-built == CPU-built, Y bytes at m rows.
    bool verified = true;
    std::string why;
    for (size_t i = 0; i < shapes.size(); ++i) {
      const Layer& L = *shapes[i]->layer;
      DevMem x(size_t(m * L.k) * 2), ya(size_t(m * L.n) * 2), yb(size_t(m * L.n) * 2);
      detail_fill_x(x.get(), m, L.k);
      keep[i].forward(x.get(), m, ya.get(), stream_, LinearPath::kSparse);
      cpu_built[i].forward(x.get(), m, yb.get(), stream_, LinearPath::kSparse);
      BENCH_CUDA(cudaStreamSynchronize(stream_));
      std::vector<uint8_t> a(ya.bytes()), b(yb.bytes());
      BENCH_CUDA(cudaMemcpy(a.data(), ya.get(), a.size(), cudaMemcpyDeviceToHost));
      BENCH_CUDA(cudaMemcpy(b.data(), yb.get(), b.size(), cudaMemcpyDeviceToHost));
      if (a != b) {
        verified = false;
        why += std::string(why.empty() ? "" : "; ") + L.name + ": device-built != CPU-built";
      }
      cpu_built[i].release_buckets();
    }
    cpu_built.clear();
    verify_failures_ += !verified;

    json rec = {{"type", "load"},
                {"suite", "load"},
                {"model", model.name},
                {"precision", prec},
                {"pattern", p.str()},
                {"decoder_layers", layers},
                {"linears", layers * int(shapes.size())},
                {"load_m", m},
                {"search", o_.search},
                {"load_s", device_s},
                {"prep_s", prep_s},
                {"bucket_s", bucket_s},
                {"cpu_layers_measured", o_.cpu_layers},
                {"cpu_load_s_measured", cpu_s},
                {"cpu_load_s_extrapolated", cpu_extrapolated},
                {"speedup_vs_cpu", cpu_extrapolated / device_s},
                {"device_free_bytes_after_load", free_b},
                {"verified", verified},
                {"verify_detail", why},
                {"host_threads", threads_}};
    for (auto& s : shapes) rec["shapes"].push_back({{"name", s->layer->name}, {"n", s->layer->n}, {"k", s->layer->k}});
    sink_.write(rec);
    ++records_;
    out_ << fmt::format("{:>6} {:>5} {:>10.2f} {:>10.2f} {:>10.2f} {:>12.2f} {:>7.1f}x{}\n", prec, p.str(), device_s,
                        prep_s, bucket_s, cpu_extrapolated, cpu_extrapolated / device_s,
                        verified ? "" : "  VERIFY FAILED: " + why);

    // Per-step update costs, per shape.
    for (size_t i = 0; i < shapes.size(); ++i) update_records(*shapes[i], keep[i], so, prec, p);
  }

  void detail_fill_x(void* x, int64_t m, int64_t k) {
    std::vector<uint16_t> h(size_t(std::min<int64_t>(m, 64) * k));
    for (size_t i = 0; i < h.size(); ++i) {
      const uint64_t v = mix(o_.seed * 7 + i);
      h[i] = f32_to_bf16(float(int64_t(v % 2001) - 1000) * 1e-3f);
    }
    const size_t row_bytes = size_t(k) * 2;
    for (int64_t r = 0; r < m; r += 64) {
      const int64_t rows = std::min<int64_t>(64, m - r);
      BENCH_CUDA(cudaMemcpy(static_cast<uint8_t*>(x) + size_t(r) * row_bytes, h.data(), size_t(rows) * row_bytes,
                            cudaMemcpyHostToDevice));
    }
  }

  void update_records(Shape& s, SlideLinear& layer, const SlideLinearOptions& so, const std::string& prec,
                      Pattern p) {
    const Layer& L = *s.layer;
    const int reps = o_.reps, warm = o_.warmup;
    // Codes + scales of the same weight for update_weight_codes_device: nm_mask + quantize_weight.
    const bool quantized = so.precision != LinearPrecision::kBF16;
    const DType q_dtype = so.precision == LinearPrecision::kI8 ? DType::kI8
                          : so.precision == LinearPrecision::kE4M3 ? DType::kE4M3 : DType::kBF16;
    DevMem mask(size_t(L.n * L.k)), codes(size_t(L.n * L.k) * dtype_size(q_dtype)), scales(size_t(L.n) * 4);
    NmMaskParams mp;
    mp.w = s.w.get();
    mp.dtype = DType::kBF16;
    mp.rows = L.n;
    mp.k = L.k;
    mp.ldw = L.k;
    mp.keep = p.keep();
    mp.group = p.group();
    mp.mask = mask.get();
    mp.ldm = L.k;
    BENCH_CUDA(nm_mask(mp, stream_));
    QuantizeWeightParams qp;
    qp.w = s.w.get();
    qp.in_dtype = DType::kBF16;
    qp.n = L.n;
    qp.k = L.k;
    qp.ldw = L.k;
    qp.keep = mask.get();
    qp.ldm = L.k;
    qp.q = codes.get();
    qp.out_dtype = q_dtype;
    qp.ldq = L.k;
    qp.scale = quantized ? reinterpret_cast<float*>(scales.get()) : nullptr;
    BENCH_CUDA(quantize_weight(qp, stream_));
    BENCH_CUDA(cudaStreamSynchronize(stream_));
    const float* sc = quantized ? reinterpret_cast<const float*>(scales.get()) : nullptr;

    // The layer holds one bucket here (the load's): every update compresses once.
    const double update_us = time_events_us(
        [&](int64_t) { layer.update_weight_device(s.w.get(), DType::kBF16, stream_, false); }, warm, reps, stream_);
    const double codes_us = time_events_us(
        [&](int64_t) { layer.update_weight_codes_device(codes.get(), sc, stream_, false); }, warm, reps, stream_);
    std::vector<double> host;
    for (int r = 0; r < warm + reps; ++r) {
      const auto t = Clock::now();
      layer.update_weight_device(s.w.get(), DType::kBF16, stream_, true);
      if (r >= warm) host.push_back(seconds_since(t) * 1e6);
    }
    layer.check_weight_updates(stream_);
    layer.release_buckets();  // now without buckets: the weight preparation alone
    const double prep_us = time_events_us(
        [&](int64_t) { layer.update_weight_device(s.w.get(), DType::kBF16, stream_, false); }, warm, reps, stream_);
    layer.check_weight_updates(stream_);
    // For scale: one forward at kForwardM rows (its bucket is made first, outside the timing).
    DevMem x(size_t(kForwardM * L.k) * 2), y(size_t(kForwardM * L.n) * 2);
    detail_fill_x(x.get(), kForwardM, L.k);
    const double forward_us = time_events_us(
        [&](int64_t) { layer.forward(x.get(), kForwardM, y.get(), stream_, LinearPath::kSparse); }, warm, reps,
        stream_);
    layer.release_buckets();

    json rec = {{"type", "update"},   {"suite", "load"},       {"precision", prec},      {"pattern", p.str()},
                {"layer", L.name},    {"n", L.n},              {"k", L.k},               {"k_sparse", layer.k_sparse()},
                {"update_us", update_us},
                {"prep_only_us", prep_us},
                {"compress_us_derived", update_us - prep_us},
                {"codes_update_us", codes_us},
                {"checked_update_host_us", median(host)},
                {"forward_us", forward_us},
                {"forward_m", kForwardM},
                {"reps", reps}};
    sink_.write(rec);
    ++records_;
    out_ << fmt::format("    update {:>7} n={:<6} k={:<6} update {:>8.1f} us (prep {:>7.1f}, codes {:>7.1f}, checked "
                        "{:>8.1f} host)  forward(m={}) {:>8.1f} us\n",
                        L.name, L.n, L.k, update_us, prep_us, codes_us, median(host), kForwardM, forward_us);
  }

  const BenchOptions& o_;
  const BackendEnv& env_;
  Sink& sink_;
  std::ostream& out_;
  int threads_;
  cudaStream_t stream_ = nullptr;
  int records_ = 0, errors_ = 0, verify_failures_ = 0;
  std::string context_lost_;
};

}  // namespace

json run_load_suite(const BenchOptions& o, const BackendEnv& env, Sink& sink, std::ostream& out) {
  return LoadSuite(o, env, sink, out).run();
}

}  // namespace slidesparse::bench
