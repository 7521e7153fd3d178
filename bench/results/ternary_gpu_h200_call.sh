#!/usr/bin/env bash
# issue 7a on the GPU machine: the ternary layer test, the epilogue test (its CPU twin moved to a
# shared header), compute-sanitizer memcheck over the ternary test (quick shapes). Binaries built
# from branch issue7a at commit ae9a47f (CUDA 13.0, sm_90, cuSPARSELt 0.8.0 headers).
set -u
cd "$(dirname "$0")"
log=$OUT/ternary_gpu_h100_log.txt
exec > >(tee "$log") 2>&1
echo "call: $(date -u +%Y-%m-%dT%H:%M:%SZ) binaries of issue7a ae9a47f"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
san=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
rc=0
run() { echo; echo "=== $*"; local t0=$SECONDS; "$@"; local r=$?; echo "=== exit $r, $((SECONDS - t0)) s"; [ $r -eq 0 ] || rc=1; }
run ./bin/test_gpu_ternary --gtest_color=no
run ./bin/test_gpu_epilogue --gtest_color=no --gtest_brief=1
export SLIDESPARSE_GPU_TEST_QUICK=1
run "$san" --tool memcheck --error-exitcode 99 --leak-check full ./bin/test_gpu_ternary --gtest_color=no --gtest_brief=1
echo; echo "call: overall exit $rc"
exit $rc
