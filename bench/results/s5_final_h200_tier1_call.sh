#!/usr/bin/env bash
# The final tree: every tier-1 GPU suite, compute-sanitizer memcheck on every suite, Python tier-1.
set -u
cd "$(dirname "$0")"
B=$PWD/bin
root=$(cd ../.. && pwd)
t0=$SECONDS
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv
unset SLIDESPARSE_GPU_TEST_QUICK
for t in $B/test_gpu_*; do
  n=$(basename $t)
  timeout 240 $t --gtest_brief=1 > /tmp/$n.txt 2>&1; rc=$?
  echo "$n rc $rc ($((SECONDS-t0)) s): $(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' /tmp/$n.txt | tr '\n' ' ')"
  grep -E "^\[  FAILED" /tmp/$n.txt | head -5
done
echo "== memcheck, every suite (SLIDESPARSE_GPU_TEST_QUICK=1 where the suite has a quick mode) =="
for t in $B/test_gpu_*; do
  n=$(basename $t)
  left=$((420 - SECONDS + t0)); [ $left -lt 20 ] && { echo "memcheck $n: not run (time)"; continue; }
  SLIDESPARSE_GPU_TEST_QUICK=1 timeout $left /usr/local/cuda/bin/compute-sanitizer --tool memcheck --error-exitcode 9 $t --gtest_brief=1 > /tmp/mc_$n.txt 2>&1
  echo "memcheck $n rc $? ($((SECONDS-t0)) s): $(grep 'ERROR SUMMARY' /tmp/mc_$n.txt) $(grep -E '^\[  (PASSED|FAILED) ' /tmp/mc_$n.txt | tr '\n' ' ')"
done
echo "== python tier-1 =="
cd $root && PKG_DIR=$root/.deps/s5/python CKPT_DIR=$root/.deps/s5/ckpt OUT=$OUT timeout 200 bash scripts/gpu_python.sh test > $OUT/python_gpu_log.txt 2>&1; echo "python rc $? ($((SECONDS-t0)) s)"; tail -9 $OUT/python_gpu_log.txt
echo "== memcheck of the measured crossover (probes to 16384 rows with the L2 scrub; not in the quick mode) =="
timeout 170 /usr/local/cuda/bin/compute-sanitizer --tool memcheck --error-exitcode 9 $B/test_gpu_slide_linear --gtest_filter='*Crossover*' --gtest_brief=1 > /tmp/mc_cross.txt 2>&1
echo "memcheck crossover rc $? ($((SECONDS-t0)) s): $(grep 'ERROR SUMMARY' /tmp/mc_cross.txt) $(grep -E '^\[  (PASSED|FAILED) ' /tmp/mc_cross.txt | tr '\n' ' ')"
