#!/usr/bin/env bash
# issue 3: the small-m policy (auto:6:8) against the dense layer, timed interleaved.
set -u
cd "$(dirname "$0")"
B=$PWD/bin
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv
t0=$SECONDS
timeout 560 $B/slidesparse bench --suite layer --precisions i8 e4m3 bf16 --models qwen2.5-7b llama3-8b --patterns 6:8 --policy 6:8 --ms 16 64 256 1024 4096 8192 16384 --reps 50 --no-host --max-seconds 540 --git-sha "$GIT_SHA" --out $OUT/layer_policy_control.jsonl -q > $OUT/layer_policy_control_log.txt 2>&1; echo "bench rc $? ($((SECONDS-t0)) s)"; grep -A12 "four linears summed" $OUT/layer_policy_control_log.txt | head -80; tail -3 $OUT/layer_policy_control_log.txt
