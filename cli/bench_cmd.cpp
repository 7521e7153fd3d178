// `slidesparse bench` / `slidesparse tune`: options -> bench::BenchOptions / TuneOptions ->
// bench::validate -> bench::run_bench / run_tune (CUDA builds). No logic of its own.
#include "bench_cmd.hpp"

#include <iostream>
#include <ostream>
#include <string>

#include "slidesparse/error.hpp"

namespace slidesparse::cli {

namespace {

constexpr int kExitMeasurementFailed = 1;  // as `verify`: ran, and found a failed check

#if !SLIDESPARSE_GPU_BENCH
[[noreturn]] void no_gpu_build(const char* command) {
  throw Error(Status::kUnsupported,
              std::string("this slidesparse was built without CUDA (SLIDESPARSE_ENABLE_CUDA=OFF), so `") + command +
                  "` cannot run: it needs a CUDA build with cuSPARSELt (bash scripts/fetch_cusparselt.sh; cmake "
                  "-DSLIDESPARSE_ENABLE_CUDA=ON) and a GPU (sm_80 or newer; e4m3 needs sm_89)");
}
#endif

}  // namespace

BenchCommands::BenchCommands(CLI::App& app, const std::function<void(CLI::App*)>& add_common) {
  bench_ = app.add_subcommand("bench", "GPU benchmarks: ours and every baseline in one harness (JSON Lines + a table)");
  auto* b = bench_;
  b->add_option("--suite", bo_.suite,
                "kernel (GEMM only), layer (the full SlideLinear layer and its stages), quant (the fused "
                "quant+lift kernel vs a device copy) or load (a model's linears prepared on the GPU vs the CPU, "
                "and per-step weight updates); required");
  b->add_option("--precisions", bo_.precisions,
                "i8, e4m3, bf16 (kernel also f16); default kernel i8,e4m3,bf16, layer/quant i8,e4m3")
      ->delimiter(',');
  std::string model_help = "Model shapes (BRIEF section 5; 'all' for every one; default kernel qwen2.5-7b,llama3-8b, "
                           "layer qwen2.5-7b):";
  for (const auto& m : bench::models()) model_help += " " + m.name;
  b->add_option("--models", bo_.models, model_help)->delimiter(',');
  b->add_option("--layers", bo_.layers, "Subset of qkv,o,gate_up,down (no four-linear sums then)")->delimiter(',');
  b->add_option("--ms", bo_.ms, "Token counts m (default 16,64,256,1024,4096,8192,16384; quant 4096,8192,16384)")
      ->delimiter(',');
  b->add_option("--ks", bo_.ks, "quant suite: row lengths k (default 3584,4096,18944)")->delimiter(',');
  b->add_option("--patterns", bo_.patterns,
                "Sparse patterns measured beside dense (default 2:4,4:6,6:8,8:10; quant 6:8,4:6); dense is always "
                "measured first")
      ->delimiter(',');
  b->add_flag("--native-kprime", bo_.native_kprime,
              "kernel/layer: add '2:4@P' per slid pattern P, a native 2:4 weight of width K'(P) through the same "
              "backend and plan cache (slide_over_native = t(P) / t(2:4@P))");
  b->add_flag("--sm90", bo_.sm90,
              "kernel/layer: add our sm90 backend (CUTLASS wgmma.sp kernels with the scale epilogue fused): "
              "kernel times every compiled configuration per variant, layer runs SlideLinear on it");
  b->add_option("--policy", bo_.policy,
                "layer: add 'auto:P' per pattern, SlideLinear with its measured dense/sparse crossover "
                "(dense_below_m = -1) on the automatic path")
      ->delimiter(',');
  b->add_option("--out", bo_.out, "JSON Lines output: an env record, one record per measurement, a summary");
  b->add_option("--git-sha", bo_.git_sha, "Commit recorded in the env record (default: the configure-time commit)");
  b->add_option("--plan-cache", bo_.plan_cache, "kernel/layer: algorithm choices (from `slidesparse tune`), loaded and saved");
  b->add_option("--max-seconds", bo_.max_seconds, "Stop cleanly between units after this many seconds (0: no limit)");
  b->add_option("--reps", bo_.reps, "Timed calls per measurement, median reported (default kernel 30, layer 20, quant 50)");
  b->add_option("--warmup", bo_.warmup, "Untimed calls first (default kernel 5, layer 3, quant 20)");
  b->add_flag("--no-search", no_search_, "kernel/layer: library-default algorithms instead of searched ones");
  b->add_option("--search-iters", bo_.search_iters, "Timed launches per candidate algorithm during search")
      ->capture_default_str();
  b->add_option("--dense-top-n", bo_.dense_top_n, "kernel: cuBLASLt heuristic candidates timed")->capture_default_str();
  b->add_option("--rotate-mib", bo_.rotate_mib, "X arena (and kernel-suite weight copies), MiB: keep above 2x L2")
      ->capture_default_str();
  b->add_option("--flush-mib", bo_.flush_mib, "layer: L2 flush before every timed call, MiB (0: none)")
      ->capture_default_str();
  b->add_option("--flush-mode", bo_.flush_mode,
                "layer: read = a read-only scrub of the flush buffer (the L2 left clean: nothing for the timed call to "
                "write back); write = a memset of it (the L2 left dirty)")
      ->capture_default_str();
  b->add_option("--paired-ms", bo_.paired_ms,
                "layer --policy: GPU time per interleaved policy/dense measurement; sets its pairs (at least --reps, "
                "at most 2000)")
      ->capture_default_str();
  b->add_option("--max-weight-copies", bo_.max_weight_copies, "kernel: weight copies (plans) rotated at most")
      ->capture_default_str();
  b->add_flag("--no-bind", no_bind_,
              "layer: call the GEMM library on every forward instead of launching the graph recorded on the bucket's "
              "buffers (SlideLinearOptions::bind_gemm_graphs = false)");
  b->add_flag("--no-host", no_host_, "layer: skip the host-overhead and graph-replay records");
  b->add_option("--host-m", bo_.host_m, "layer: m of the host-overhead measurement")->capture_default_str();
  b->add_option("--host-calls", bo_.host_calls, "layer: forward() calls timed on the host")->capture_default_str();
  b->add_option("--host-batch", bo_.host_batch, "layer: calls issued behind one stream gate")->capture_default_str();
  b->add_option("--verify-points", bo_.verify_points, "layer: sampled outputs checked against float64")
      ->capture_default_str();
  b->add_flag("--quick", bo_.quick, "quant: one shape (m 8192, k 4096)");
  b->add_option("--seed", bo_.seed, "Data seed")->capture_default_str();
  b->add_option("--cpu-layers", bo_.cpu_layers,
                "load: decoder layers built through the CPU path (the whole model is extrapolated from them)")
      ->capture_default_str();
  add_common(b);
  b->footer(
      "Timing: CUDA events around each call, warm-up, median of --reps; X rotated through an arena larger than L2 "
      "(layer: L2 flushed before every call); every result verified before it is timed (kernel: sparse vs dense "
      "cuBLASLt on the same pruned operands and X'.W'^T == X.W^T on the CPU; layer: sampled outputs vs float64; quant: "
      "sampled rows bit for bit vs the CPU core). Speedups are against the dense path of the same precision measured "
      "in the same run; TFLOP/s count dense FLOPs 2*m*n*K. Records (--out, JSON Lines): env (GPU, clocks, driver, "
      "CUDA, cuSPARSELt/cuBLASLt versions, git sha, options), then gemm/offline (kernel), layer/offline/host/model "
      "(layer) or quant records, error records, a summary. Render with scripts/plot_bench.py. Exit status: 0, 1 when "
      "a measurement failed its check or raised an error, 2 usage, 8 unsupported (no CUDA in this build, no GPU, no "
      "cuSPARSELt). docs/BENCHMARKING.md explains every number.");

  tune_ = app.add_subcommand("tune", "Fill the GEMM plan cache offline (algorithm search per shape, m bucket, precision)");
  auto* t = tune_;
  t->add_option("--cache", to_.cache, "Plan-cache JSON to create or update (entries of other GPUs/versions are kept)");
  t->add_option("--precisions", to_.precisions, "i8, e4m3, bf16, f16 (default i8,e4m3)")->delimiter(',');
  t->add_option("--models", to_.models, "Model shapes as for bench (default qwen2.5-7b; 'all')")->delimiter(',');
  t->add_option("--layers", to_.layers, "Subset of qkv,o,gate_up,down")->delimiter(',');
  t->add_option("--ms", to_.ms, "Token counts, rounded up to their power-of-two buckets (default 16,64,256,1024,4096,16384)")
      ->delimiter(',');
  t->add_option("--patterns", to_.patterns, "dense and/or sparse patterns (default dense,2:4,6:8)")->delimiter(',');
  t->add_option("--search-iters", to_.search_iters, "Timed launches per candidate algorithm")->capture_default_str();
  t->add_option("--dense-top-n", to_.dense_top_n, "cuBLASLt heuristic candidates timed")->capture_default_str();
  t->add_flag("--force", to_.force, "Search again where the cache already has a choice");
  t->add_option("--seed", to_.seed, "Weight seed")->capture_default_str();
  add_common(t);
  t->footer(
      "Each entry is the plan SlideLinear makes for a bucket: dense = cuBLASLt on K rounded up to 16, 2:4 = "
      "cuSPARSELt on K, a slid pattern = cuSPARSELt on K' = slide_k(pattern, K). Entries are keyed by (m bucket, n, k, "
      "precision, sparse) under the setting (GPU, SM, driver, CUDA runtime, cuSPARSELt, cuBLASLt versions). Use them "
      "with `slidesparse bench --plan-cache FILE` or SlideLinearOptions::plan_cache. Exit status: 0, 2 usage, 4 I/O, "
      "5 malformed cache file, 8 unsupported (no CUDA in this build, no GPU, no cuSPARSELt).");
}

bool BenchCommands::parsed() const { return bench_->parsed() || tune_->parsed(); }

int BenchCommands::run(nlohmann::json& r, bool json_out, int threads) {
  std::ostream null_out(nullptr);  // --json: the summary alone on stdout
  std::ostream& table = json_out ? null_out : std::cout;
  if (bench_->parsed()) {
    bo_.threads = threads;
    bo_.search = !no_search_;
    bo_.host = !no_host_;
    bo_.bind = !no_bind_;
    bench::validate(bo_);
#if SLIDESPARSE_GPU_BENCH
    r = bench::run_bench(bo_, table);
    return r["errors"].get<int>() + r["verification_failures"].get<int>() > 0 ? kExitMeasurementFailed : 0;
#else
    (void)table;
    no_gpu_build("bench");
#endif
  }
  to_.threads = threads;
  bench::validate(to_);
#if SLIDESPARSE_GPU_BENCH
  r = bench::run_tune(to_, table);
  return 0;
#else
  (void)r;
  no_gpu_build("tune");
#endif
}

}  // namespace slidesparse::cli
