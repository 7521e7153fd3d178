#!/usr/bin/env bash
# GEMM backends on a GPU machine, from the repository root, with a build directory made elsewhere:
#   nvidia-smi; which cuSPARSELt / cuBLASLt the binaries load; the tier-1 GPU tests
#   (test_gpu_backends first, then the other test_gpu_* executables); `slidesparse bench --suite
#   kernel` into $OUT/gemm_bench.jsonl; the plots and speedup table (scripts/plot_bench.py).
# No network, no installs, no compiler needed. Everything is logged to $OUT/gpu_gemm_log.txt.
# Exit status 0 only when every step passed.
#
# Build the directory first (any machine with nvcc; cuSPARSELt comes from scripts/fetch_cusparselt.sh):
#   bash scripts/fetch_cusparselt.sh
#   cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLIDESPARSE_ENABLE_CUDA=ON \
#         -DCMAKE_CUDA_ARCHITECTURES=90
#   cmake --build build-gpu -j --target test_gpu_backends slidesparse
#   BUILD_DIR=build-gpu bash scripts/gpu_bundle_libs.sh   # the CLI's libfmt/libre2 into build-gpu/rtlibs
# The binaries find libcusparseLt.so.0 through their RUNPATH (PyTorch's virtualenv on the GPU
# machines, else .deps/cusparselt/lib) and libcublasLt.so.13 in /usr/local/cuda/lib64.
#
# Environment:
#   BUILD_DIR      build directory (default build-gpu)
#   OUT            output directory (default out/gpu_gemm)
#   BUDGET_SECONDS wall-clock budget for the whole script (default 560: the device machine allows
#                  600 s per command); the bench gets what the earlier steps left, minus 30 s
#   SKIP_TESTS=1, SKIP_BENCH=1, SKIP_PLOT=1
#   TESTS          "all" (default: test_gpu_backends, then every other test_gpu_*) or "backends"
#   BENCH_ARGS     extra arguments for `slidesparse bench --suite kernel`, e.g.
#                  "--precisions i8 --models qwen2.5-7b --ms 4096,8192,16384"
#   GIT_SHA        commit recorded in the JSON (default: git rev-parse, else "unknown")
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build=${BUILD_DIR:-build-gpu}
out=${OUT:-$root/out/gpu_gemm}
budget=${BUDGET_SECONDS:-560}
source "$root/scripts/gpu_common.sh"
start_log "$out/gpu_gemm_log.txt"
log=$out/gpu_gemm_log.txt

sha=${GIT_SHA:-$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
echo "gpu_gemm: $(date -u +%Y-%m-%dT%H:%M:%SZ) root=$root build=$build out=$out sha=$sha budget=${budget}s"

step "nvidia-smi" gpu_info

for exe in "$build/test_gpu_backends" "$build/slidesparse"; do
  step "libraries $(basename "$exe")" libs "$exe"
done

if [ "${SKIP_TESTS:-0}" != 1 ]; then
  tests=("$build/test_gpu_backends")
  if [ "${TESTS:-all}" = all ]; then
    for t in "$build"/test_gpu_*; do
      [ -x "$t" ] && [ "$t" != "$build/test_gpu_backends" ] && tests+=("$t")
    done
  fi
  for t in "${tests[@]}"; do
    if [ -x "$t" ]; then
      step "tests $(basename "$t")" run_gtest "$t"
    else
      summary+=("FAIL  tests $(basename "$t") (not built in $build)")
      failed=1
    fi
  done
fi

if [ "${SKIP_BENCH:-0}" != 1 ]; then
  left=$((budget - SECONDS - 30))
  [ $left -lt 60 ] && left=60
  # shellcheck disable=SC2086
  step "bench --suite kernel (max ${left}s)" "$build/slidesparse" bench --suite kernel \
    --out "$out/gemm_bench.jsonl" --git-sha "$sha" --max-seconds "$left" \
    --plan-cache "$out/plan_cache.json" ${BENCH_ARGS:-}
fi

if [ "${SKIP_PLOT:-0}" != 1 ] && [ -s "$out/gemm_bench.jsonl" ]; then
  py=$(command -v python3 || true)
  if [ -n "$py" ]; then
    step "plot" "$py" "$root/scripts/plot_bench.py" "$out/gemm_bench.jsonl" --out-dir "$out"
  else
    summary+=("FAIL  plot (no python3)")
    failed=1
  fi
fi

echo
echo "=== gpu_gemm summary"
print_summary
[ $failed -eq 0 ] && echo "gpu_gemm: ALL PASSED" || echo "gpu_gemm: FAILED"
exit $failed
