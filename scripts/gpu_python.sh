#!/usr/bin/env bash
# GPU machine: the PyTorch extension's tier-1 tests (tests/python/test_gpu.py), the per-call op
# overhead (bench/op_overhead.py) and the end-to-end prefill benchmark (bench/e2e_prefill.py),
# with PyTorch's virtualenv python. Nothing is built here: the package and libslidesparse_c.so come
# prebuilt (PKG_DIR, default build-gpu/python; see cmake/python.cmake), the load_pruned checkpoints
# from tests/python/make_ckpt.sh (CKPT_DIR). Results go to $OUT.
#   bash scripts/gpu_python.sh test|overhead|e2e|all [extra e2e_prefill.py arguments]
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
py=${PY:-/opt/torch/.venv/bin/python3}
export PYTHONPATH=${PKG_DIR:-$here/build-gpu/python}
export SLIDESPARSE_TEST_CKPT=${CKPT_DIR:-}
out=${OUT:-$here/out}
mkdir -p "$out"
mode=${1:-all}
shift || true
rc=0
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem --format=csv || true
if [ "$mode" = test ] || [ "$mode" = all ]; then
  SLIDESPARSE_TEST_JSON=$out/python_gpu_tests.json "$py" "$here/tests/python/test_gpu.py" || rc=1
fi
if [ "$mode" = overhead ] || [ "$mode" = all ]; then
  "$py" "$here/bench/op_overhead.py" --out "$out/op_overhead.json" || rc=1
fi
if [ "$mode" = e2e ] || [ "$mode" = all ]; then
  "$py" "$here/bench/e2e_prefill.py" --out "$out/e2e_prefill.json" --plot "$out/e2e_prefill.png" "$@" || rc=1
fi
exit $rc
