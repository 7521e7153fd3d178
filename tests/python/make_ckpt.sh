#!/usr/bin/env bash
# Writes the checkpoints test_gpu.py's load_pruned check reads: OUT/dense (a random 2-layer Llama
# directory from `slidesparse synth`), OUT/int8 and OUT/fp8 (`prune --pattern 6:8`, magnitude).
#   bash tests/python/make_ckpt.sh CLI OUT
set -euo pipefail
cli=$1
out=$2
rm -rf "$out"
mkdir -p "$out"
"$cli" synth "$out/dense" --layers 2 --hidden 256 --intermediate 768 --vocab 512 --shards 1 -q
for p in int8 fp8; do
  "$cli" prune --pattern 6:8 --precision "$p" "$out/dense" "$out/$p" -q
done
