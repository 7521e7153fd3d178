#!/usr/bin/env bash
# shellcheck disable=SC2317  # the functions below are run through step()
# The GPU Llama forward on a GPU machine, from the repository root, with binaries built elsewhere:
#   nvidia-smi; which cuSPARSELt / cuBLASLt test_gpu_llama loads; test_gpu_llama (the full-size
#   random SmolLM2-shaped model included: GPU vs CPU at T = 512 and tokens/s per variant, JSON Lines
#   in $OUT/llama_bench.jsonl); optionally test_gpu_slide_linear (SlideLinear, which LlamaGpuModel
#   builds on); compute-sanitizer memcheck over test_gpu_llama with SLIDESPARSE_GPU_TEST_QUICK=1.
# The real-SmolLM2 test runs only where its model directory exists (SLIDESPARSE_SMOL_HF, default
# /tmp/smol-hf); elsewhere it is filtered out rather than counted as a skip. Everything is logged to
# $OUT/gpu_llama_log.txt. Exit status 0 only when every step passed.
#
# Build first (any machine with nvcc; cuSPARSELt from scripts/fetch_cusparselt.sh):
#   cmake -S . -B build-gllm -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLIDESPARSE_ENABLE_CUDA=ON \
#         -DCMAKE_CUDA_ARCHITECTURES=90
#   cmake --build build-gllm --target test_gpu_llama test_gpu_slide_linear
# Environment: BUILD_DIR (default build-gllm), OUT (default out/gpu_llama), TEST_SECONDS (limit per
# test executable, default 240), MEMCHECK_SECONDS (default 150), WITH_SLIDE_LINEAR=1,
# SKIP_SANITIZER=1.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 2
build=${BUILD_DIR:-build-gllm}
out=${OUT:-$root/out/gpu_llama}
test_seconds=${TEST_SECONDS:-240}
# shellcheck source=scripts/gpu_common.sh
source "$root/scripts/gpu_common.sh"
start_log "$out/gpu_llama_log.txt"
echo "gpu_llama: $(date -u +%Y-%m-%dT%H:%M:%SZ) root=$root build=$build out=$out"

step "nvidia-smi" gpu_info
step "libraries test_gpu_llama" libs "$build/test_gpu_llama"

filter='*'
[ -f "${SLIDESPARSE_SMOL_HF:-/tmp/smol-hf}/config.json" ] || filter='-GpuLlamaSmolLM2.*'
rm -f "$out/llama_bench.jsonl"
# run_tests EXE FILTER: like run_gtest (a skipped test on a GPU machine fails), with a gtest filter
# and the time limit.
run_tests() {
  local txt
  txt=$(mktemp)
  SLIDESPARSE_BENCH_OUT="$out/llama_bench.jsonl" timeout "$test_seconds" "$1" --gtest_color=no \
    --gtest_filter="$2" 2>&1 | tee "$txt"
  local rc=${PIPESTATUS[0]}
  if grep -q '^\[  SKIPPED \]' "$txt"; then
    echo "$1 skipped tests on a GPU machine"
    rc=1
  fi
  rm -f "$txt"
  return "$rc"
}
step "tests test_gpu_llama" run_tests "$build/test_gpu_llama" "$filter"
if [ "${WITH_SLIDE_LINEAR:-0}" = 1 ]; then
  step "tests test_gpu_slide_linear" run_tests "$build/test_gpu_slide_linear" '*'
fi

sanitizer=$(find_sanitizer)
if [ "${SKIP_SANITIZER:-0}" != 1 ]; then
  if [ -z "$sanitizer" ]; then
    summary+=("FAIL  compute-sanitizer not found")
    failed=1
  else
    step "memcheck test_gpu_llama (quick)" env SLIDESPARSE_GPU_TEST_QUICK=1 timeout "${MEMCHECK_SECONDS:-150}" \
      "$sanitizer" --tool memcheck --error-exitcode 99 --leak-check full "$build/test_gpu_llama" \
      --gtest_color=no --gtest_brief=1 --gtest_filter='-GpuLlamaSmol*'
  fi
fi

echo
echo "=== gpu_llama summary"
print_summary
[ $failed -eq 0 ] && echo "gpu_llama: ALL PASSED" || echo "gpu_llama: FAILED"
exit $failed
