// `slidesparse bench` and `slidesparse tune`: one harness for ours and every baseline.
//
// This header is plain C++ (no CUDA type): the CLI includes it in every build and validates the
// options with it (validate() is header-only, so a build without CUDA still rejects bad options
// with the usage exit code before it reports "unsupported"). run_bench() and run_tune() exist only
// in CUDA builds (library slidesparse_bench, cmake/bench.cmake); docs/BENCHMARKING.md describes
// every suite and record.
//
// Suites (GEMM convention Y[m,n] = X[m,k] . W[n,k]^T, K the model's k, K' = slide_k(pattern, K)):
//   kernel  GEMM only: cuBLASLt dense on K (best of the top heuristics, timed), cuSPARSELt native
//           2:4 on K, slid patterns on K' (searched algorithms); with --native-kprime also a native
//           2:4 weight of width K' per slid pattern ("2:4@6:8"), through the same plan cache.
//   layer   the full SlideLinear layer (quant+lift -> GEMM -> scale epilogue) and each stage alone;
//           dense = SlideLinear dense_only; --native-kprime adds a 2:4 layer of width K' (quant-only
//           on K' instead of quant+lift K -> K'); --policy P adds "auto:P": the layer with its
//           measured crossover (dense_below_m = -1) on LinearPath::kAuto.
//   quant   the fused per-token quant (+lift) kernel against a device-to-device copy of the same
//           bytes measured in the same run.
// Every speedup is against the dense path of the same precision measured in the same run.
#pragma once

#include <algorithm>
#include <cstdint>
#include <iosfwd>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "shapes.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/pattern.hpp"

namespace slidesparse::bench {

// One measured configuration of the kernel and layer suites.
struct VariantSpec {
  enum class Kind {
    kDense,         // the dense baseline on K
    kSparse,        // a pattern: native 2:4 on K, or slid on K'
    kNativeKPrime,  // a native 2:4 weight of width K' = slide_k(pattern, K)
    kAuto,          // layer suite: SlideLinear with its measured crossover, LinearPath::kAuto
  };
  Kind kind = Kind::kDense;
  std::string name;   // "dense", "6:8", "2:4@6:8", "auto:6:8"
  int pattern_n = 0;  // the pattern (kNativeKPrime: whose K' is used); 0 for dense
  bool sm90 = false;  // layer suite --sm90: SlideLinear on LinearBackend::kSm90 ("sm90:" + name)
};

struct BenchOptions {
  std::string suite;                    // kernel | layer | quant (required)
  std::vector<std::string> precisions;  // empty: the suite's default
  std::vector<std::string> models;      // "all" for every model of shapes.hpp
  std::vector<std::string> layers;      // subset of qkv, o, gate_up, down (empty: all four)
  std::vector<int64_t> ms;              // token counts
  std::vector<int64_t> ks;              // quant suite: row lengths
  std::vector<std::string> patterns;    // sparse patterns; dense is always measured first
  bool native_kprime = false;
  // kernel/layer: also our sm90 backend (CUTLASS, fused epilogue). kernel: every compiled sm90
  // configuration per variant ("sm90:<kernel>" rows) and the best ("sm90"); layer: SlideLinear with
  // backend sm90 beside the library one.
  bool sm90 = false;
  std::vector<std::string> policy;      // layer suite: patterns measured as "auto:P"
  std::string out;                      // JSON Lines file ("" : none)
  std::string git_sha;                  // recorded in the env record
  std::string plan_cache;               // algorithm choices, loaded and saved (kernel, layer)
  double max_seconds = 0;               // stop cleanly between units after this (0: no limit)
  int reps = 0;                         // 0: suite default
  int warmup = -1;                      // -1: suite default
  bool search = true;
  int search_iters = 5;
  int dense_top_n = 8;
  double rotate_mib = 128;  // X arena (and kernel-suite weight copies): > 2x the 50 MB L2
  double flush_mib = 128;   // layer suite: L2 flush before every timed call
  std::string flush_mode = "read";  // layer: "read" (scrub, clean L2) or "write" (memset, dirty L2)
  bool bind = true;         // layer: SlideLinearOptions::bind_gemm_graphs (--no-bind: library calls)
  double paired_ms = 250;   // layer --policy: GPU time per interleaved measurement (sets its pairs)
  int max_weight_copies = 8;
  bool host = true;  // layer suite: host-overhead records
  int64_t host_m = 16;
  int host_calls = 1000;
  int host_batch = 100;
  int verify_points = 64;
  bool quick = false;  // quant suite: one shape
  uint64_t seed = 1;
  int threads = 0;
  bool table = true;  // human table on the given stream
  int cpu_layers = 1;  // load suite: decoder layers built through the CPU path (then extrapolated)

  std::vector<VariantSpec> variants;  // filled by validate()
};

struct TuneOptions {
  std::string cache;                    // plan-cache JSON to fill (created or updated)
  std::vector<std::string> precisions;  // default i8, e4m3
  std::vector<std::string> models;      // default qwen2.5-7b ("all")
  std::vector<std::string> layers;
  std::vector<int64_t> ms;              // rounded up to their buckets (powers of two in [16, 65536])
  std::vector<std::string> patterns;    // "dense" and/or sparse patterns
  int search_iters = 10;
  int dense_top_n = 8;
  bool force = false;  // search again even where the cache has a choice
  uint64_t seed = 1;
  int threads = 0;
  bool table = true;
};

namespace detail {

[[noreturn]] inline void bad(const std::string& msg) { throw Error(Status::kInvalidArgument, msg); }

inline std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

inline void check_names(const std::vector<std::string>& given, const std::vector<std::string>& allowed,
                        const std::string& option) {
  for (const auto& g : given)
    if (std::find(allowed.begin(), allowed.end(), g) == allowed.end())
      bad(option + " '" + g + "' is not one of: " + join(allowed));
}

inline void resolve_models(std::vector<std::string>& m, const std::vector<std::string>& dflt) {
  if (m.empty()) m = dflt;
  if (m.size() == 1 && m[0] == "all") {
    m.clear();
    for (const auto& x : models()) m.push_back(x.name);
  }
  std::vector<std::string> known;
  for (const auto& x : models()) known.push_back(x.name);
  known.push_back("all");
  check_names(m, known, "--models");
  std::vector<std::string> unique;
  for (const auto& x : m)
    if (std::find(unique.begin(), unique.end(), x) == unique.end()) unique.push_back(x);
  m = unique;
}

inline void check_ms(std::vector<int64_t>& ms, const char* option, int64_t max) {
  for (int64_t m : ms)
    if (m < 1 || m > max) bad(std::string(option) + " values must be in [1, " + std::to_string(max) + "], got " + std::to_string(m));
  std::sort(ms.begin(), ms.end());
  ms.erase(std::unique(ms.begin(), ms.end()), ms.end());
}

inline Pattern parse_pattern(const std::string& s, const char* option) {
  try {
    return Pattern::parse(s);
  } catch (const Error& e) {
    bad(std::string(option) + ": " + e.message());
  }
}

}  // namespace detail

inline const std::vector<std::string>& bench_suites() {
  static const std::vector<std::string> s = {"kernel", "layer", "quant", "load"};
  return s;
}

// Fills the suite's defaults and o.variants; throws Error(kInvalidArgument) naming the option.
inline void validate(BenchOptions& o) {
  using detail::bad;
  if (o.suite.empty()) bad("--suite is required: one of " + detail::join(bench_suites()));
  detail::check_names({o.suite}, bench_suites(), "--suite");
  const bool quant = o.suite == "quant", layer = o.suite == "layer", kernel = o.suite == "kernel";
  const bool load = o.suite == "load";
  if (o.precisions.empty())
    o.precisions = kernel || load ? std::vector<std::string>{"i8", "e4m3", "bf16"} : std::vector<std::string>{"i8", "e4m3"};
  detail::check_names(o.precisions,
                      kernel  ? std::vector<std::string>{"i8", "e4m3", "bf16", "f16"}
                      : layer || load ? std::vector<std::string>{"i8", "e4m3", "bf16"}
                              : std::vector<std::string>{"i8", "e4m3"},
                      "--precisions (suite " + o.suite + ")");
  if (o.cpu_layers != 1 && !load) bad("--cpu-layers applies to the load suite only");
  if (load) {
    // One bucket per layer at load: --ms takes one value.
    if (o.native_kprime || !o.policy.empty() || o.sm90 || o.quick || !o.ks.empty())
      bad("--native-kprime/--policy/--sm90/--quick/--ks do not apply to the load suite");
    if (o.ms.size() > 1) bad("--ms takes one value for the load suite: the rows of the bucket each layer gets at load");
    if (o.ms.empty()) o.ms = {16};
    detail::resolve_models(o.models, {"qwen2.5-7b"});
    detail::check_names(o.layers, {"qkv", "o", "gate_up", "down"}, "--layers");
    if (o.patterns.empty()) o.patterns = {"6:8"};
    if (o.cpu_layers < 1) bad("--cpu-layers must be >= 1");
    for (const auto& m : o.models)
      if (o.cpu_layers > find_model(m)->decoder_layers)
        bad("--cpu-layers " + std::to_string(o.cpu_layers) + " exceeds the " +
            std::to_string(find_model(m)->decoder_layers) + " decoder layers of " + m);
    for (const auto& s : o.patterns)
      if (s == "dense") bad("--patterns: the load suite measures sparse layers (a pattern such as 6:8)");
  } else if (quant) {
    if (!o.models.empty() || !o.layers.empty()) bad("--models/--layers do not apply to the quant suite (use --ms, --ks)");
    if (o.native_kprime || !o.policy.empty()) bad("--native-kprime/--policy apply to the kernel and layer suites");
    if (o.sm90) bad("--sm90 applies to the kernel and layer suites");
    if (!o.plan_cache.empty()) bad("--plan-cache does not apply to the quant suite");
    if (o.ms.empty()) o.ms = o.quick ? std::vector<int64_t>{8192} : std::vector<int64_t>{4096, 8192, 16384};
    if (o.ks.empty()) o.ks = o.quick ? std::vector<int64_t>{4096} : std::vector<int64_t>{3584, 4096, 18944};
    detail::check_ms(o.ks, "--ks", int64_t(1) << 20);
    if (o.patterns.empty()) o.patterns = {"6:8", "4:6"};
  } else {
    if (!o.ks.empty()) bad("--ks applies to the quant suite only (the kernel and layer suites take K from --models)");
    if (o.quick) bad("--quick applies to the quant suite only");
    detail::resolve_models(o.models, kernel ? std::vector<std::string>{"qwen2.5-7b", "llama3-8b"}
                                            : std::vector<std::string>{"qwen2.5-7b"});
    detail::check_names(o.layers, {"qkv", "o", "gate_up", "down"}, "--layers");
    if (o.ms.empty()) o.ms = {16, 64, 256, 1024, 4096, 8192, 16384};
    if (o.patterns.empty()) o.patterns = {"2:4", "4:6", "6:8", "8:10"};
    if (!o.policy.empty() && !layer) bad("--policy applies to the layer suite only");
  }
  detail::check_ms(o.ms, "--ms", int64_t(1) << 20);
  if (o.reps == 0) o.reps = kernel ? 30 : layer || load ? 20 : 50;
  if (o.warmup < 0) o.warmup = kernel ? 5 : layer || load ? 3 : 20;
  if (o.reps < 5 || o.reps > 100000) bad("--reps must be in [5, 100000] (the median of the timed calls is reported)");
  if (o.warmup > 100000) bad("--warmup must be in [0, 100000]");
  if (o.search_iters < 1 || o.search_iters > 1000) bad("--search-iters must be in [1, 1000]");
  if (o.dense_top_n < 1 || o.dense_top_n > 64) bad("--dense-top-n must be in [1, 64]");
  if (!(o.rotate_mib >= 1 && o.rotate_mib <= 65536)) bad("--rotate-mib must be in [1, 65536]");
  if (!(o.flush_mib >= 0 && o.flush_mib <= 65536)) bad("--flush-mib must be in [0, 65536]");
  if (o.flush_mode != "read" && o.flush_mode != "write") bad("--flush-mode must be read or write");
  if (!(o.paired_ms >= 0 && o.paired_ms <= 60000)) bad("--paired-ms must be in [0, 60000]");
  if (o.max_weight_copies < 1 || o.max_weight_copies > 64) bad("--max-weight-copies must be in [1, 64]");
  if (!(o.max_seconds >= 0)) bad("--max-seconds must be >= 0 (0: no limit)");
  if (o.host_calls < 1 || o.host_batch < 1 || o.host_batch > 1000) bad("--host-calls >= 1, --host-batch in [1, 1000]");
  if (o.host_m < 1) bad("--host-m must be >= 1");
  if (o.verify_points < 1) bad("--verify-points must be >= 1");

  // Variants: dense first (every speedup needs it), then the patterns, the native-K' rows, the policy rows.
  o.variants.clear();
  o.variants.push_back({VariantSpec::Kind::kDense, "dense", 0});
  std::set<int> seen;
  std::vector<int> slid;
  for (const auto& s : o.patterns) {
    if (s == "dense") continue;
    const Pattern p = detail::parse_pattern(s, "--patterns");
    if (!seen.insert(p.n()).second) continue;
    o.variants.push_back({VariantSpec::Kind::kSparse, p.str(), p.n()});
    if (p.n() > 2) slid.push_back(p.n());
  }
  if (quant) return;  // the quant suite measures the dense quantization and each pattern's lift
  if (o.native_kprime) {
    if (slid.empty()) bad("--native-kprime needs a slid pattern in --patterns (4:6, 6:8, ...)");
    for (int n : slid) o.variants.push_back({VariantSpec::Kind::kNativeKPrime, "2:4@" + Pattern::from_n(n).str(), n});
  }
  if (o.sm90 && layer) {
    // Our sm90 backend beside the libraries: dense (best dense = the faster of the two) and every pattern.
    const size_t base = o.variants.size();
    for (size_t i = 0; i < base; ++i) {
      const VariantSpec v = o.variants[i];
      if (v.kind != VariantSpec::Kind::kDense && v.kind != VariantSpec::Kind::kSparse) continue;
      o.variants.push_back({v.kind, "sm90:" + v.name, v.pattern_n, true});
    }
  }
  std::set<int> policy_seen;
  for (const auto& s : o.policy) {
    const Pattern p = detail::parse_pattern(s, "--policy");
    if (policy_seen.insert(p.n()).second)
      o.variants.push_back({VariantSpec::Kind::kAuto, "auto:" + p.str(), p.n()});
  }
}

inline void validate(TuneOptions& o) {
  using detail::bad;
  if (o.cache.empty()) bad("--cache FILE is required: the plan-cache JSON to create or update");
  if (o.precisions.empty()) o.precisions = {"i8", "e4m3"};
  detail::check_names(o.precisions, {"i8", "e4m3", "bf16", "f16"}, "--precisions");
  detail::resolve_models(o.models, {"qwen2.5-7b"});
  detail::check_names(o.layers, {"qkv", "o", "gate_up", "down"}, "--layers");
  if (o.ms.empty()) o.ms = {16, 64, 256, 1024, 4096, 16384};
  detail::check_ms(o.ms, "--ms", 65536);
  if (o.patterns.empty()) o.patterns = {"dense", "2:4", "6:8"};
  std::vector<std::string> norm;
  for (const auto& s : o.patterns) {
    const std::string t = s == "dense" ? s : detail::parse_pattern(s, "--patterns").str();
    if (std::find(norm.begin(), norm.end(), t) == norm.end()) norm.push_back(t);
  }
  o.patterns = norm;
  if (o.search_iters < 1 || o.search_iters > 1000) bad("--search-iters must be in [1, 1000]");
  if (o.dense_top_n < 1 || o.dense_top_n > 64) bad("--dense-top-n must be in [1, 64]");
}

// CUDA builds only (slidesparse_bench). Both throw Error: kUnsupported (no device, no cuSPARSELt for
// sparse variants), kIoError (output files), kInvalidArgument; the table goes to `table_out`.
// The returned summary holds "errors" and "verification_failures" counts.
nlohmann::json run_bench(const BenchOptions& o, std::ostream& table_out);
nlohmann::json run_tune(const TuneOptions& o, std::ostream& table_out);

}  // namespace slidesparse::bench
