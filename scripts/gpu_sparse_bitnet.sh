#!/usr/bin/env bash
# GPU machine: issue 7's Sparse-BitNet pieces in one command, with PyTorch's virtualenv python.
# Nothing is built here: test_gpu_nm_mask comes prebuilt (BIN_DIR, default build-gpu), the package
# with libslidesparse_c.so too (PKG_DIR, default build-gpu/python; see cmake/python.cmake).
#   test   tests/gpu/gpu_nm_mask.cpp (kernel == CPU, bit for bit) and tests/python/test_sparse_bitnet.py
#   cost   bench/mask_step_cost.py: mask + quantize + slide + compress per step vs the GEMM time saved
#   train  bench/sparse_bitnet.py: the six-variant training experiment (extra arguments go to it)
#   all    the three in this order
# DATA: WikiText-2's wiki.test.raw (default ../shared/data/wikitext-2-raw/wiki.test.raw). Results
# go to $OUT (sparse_bitnet.{json,md,png}, mask_step_cost.json, gpu_nm_mask.json, python_sparse_bitnet.txt).
#   bash scripts/gpu_sparse_bitnet.sh test|cost|train|all [sparse_bitnet.py arguments]
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
py=${PY:-/opt/torch/.venv/bin/python3}
export PYTHONPATH=${PKG_DIR:-$here/build-gpu/python}
bin=${BIN_DIR:-$here/build-gpu}
data=${DATA:-$here/../shared/data/wikitext-2-raw/wiki.test.raw}
out=${OUT:-$here/out}
mkdir -p "$out"
mode=${1:-all}
shift || true
rc=0
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem --format=csv || true
if [ "$mode" = test ] || [ "$mode" = all ]; then
  "$bin/test_gpu_nm_mask" --gtest_output=json:"$out/gpu_nm_mask.json" || rc=1
  SLIDESPARSE_REQUIRE_CUDA=1 "$py" "$here/tests/python/test_sparse_bitnet.py" 2>&1 | tee "$out/python_sparse_bitnet.txt"
  [ "${PIPESTATUS[0]}" = 0 ] || rc=1
fi
if [ "$mode" = cost ] || [ "$mode" = all ]; then
  "$py" "$here/bench/mask_step_cost.py" --out "$out/mask_step_cost.json" || rc=1
fi
if [ "$mode" = train ] || [ "$mode" = all ]; then
  [ -f "$data" ] || { echo "gpu_sparse_bitnet: $data not found (set DATA)"; exit 2; }
  "$py" "$here/bench/sparse_bitnet.py" --data "$data" --out-json "$out/sparse_bitnet.json" \
    --out-md "$out/sparse_bitnet.md" --out-png "$out/sparse_bitnet.png" "$@" || rc=1
fi
exit $rc
