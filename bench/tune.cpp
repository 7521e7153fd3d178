// `slidesparse tune`: fills the plan cache offline. For every precision x model layer x pattern x
// m bucket it makes the GEMM plan SlideLinear would make for that bucket (dense: cuBLASLt on K
// rounded up to 16; 2:4: cuSPARSELt on K; a slid pattern: cuSPARSELt on K') over a random weight
// of the right structure, lets prepare_weight search (cuSPARSELt: algorithm id x split-k grid;
// cuBLASLt: the top heuristics timed) and stores the choice under the setting's key (GPU, driver,
// CUDA runtime, cuSPARSELt, cuBLASLt). A choice already in the file is kept unless --force.
// Afterwards `slidesparse bench --plan-cache FILE` and SlideLinearOptions::plan_cache skip the
// search for every tuned bucket.
#include <algorithm>
#include <chrono>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "backends/backend.hpp"
#include "backends/plan_cache.hpp"
#include "bench.hpp"
#include "bench_common.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/slide.hpp"

namespace slidesparse::bench {

namespace {

constexpr int64_t kDenseKAlign = 16;  // SlideLinear's k_dense = K rounded up to 16

// W[n, k] of the precision with random nonzero values; with `two_four` every aligned group of 4
// along k keeps exactly 2 (positions drawn per group), as cuSPARSELt's prune check requires.
std::vector<uint8_t> random_weight(GemmPrecision p, int64_t n, int64_t k, bool two_four, uint64_t seed, int threads) {
  std::vector<float> w(size_t(n * k));
  parallel_for(n, threads, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r)
      for (int64_t c = 0; c < k; ++c) {
        float v = random_value(p, mix(seed + uint64_t(r * k + c)));
        if (two_four) {
          // 6 ways to keep 2 of 4: the group's draw picks one.
          static constexpr int kKeep[6][2] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}};
          const int* keep = kKeep[mix(seed ^ uint64_t(r * k + c / 4 * 4) ^ 0xABCDull) % 6];
          const int lane = int(c % 4);
          if (lane != keep[0] && lane != keep[1]) v = 0.0f;
        }
        w[size_t(r * k + c)] = v;
      }
  });
  return encode_all(p, w, threads);
}

}  // namespace

nlohmann::json run_tune(const TuneOptions& o, std::ostream& out) {
  bool sparse = false;
  for (const auto& p : o.patterns) sparse |= p != "dense";
  if (sparse && !cusparselt_compiled())
    throw Error(Status::kUnsupported,
                "this build has no cuSPARSELt, so sparse plans cannot be tuned (run scripts/fetch_cusparselt.sh and "
                "rebuild; --patterns dense tunes the dense plans alone)");
  const BackendEnv env = backend_env();
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<PlanCache> cache = PlanCache::load(o.cache, env.key());
  const size_t before = cache->size();
  const int threads = resolve_threads(o.threads);
  cudaStream_t stream = nullptr;
  BENCH_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  struct StreamGuard {
    cudaStream_t s;
    ~StreamGuard() { cudaStreamDestroy(s); }
  } guard{stream};

  out << env_line(env) << "\n";
  out << fmt::format("{:<5} {:<12} {:<8} {:<6} {:>6} {:>6} {:>6} | {:<8} {:>10} {:>10}  {}\n", "prec", "model", "layer",
                     "var", "m", "n", "k", "source", "time us", "search ms", "plan");
  nlohmann::json entries = nlohmann::json::array();
  int searched = 0, kept = 0;
  for (const auto& pname : o.precisions) {
    const GemmPrecision prec = *gemm_precision_from_name(pname);
    for (const auto& mname : o.models) {
      const Model* model = find_model(mname);
      for (const Layer& L : model->layers) {
        if (!o.layers.empty() && std::find(o.layers.begin(), o.layers.end(), L.name) == o.layers.end()) continue;
        for (const auto& var : o.patterns) {
          const bool dense = var == "dense";
          const int64_t k_gemm = dense ? (L.k + kDenseKAlign - 1) / kDenseKAlign * kDenseKAlign
                                       : slide_k(Pattern::parse(var), L.k);
          const auto w = random_weight(prec, L.n, k_gemm, !dense, mix(o.seed ^ uint64_t(L.n * 1000003 + k_gemm)),
                                       threads);
          DevMem w_dev(w.size());
          BENCH_CUDA(cudaMemcpy(w_dev.get(), w.data(), w.size(), cudaMemcpyHostToDevice));
          std::vector<int64_t> buckets;
          for (int64_t m : o.ms) {
            const int64_t b = plan_m_bucket(m);
            if (std::find(buckets.begin(), buckets.end(), b) == buckets.end()) buckets.push_back(b);
          }
          for (int64_t mb : buckets) {
            const GemmProblem p{mb, L.n, k_gemm, prec, !dense};
            const PlanKey key = PlanKey::of(p, false);
            PlanCache fresh(env.key());
            PlanOptions po;
            po.search = true;
            po.search_iters = o.search_iters;
            po.dense_top_n = o.dense_top_n;
            po.cache = o.force ? &fresh : cache.get();
            auto plan = make_gemm_plan(p, po);
            plan->prepare_weight(w_dev.get(), stream);
            if (o.force)
              if (auto e = fresh.find(key)) cache->put(key, *e);
            const PlanStats& s = plan->stats();
            (s.from_cache ? kept : searched) += 1;
            entries.push_back({{"precision", pname},
                               {"model", model->name},
                               {"layer", L.name},
                               {"variant", var},
                               {"key", key.str()},
                               {"source", s.source},
                               {"time_us", s.measured_us},
                               {"search_ms", s.search_ms},
                               {"plan", plan->describe()}});
            out << fmt::format("{:<5} {:<12} {:<8} {:<6} {:>6} {:>6} {:>6} | {:<8} {:>10.1f} {:>10.1f}  {}\n", pname,
                               model->name, L.name, var, mb, L.n, k_gemm, s.source, s.measured_us, s.search_ms,
                               plan->describe())
                << std::flush;
          }
          cache->save(o.cache);  // after every weight: an interrupted run keeps what it measured
        }
      }
    }
  }
  cache->save(o.cache);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out << fmt::format("{}: {} entries for this setting ({} before), {} searched, {} already cached, {:.1f} s\n", o.cache,
                     cache->size(), before, searched, kept, secs);
  return {{"cache", o.cache},   {"setting", env.key()}, {"entries", cache->size()}, {"entries_before", before},
          {"searched", searched}, {"kept", kept},       {"seconds", secs},          {"plans", entries}};
}

}  // namespace slidesparse::bench
