#!/usr/bin/env bash
# issue 3, session 5, call 2: the 3% margin and time-sized probes; a --no-bind control at small m.
# suite's read-only L2 scrub and pairwise-median policy ratios.
set -u
cd "$(dirname "$0")"
B=$PWD/bin
root=$(cd ../.. && pwd)
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv
t0=$SECONDS
timeout 200 $B/test_gpu_slide_linear --gtest_brief=1 > $OUT/slide_linear_tests_log.txt 2>&1; echo "test_gpu_slide_linear rc $? ($((SECONDS-t0)) s)"
grep -E "^\[  (PASSED|FAILED|SKIPPED) |probe m=|dense_below_m" $OUT/slide_linear_tests_log.txt | head -20
cd $root && PKG_DIR=$root/.deps/s5/python CKPT_DIR=$root/.deps/s5/ckpt OUT=$OUT SLIDESPARSE_TEST_ONLY=H timeout 120 bash scripts/gpu_python.sh test > $OUT/python_H_log.txt 2>&1; echo "python H rc $? ($((SECONDS-t0)) s)"; tail -4 $OUT/python_H_log.txt
cd "$(dirname "$0")"
timeout 370 $B/slidesparse bench --suite layer --precisions i8 e4m3 bf16 --models qwen2.5-7b llama3-8b --patterns 6:8 --policy 6:8 --ms 16 64 256 1024 4096 8192 16384 --reps 50 --paired-ms 200 --no-host --max-seconds 350 --git-sha "$GIT_SHA" --out $OUT/layer_policy_final.jsonl -q > $OUT/layer_policy_final_log.txt 2>&1; echo "bench rc $? ($((SECONDS-t0)) s)"; tail -3 $OUT/layer_policy_final_log.txt
left=$((560 - SECONDS + t0))
[ $left -gt 40 ] && { timeout $left $B/slidesparse bench --suite layer --precisions e4m3 bf16 --models qwen2.5-7b --patterns 6:8 --policy 6:8 --ms 16 64 256 --reps 50 --paired-ms 200 --no-host --no-bind --max-seconds $((left-10)) --git-sha "$GIT_SHA" --out $OUT/layer_policy_nobind.jsonl -q > $OUT/layer_policy_nobind_log.txt 2>&1; echo "bench nobind rc $? ($((SECONDS-t0)) s)"; }
