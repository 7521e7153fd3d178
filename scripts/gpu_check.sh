#!/usr/bin/env bash
# shellcheck disable=SC2317  # the functions below are run through step()
# Tier-1 check on a GPU machine, from the repository root, with a build directory made elsewhere:
#   nvidia-smi; the gpu test executables; compute-sanitizer memcheck over them; the quant suite
#   (`slidesparse bench --suite quant`).
# No network, no package installs, no compiler needed. Everything is logged to $OUT/log.txt; the
# bench writes $OUT/quant_bench.jsonl. Exit status 0 only when every step passed.
#
# Build the directory first, on any machine with nvcc (checked with 13.0; no GPU needed):
#   cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLIDESPARSE_ENABLE_CUDA=ON \
#         -DCMAKE_CUDA_ARCHITECTURES=90
#   cmake --build build-gpu -j --target test_gpu_quant_lift slidesparse
#   BUILD_DIR=build-gpu bash scripts/gpu_bundle_libs.sh   # the CLI's libfmt/libre2 into build-gpu/rtlibs
# Environment: BUILD_DIR (default build-gpu), OUT (default out/gpu_check), BENCH_ARGS (extra
# arguments for `slidesparse bench --suite quant`, e.g. --quick), SKIP_SANITIZER=1, SKIP_BENCH=1.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 2
build=${BUILD_DIR:-build-gpu}
out=${OUT:-$root/out/gpu_check}
source "$root/scripts/gpu_common.sh"
start_log "$out/log.txt"
log=$out/log.txt

echo "gpu_check: $(date -u +%Y-%m-%dT%H:%M:%SZ) root=$root build=$build out=$out"
[ -f "$root/.git/HEAD" ] && echo "git: $(git -C "$root" rev-parse HEAD 2>/dev/null)"

step "nvidia-smi" gpu_info

tests=()
for t in "$build"/test_gpu_*; do
  [ -x "$t" ] && tests+=("$t")
done
if [ ${#tests[@]} -eq 0 ]; then
  echo "no $build/test_gpu_* executables: build them first (see the header of this script)"
  summary+=("FAIL  gpu tests (none found in $build)")
  failed=1
fi

for t in "${tests[@]}"; do
  step "tests $(basename "$t")" run_gtest "$t"
done

sanitizer=$(find_sanitizer)
run_memcheck() {
  # The reduced shape set (SLIDESPARSE_GPU_TEST_QUICK) keeps memcheck's slowdown affordable;
  # every test and code path still runs (aligned/packed layouts, long rows, every pattern).
  SLIDESPARSE_GPU_TEST_QUICK=1 "$sanitizer" --tool memcheck --error-exitcode 99 \
    --leak-check full "$1" --gtest_color=no --gtest_brief=1
}
if [ "${SKIP_SANITIZER:-0}" != 1 ]; then
  if [ -z "$sanitizer" ]; then
    summary+=("FAIL  compute-sanitizer not found")
    failed=1
  else
    for t in "${tests[@]}"; do
      step "memcheck $(basename "$t")" run_memcheck "$t"
    done
  fi
fi

if [ "${SKIP_BENCH:-0}" != 1 ]; then
  # shellcheck disable=SC2086
  step "bench --suite quant" "$build/slidesparse" bench --suite quant --out "$out/quant_bench.jsonl" ${BENCH_ARGS:-}
fi

# Instruction mix of the kernels as built (16-byte global loads/stores on the main path).
objdump_bin=$(command -v cuobjdump || true)
[ -z "$objdump_bin" ] && [ -x /usr/local/cuda/bin/cuobjdump ] && objdump_bin=/usr/local/cuda/bin/cuobjdump
if [ -n "$objdump_bin" ] && [ -f "$build/libslidesparse_kernels.a" ]; then
  echo
  echo "=== SASS instruction mix of libslidesparse_kernels.a (all kernels together)"
  "$objdump_bin" -sass "$build/libslidesparse_kernels.a" 2>/dev/null |
    grep -oE '(LDG|STG|LDS|STS|LDL|STL)[.A-Z0-9_]*' | sort | uniq -c
fi

echo
echo "=== gpu_check summary"
print_summary
[ $failed -eq 0 ] && echo "gpu_check: ALL PASSED" || echo "gpu_check: FAILED"
exit $failed
