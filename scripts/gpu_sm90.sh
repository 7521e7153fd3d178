#!/usr/bin/env bash
# The sm90 backend on a GPU machine (H100/H200), from the repository root, with a build directory
# made elsewhere (see scripts/gpu_gemm.sh for building and carrying it):
#   nvidia-smi; tier-1 tests test_gpu_sm90 (the compressor against its CPU model, the exact and
#   differential GEMM oracles for every compiled kernel) and optionally others; compute-sanitizer
#   `slidesparse bench --suite kernel --sm90` and `--suite layer --sm90` with the given arguments;
#   compute-sanitizer memcheck over test_gpu_sm90 in quick mode; optionally one Nsight Compute profile.
# SLIDESPARSE_TEST_LINEAR_BACKEND=sm90 in the environment runs test_gpu_slide_linear on the sm90 backend.
# Everything is logged to $OUT/gpu_sm90_log.txt. Exit status 0 only when every step passed.
# Environment:
#   BUILD_DIR (default build-gpu), OUT (default out/gpu_sm90), GIT_SHA
#   TESTS        space-separated test executables (default "test_gpu_sm90"; "none" to skip)
#   SANITIZE=1   compute-sanitizer memcheck over test_gpu_sm90 (SLIDESPARSE_GPU_TEST_QUICK=1), after
#                the benchmarks; SANITIZE_FILTER: a gtest filter for it
#   KERNEL_ARGS  arguments of the kernel suite (empty: skipped), e.g. "--precisions e4m3 --ms 8192"
#   LAYER_ARGS   arguments of the layer suite (empty: skipped)
#   NCU_ARGS     arguments of one profiled `slidesparse bench` call under ncu (empty: skipped)
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build=${BUILD_DIR:-build-gpu}
out=${OUT:-$root/out/gpu_sm90}
source "$root/scripts/gpu_common.sh"
start_log "$out/gpu_sm90_log.txt"
sha=${GIT_SHA:-$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
echo "gpu_sm90: $(date -u +%Y-%m-%dT%H:%M:%SZ) build=$build out=$out sha=$sha"

step "nvidia-smi" gpu_info

for t in ${TESTS:-test_gpu_sm90}; do
  [ "$t" = none ] && break
  step "tests $t" run_gtest "$build/$t"
done

if [ -n "${KERNEL_ARGS:-}" ]; then
  # shellcheck disable=SC2086
  step "bench kernel --sm90" "$build/slidesparse" bench --suite kernel --sm90 --out "$out/kernel_sm90.jsonl" \
    --git-sha "$sha" $KERNEL_ARGS
fi
if [ -n "${LAYER_ARGS:-}" ]; then
  # shellcheck disable=SC2086
  step "bench layer --sm90" "$build/slidesparse" bench --suite layer --sm90 --out "$out/layer_sm90.jsonl" \
    --git-sha "$sha" $LAYER_ARGS
fi
if [ "${SANITIZE:-0}" = 1 ]; then
  san=$(find_sanitizer)
  if [ -n "$san" ]; then
    step "memcheck test_gpu_sm90 (quick)" env SLIDESPARSE_GPU_TEST_QUICK=1 "$san" --tool memcheck \
      --error-exitcode 1 "$build/test_gpu_sm90" --gtest_color=no ${SANITIZE_FILTER:+--gtest_filter=$SANITIZE_FILTER}
  else
    summary+=("FAIL  memcheck (no compute-sanitizer)")
    failed=1
  fi
fi

if [ -n "${NCU_ARGS:-}" ]; then
  ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
  # shellcheck disable=SC2086
  step "ncu" "$ncu" $NCU_ARGS
fi

echo
echo "=== gpu_sm90 summary"
print_summary
[ $failed -eq 0 ] && echo "gpu_sm90: ALL PASSED" || echo "gpu_sm90: FAILED"
exit $failed
