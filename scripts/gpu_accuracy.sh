#!/usr/bin/env bash
# The WikiText-2 perplexity table on a GPU machine (bench/accuracy.py --device gpu), for machines that
# cannot reach PyPI. Everything comes from the carried folder XFER (default .deps/xfer), made here:
#   bin/slidesparse + bin/rtlibs  a CUDA build of the CLI with its libfmt/libre2 (scripts/gpu_bundle_libs.sh)
#   part1, part2                  the SmolLM2 GGUF cut in two (the device's 64 MiB transfer limit: part1
#                                 travels in a first call, `STAGE=1`, which keeps it in /tmp/ss_part1)
#   wiki_test.ids                 `slidesparse tokenize --ids-out` of wiki.test.raw (not committed)
#   calib.safetensors             `slidesparse calibrate` on /usr/share/common-licenses/* (CPU, here)
# ACC_ARGS adds arguments to bench/accuracy.py (e.g. --max-tokens 65536); TASK=hf runs
# scripts/hf_compare.py (our CPU forward vs transformers) instead. Results go to $OUT.
set -euo pipefail
xfer=${XFER:-.deps/xfer}
out=${OUT:-out/gpu_accuracy}
mkdir -p "$out"
if [ "${STAGE:-2}" = 1 ]; then
  cp "$xfer/part1" /tmp/ss_part1
  ls -la /tmp/ss_part1
  exit 0
fi
part1=$xfer/part1
[ -f "$part1" ] || part1=/tmp/ss_part1
[ -f "$part1" ] || { echo "gpu_accuracy: part1 of the GGUF is missing (run the STAGE=1 call first)"; exit 3; }
cat "$part1" "$xfer/part2" > /tmp/smollm2.gguf
echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  /tmp/smollm2.gguf" | sha256sum -c -
ss=$xfer/bin/slidesparse
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee "$out/gpu.txt"
"$ss" import-gguf /tmp/smollm2.gguf /tmp/smollm2-hf --force -q
if [ "${TASK:-table}" = hf ]; then  # our CPU forward vs transformers on the same safetensors
  PYTHONUNBUFFERED=1 python3 scripts/hf_compare.py --cli "$ss" --model /tmp/smollm2-hf --ids "$xfer/wiki_test.ids" \
    --out "$out/hf_compare.json" 2>&1 | tee "$out/hf_compare_log.txt"
  exit 0
fi
# shellcheck disable=SC2086
PYTHONUNBUFFERED=1 python3 bench/accuracy.py --cli "$ss" --model /tmp/smollm2-hf --ids "$xfer/wiki_test.ids" \
  --calib "$xfer/calib.safetensors" --device gpu --threads "$(nproc)" --workdir /tmp/acc \
  --out "$out/accuracy_gpu.json" ${ACC_ARGS:-} 2>&1 | tee "$out/accuracy_gpu_log.txt"
