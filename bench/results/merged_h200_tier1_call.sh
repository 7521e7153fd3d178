#!/usr/bin/env bash
# The merged tree (issues 3, 3p, 7a, 7b): every tier-1 GPU suite, memcheck on the new ones, Python tier-1.
set -u
cd "$(dirname "$0")"
B=$PWD/bin
root=$(cd ../.. && pwd)
t0=$SECONDS
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv
for t in $B/test_gpu_*; do
  n=$(basename $t)
  timeout 240 $t --gtest_brief=1 > $OUT/$n.txt 2>&1; rc=$?
  echo "$n rc $rc ($((SECONDS-t0)) s): $(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' $OUT/$n.txt | tr '\n' ' ')"
  grep -E "^\[  FAILED" $OUT/$n.txt | head -5
done
echo "== memcheck =="
for spec in "test_gpu_backends:GpuBackends.BoundRunEqualsDirectCall" "test_gpu_weight_prep:*" "test_gpu_nm_mask:*" "test_gpu_ternary:*"; do
  exe=${spec%%:*}; filt=${spec#*:}
  timeout 200 /usr/local/cuda/bin/compute-sanitizer --tool memcheck --error-exitcode 9 $B/$exe --gtest_filter="$filt" --gtest_brief=1 > $OUT/memcheck_$exe.txt 2>&1
  echo "memcheck $exe rc $? ($((SECONDS-t0)) s): $(grep 'ERROR SUMMARY' $OUT/memcheck_$exe.txt)"
done
echo "== python tier-1 =="
cd $root && PKG_DIR=$root/.deps/me3/python CKPT_DIR=$root/.deps/me3/ckpt OUT=$OUT timeout 200 bash scripts/gpu_python.sh test > $OUT/python_gpu_log.txt 2>&1; echo "python rc $? ($((SECONDS-t0)) s)"; tail -15 $OUT/python_gpu_log.txt
