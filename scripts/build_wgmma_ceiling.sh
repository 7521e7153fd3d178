#!/usr/bin/env bash
# Builds the standalone wgmma throughput-ceiling microbenchmark (bench/micro/wgmma_ceiling.cu) for
# sm_90a (wgmma needs the arch-specific target). Not part of the CMake build or CI: issue 6 evidence,
# run by hand on an H100/H200 (see bench/results/README.md for the recorded command).
#   bash scripts/build_wgmma_ceiling.sh            -> build-micro/wgmma_ceiling (+ ptxas report)
#   OUT_DIR=build-x bash scripts/build_wgmma_ceiling.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT_DIR:-build-micro}
nvcc_bin=${NVCC:-nvcc}
command -v "$nvcc_bin" >/dev/null || { echo "build_wgmma_ceiling: nvcc not found (set NVCC)"; exit 2; }
mkdir -p "$out"
# -Xptxas -v: registers and spills per kernel, and any "wgmma serialized" warning, land in the log.
"$nvcc_bin" -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -cudart=static -lineinfo \
  -Xptxas -v -o "$out/wgmma_ceiling" bench/micro/wgmma_ceiling.cu 2>&1 | tee "$out/ptxas_log.txt"
# ptxas inserts waits and says so when it must serialize wgmma; that would void the measurement.
if grep -qi "serializ" "$out/ptxas_log.txt"; then
  echo "build_wgmma_ceiling: ptxas serialized wgmma (see $out/ptxas_log.txt)"
  exit 1
fi
echo "build_wgmma_ceiling: built $out/wgmma_ceiling"
