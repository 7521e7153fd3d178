#!/usr/bin/env bash
# shellcheck disable=SC2317  # the functions below are run through step()
# Everything issue 3 checks on a GPU machine, in one budgeted call, from the repository root with a
# build directory made elsewhere: nvidia-smi; which libraries the binaries load; every tier-1 test
# executable ($BUILD_DIR/test_gpu_*); compute-sanitizer memcheck over each (reduced shapes,
# SLIDESPARSE_GPU_TEST_QUICK=1); then `slidesparse bench` for the suites in SUITES, in that order,
# each writing $OUT/<suite>.jsonl (its table goes to the log). An entry SUITE:PRECISION runs
# the suite for that precision alone (into <suite>_<precision>.jsonl), so that a budget split
# between precisions leaves each of them measured. The last suite gets whatever the budget has
# left; the others stop at their *_SECONDS. No network, no installs, no compiler.
# Everything is logged to $OUT/gpu_all_log.txt. Exit status 0 only when every step passed.
#
# Build first (any machine with nvcc), then bundle the CLI's two non-system libraries:
#   bash scripts/fetch_cusparselt.sh
#   cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLIDESPARSE_ENABLE_CUDA=ON \
#         -DCMAKE_CUDA_ARCHITECTURES=90
#   cmake --build build-gpu --target slidesparse test_gpu_quant_lift test_gpu_backends \
#         test_gpu_epilogue test_gpu_slide_linear
#   BUILD_DIR=build-gpu bash scripts/gpu_bundle_libs.sh
#
# Environment:
#   BUILD_DIR          build directory (default build-gpu)
#   OUT                output directory (default out/gpu_all)
#   BUDGET_SECONDS     wall-clock budget of the whole script (default 540)
#   TEST_SECONDS       limit per test executable (default 150)
#   MEMCHECK_SECONDS   limit per memcheck run (default 90)
#   SUITES             bench suites, in order (default "quant kernel layer")
#   QUANT_ARGS / KERNEL_ARGS / LAYER_ARGS   extra `slidesparse bench` arguments per suite
#   QUANT_SECONDS / KERNEL_SECONDS / LAYER_SECONDS   --max-seconds of a suite that is not last;
#                      "share": an equal share of what is left among this and the later suites
#   SKIP_TESTS=1, SKIP_SANITIZER=1
#   GIT_SHA            commit recorded in the JSON (default: git rev-parse, else "unknown")
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 2
build=${BUILD_DIR:-build-gpu}
out=${OUT:-$root/out/gpu_all}
budget=${BUDGET_SECONDS:-540}
test_limit=${TEST_SECONDS:-150}
memcheck_limit=${MEMCHECK_SECONDS:-90}
# shellcheck source=scripts/gpu_common.sh
source "$root/scripts/gpu_common.sh"
start_log "$out/gpu_all_log.txt"

sha=${GIT_SHA:-$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
echo "gpu_all: $(date -u +%Y-%m-%dT%H:%M:%SZ) root=$root build=$build out=$out sha=$sha budget=${budget}s"

step "nvidia-smi" gpu_info

tests=()
for t in "$build"/test_gpu_*; do
  [ -x "$t" ] && tests+=("$t")
done
[ ${#tests[@]} -eq 0 ] && { summary+=("FAIL  no $build/test_gpu_* executables"); failed=1; }
for exe in "${tests[@]}" "$build/slidesparse"; do
  step "libraries $(basename "$exe")" libs "$exe"
done

run_limited_gtest() { timeout "$test_limit" bash -c "$(declare -f run_gtest); run_gtest $1"; }
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  for t in "${tests[@]}"; do
    step "tests $(basename "$t") (max ${test_limit}s)" run_limited_gtest "$t"
  done
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
      step "memcheck $(basename "$t") (max ${memcheck_limit}s)" run_memcheck "$t" "$memcheck_limit"
    done
  fi
fi

run_suite() {  # run_suite SUITE NAME SECONDS ARGS...
  local suite=$1 name=$2 secs=$3
  shift 3
  "$build/slidesparse" bench --suite "$suite" --out "$out/$name.jsonl" --git-sha "$sha" --max-seconds "$secs" "$@"
}
read -r -a suites <<<"${SUITES:-quant kernel layer}"
for i in "${!suites[@]}"; do
  entry=${suites[$i]}
  s=${entry%%:*}
  name=$s
  extra=()
  if [ "$entry" != "$s" ]; then
    name="${s}_${entry#*:}"
    extra=(--precisions "${entry#*:}")
  fi
  case $s in
    quant) args=${QUANT_ARGS:-} secs=${QUANT_SECONDS:-60} ;;
    kernel) args=${KERNEL_ARGS:-} secs=${KERNEL_SECONDS:-120} ;;
    layer) args=${LAYER_ARGS:-} secs=${LAYER_SECONDS:-240} ;;
    *) summary+=("FAIL  unknown suite $s"); failed=1; continue ;;
  esac
  left=$((budget - SECONDS - 10))
  [ "$secs" = share ] && secs=$((left / (${#suites[@]} - i)))
  if [ $((i + 1)) -eq ${#suites[@]} ] || [ "$secs" -gt "$left" ]; then secs=$left; fi
  if [ "$secs" -lt 15 ]; then
    summary+=("FAIL  bench $entry (no time left in the ${budget}s budget)")
    failed=1
    continue
  fi
  # shellcheck disable=SC2086
  step "bench $entry (max ${secs}s)" run_suite "$s" "$name" "$secs" $args ${extra[@]+"${extra[@]}"}
done

echo
echo "=== gpu_all summary"
print_summary
[ "$failed" -eq 0 ] && echo "gpu_all: ALL PASSED" || echo "gpu_all: FAILED"
exit "$failed"
