#!/usr/bin/env bash
# issue 3: the speedup table, GEMM only, every model shape x pattern x m, one precision set per call.
set -u
cd "$(dirname "$0")"
B=$PWD/bin
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv
t0=$SECONDS
timeout 575 $B/slidesparse bench --suite kernel --precisions $PRECS --models all --ms 16 256 1024 4096 8192 16384 --reps 20 --search-iters 3 --max-seconds ${MAXS:-560} --git-sha "$GIT_SHA" --out $OUT/kernel_all_$TAG.jsonl -q > $OUT/kernel_all_${TAG}_log.txt 2>&1; echo "bench rc $? ($((SECONDS-t0)) s)"; tail -30 $OUT/kernel_all_${TAG}_log.txt
