// run_bench / run_tune entry points (bench.hpp): the environment record, the suite, the summary.
#include <chrono>
#include <ostream>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "backends/backend.hpp"
#include "bench.hpp"
#include "bench_common.hpp"
#include "suites.hpp"

#ifndef SLIDESPARSE_GIT_SHA
#define SLIDESPARSE_GIT_SHA ""
#endif

namespace slidesparse::bench {

namespace {

// --git-sha, else the commit the build was configured at (marked so: the tree may have moved on).
std::string git_sha(const std::string& given) {
  if (!given.empty()) return given;
  const std::string configured = SLIDESPARSE_GIT_SHA;
  return configured.empty() ? "unknown" : configured + " (configure time)";
}

}  // namespace

nlohmann::json run_bench(const BenchOptions& o, std::ostream& out) {
  bool sparse = false;
  for (const auto& v : o.variants) sparse |= v.kind != VariantSpec::Kind::kDense;
  if (o.suite != "quant" && sparse && !cusparselt_compiled())
    throw Error(Status::kUnsupported,
                "this build has no cuSPARSELt, so the sparse variants of the " + o.suite +
                    " suite cannot run (run scripts/fetch_cusparselt.sh and rebuild; --patterns dense measures the "
                    "dense baseline alone)");
  const BackendEnv env = backend_env();  // kUnsupported without a device
  Sink sink(o.out);
  const auto t0 = std::chrono::steady_clock::now();
  nlohmann::json e = env_record(env, o.suite, git_sha(o.git_sha));
  nlohmann::json opts = {{"precisions", o.precisions}, {"ms", o.ms},       {"reps", o.reps},
                         {"warmup", o.warmup},         {"seed", o.seed},   {"max_seconds", o.max_seconds}};
  std::vector<std::string> variants;
  for (const auto& v : o.variants) variants.push_back(v.name);
  opts["variants"] = variants;
  if (o.suite == "quant") {
    opts["ks"] = o.ks;
  } else {
    opts["models"] = o.models;
    opts["layers"] = o.layers;
    opts["search"] = o.search;
    opts["search_iters"] = o.search_iters;
    opts["rotate_mib"] = o.rotate_mib;
    opts["plan_cache"] = o.plan_cache;
  }
  if (o.suite == "kernel") {
    opts["dense_top_n"] = o.dense_top_n;
    opts["max_weight_copies"] = o.max_weight_copies;
  }
  if (o.suite == "layer") {
    opts["flush_mib"] = o.flush_mib;
    opts["flush_mode"] = o.flush_mode;
    opts["paired_ms"] = o.paired_ms;
    opts["bind_gemm_graphs"] = o.bind;
    opts["host"] = o.host;
    opts["host_m"] = o.host_m;
    opts["host_calls"] = o.host_calls;
    opts["host_batch"] = o.host_batch;
    opts["verify_points"] = o.verify_points;
  }
  if (o.suite == "load") opts["cpu_layers"] = o.cpu_layers;
  e["options"] = opts;
  sink.write(e);
  out << env_line(env) << "\n" << std::flush;

  nlohmann::json s = o.suite == "kernel" ? run_kernel_suite(o, env, sink, out)
                     : o.suite == "layer" ? run_layer_suite(o, env, sink, out)
                     : o.suite == "load"  ? run_load_suite(o, env, sink, out)
                                          : run_quant_suite(o, env, sink, out);
  s["type"] = "summary";
  s["suite"] = o.suite;
  s["elapsed_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  s["out"] = o.out;
  sink.write(s);
  out << fmt::format("\n{} records, {} errors, {} verification failures, {:.0f} s{}\n", s["records"].get<int>(),
                     s["errors"].get<int>(), s["verification_failures"].get<int>(), s["elapsed_s"].get<double>(),
                     s["completed"].get<bool>()               ? std::string()
                     : s["context_lost"].get<std::string>().empty() ? fmt::format(" (stopped at the {:.0f} s budget)", o.max_seconds)
                                                                      : std::string(" (stopped: the CUDA context was lost)"))
      << std::flush;
  return s;
}

}  // namespace slidesparse::bench
