#!/usr/bin/env bash
# Weight preparation on the GPU (issue 3's load path, issue 7's per-step weight updates) on a GPU
# machine, with executables built elsewhere (same CUDA; see scripts/gpu_gemm.sh for carrying them):
#   nvidia-smi; tier-1 tests test_gpu_weight_prep (every kernel against the CPU core, the SlideLinear
#   device entries against from_dense / from_quantized layers); `slidesparse bench --suite load`;
#   the Python checks C and G (from_linear on the GPU == on the host, update_weight_) when PKG_DIR
#   holds the package; test_gpu_slide_linear (the layer's own oracles, whose weight upload
#   changed); compute-sanitizer memcheck over test_gpu_weight_prep (quick; SANITIZE_FILTER, default
#   the kernel tests and the bad-input layer test; SANITIZE_TIMEOUT).
# Everything is logged to $OUT/gpu_weight_prep_log.txt. Exit status 0 only when every step passed.
# Environment:
#   BIN        directory holding the executables (default build-gpu); PKG_DIR the Python package
#              directory (default $BIN/python; skipped when missing); PY (default PyTorch's venv)
#   OUT        results (default out/gpu_weight_prep); GIT_SHA recorded in the benchmark
#   LOAD_ARGS  arguments of the load suite (default: none beyond --out; "skip" to skip it)
#   STEP_TIMEOUT  seconds per step (default 300)
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bin=${BIN:-build-gpu}
out=${OUT:-$root/out/gpu_weight_prep}
py=${PY:-/opt/torch/.venv/bin/python3}
pkg=${PKG_DIR:-$bin/python}
tmo=${STEP_TIMEOUT:-300}
source "$root/scripts/gpu_common.sh"
start_log "$out/gpu_weight_prep_log.txt"
sha=${GIT_SHA:-$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
echo "gpu_weight_prep: $(date -u +%Y-%m-%dT%H:%M:%SZ) bin=$bin out=$out sha=$sha"

step "nvidia-smi" gpu_info
step "tests test_gpu_weight_prep" timeout "$tmo" bash -c "source '$root/scripts/gpu_common.sh'; run_gtest '$bin/test_gpu_weight_prep'"
if [ "${LOAD_ARGS:-}" != skip ]; then
  # shellcheck disable=SC2086
  step "bench load" timeout "$tmo" "$bin/slidesparse" bench --suite load --out "$out/load.jsonl" --git-sha "$sha" \
    ${LOAD_ARGS:-}
fi
if [ -f "$pkg/slidesparse/libslidesparse_c.so" ]; then
  step "python checks C, G" timeout "$tmo" env PYTHONPATH="$pkg" SLIDESPARSE_TEST_ONLY=CG \
    SLIDESPARSE_TEST_JSON="$out/python_weight_prep.json" "$py" "$root/tests/python/test_gpu.py"
fi
# The full test_gpu_slide_linear (QUICK_SLIDE_LINEAR=1: the quick set, whose two skips are by design).
if [ "${QUICK_SLIDE_LINEAR:-0}" = 1 ]; then
  step "tests test_gpu_slide_linear (quick)" timeout "$tmo" env SLIDESPARSE_GPU_TEST_QUICK=1 \
    "$bin/test_gpu_slide_linear" --gtest_color=no
else
  step "tests test_gpu_slide_linear" timeout "$tmo" bash -c "source '$root/scripts/gpu_common.sh'; run_gtest '$bin/test_gpu_slide_linear'"
fi
san=$(find_sanitizer)
if [ -n "$san" ]; then
  step "memcheck test_gpu_weight_prep (quick)" timeout "${SANITIZE_TIMEOUT:-$tmo}" env SLIDESPARSE_GPU_TEST_QUICK=1 \
    "$san" --tool memcheck --error-exitcode 1 "$bin/test_gpu_weight_prep" --gtest_color=no \
    --gtest_filter="${SANITIZE_FILTER:-WeightPrep.*:WeightPrepLayer.BadInput*}"
else
  summary+=("FAIL  memcheck (no compute-sanitizer)")
  failed=1
fi

echo
echo "=== gpu_weight_prep summary"
print_summary
[ $failed -eq 0 ] && echo "gpu_weight_prep: ALL PASSED" || echo "gpu_weight_prep: FAILED"
exit $failed
