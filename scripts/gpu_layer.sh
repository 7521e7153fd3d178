#!/usr/bin/env bash
# shellcheck disable=SC2317  # the functions below are run through step()
# SlideLinear on a GPU machine, from the repository root, with a build directory made elsewhere:
#   nvidia-smi; which cuSPARSELt / cuBLASLt the binaries load; test_gpu_epilogue and
#   test_gpu_slide_linear; `slidesparse bench --suite layer` into $OUT/layer_bench.jsonl within the
#   time left;
#   compute-sanitizer memcheck over both tests (SLIDESPARSE_GPU_TEST_QUICK=1) in the time reserved.
# No network, no installs, no compiler needed. Everything is logged to $OUT/gpu_layer_log.txt.
# Exit status 0 only when every step passed.
#
# Build the directory first (any machine with nvcc; cuSPARSELt comes from scripts/fetch_cusparselt.sh):
#   bash scripts/fetch_cusparselt.sh
#   cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLIDESPARSE_ENABLE_CUDA=ON \
#         -DCMAKE_CUDA_ARCHITECTURES=90
#   cmake --build build-gpu --target test_gpu_epilogue test_gpu_slide_linear slidesparse
#   BUILD_DIR=build-gpu bash scripts/gpu_bundle_libs.sh   # the CLI's libfmt/libre2 into build-gpu/rtlibs
#
# Environment:
#   BUILD_DIR        build directory (default build-gpu)
#   OUT              output directory (default out/gpu_layer)
#   BUDGET_SECONDS   wall-clock budget for the whole script (default 560)
#   MEMCHECK_SECONDS time kept for the two memcheck runs after the bench (default 120)
#   TEST_SECONDS     time limit per test executable (default 240)
#   SKIP_TESTS=1, SKIP_BENCH=1, SKIP_SANITIZER=1
#   BENCH_ARGS       extra arguments for `slidesparse bench --suite layer`, e.g. "--precisions i8 --ms 4096,16384"
#   GIT_SHA          commit recorded in the JSON (default: git rev-parse, else "unknown")
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 2
build=${BUILD_DIR:-build-gpu}
out=${OUT:-$root/out/gpu_layer}
budget=${BUDGET_SECONDS:-560}
memcheck_reserve=${MEMCHECK_SECONDS:-120}
# shellcheck source=scripts/gpu_common.sh
source "$root/scripts/gpu_common.sh"
start_log "$out/gpu_layer_log.txt"

sha=${GIT_SHA:-$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
echo "gpu_layer: $(date -u +%Y-%m-%dT%H:%M:%SZ) root=$root build=$build out=$out sha=$sha budget=${budget}s"

step "nvidia-smi" gpu_info

tests=("$build/test_gpu_epilogue" "$build/test_gpu_slide_linear")
for exe in "${tests[@]}" "$build/slidesparse"; do
  step "libraries $(basename "$exe")" libs "$exe"
done

if [ "${SKIP_TESTS:-0}" != 1 ]; then
  for t in "${tests[@]}"; do
    step "tests $(basename "$t")" run_gtest "$t"
  done
fi

if [ "${SKIP_BENCH:-0}" != 1 ]; then
  left=$((budget - SECONDS - memcheck_reserve - 15))
  [ "${SKIP_SANITIZER:-0}" = 1 ] && left=$((budget - SECONDS - 15))
  [ $left -lt 30 ] && left=30
  # shellcheck disable=SC2086
  step "bench --suite layer (max ${left}s)" "$build/slidesparse" bench --suite layer \
    --out "$out/layer_bench.jsonl" --git-sha "$sha" --max-seconds "$left" ${BENCH_ARGS:-}
fi

sanitizer=$(find_sanitizer)
run_memcheck() {  # run_memcheck EXE SECONDS
  SLIDESPARSE_GPU_TEST_QUICK=1 timeout "$2" "$sanitizer" --tool memcheck --error-exitcode 99 \
    --leak-check full "$1" --gtest_color=no --gtest_brief=1
}
if [ "${SKIP_SANITIZER:-0}" != 1 ]; then
  if [ -z "$sanitizer" ]; then
    summary+=("FAIL  compute-sanitizer not found")
    failed=1
  else
    for t in "${tests[@]}"; do
      left=$((budget - SECONDS - 5))
      if [ $left -lt 20 ]; then
        summary+=("FAIL  memcheck $(basename "$t") (no time left in the ${budget}s budget)")
        failed=1
        continue
      fi
      step "memcheck $(basename "$t") (max ${left}s)" run_memcheck "$t" "$left"
    done
  fi
fi

echo
echo "=== gpu_layer summary"
print_summary
[ "$failed" -eq 0 ] && echo "gpu_layer: ALL PASSED" || echo "gpu_layer: FAILED"
exit "$failed"
