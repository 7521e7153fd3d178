#!/usr/bin/env bash
# issue 3: bound GEMM graphs (GemmPlan::bind) -- tier-1 tests, memcheck, host overhead.
set -u
cd "$(dirname "$0")"
B=$PWD/bin
t0=$SECONDS
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw --format=csv
echo "== test_gpu_backends =="
timeout 200 $B/test_gpu_backends --gtest_brief=1 > $OUT/test_gpu_backends.txt 2>&1; echo "rc $? ($((SECONDS-t0)) s)"; tail -5 $OUT/test_gpu_backends.txt
echo "== test_gpu_slide_linear =="
timeout 200 $B/test_gpu_slide_linear --gtest_brief=1 > $OUT/test_gpu_slide_linear.txt 2>&1; echo "rc $? ($((SECONDS-t0)) s)"; tail -5 $OUT/test_gpu_slide_linear.txt
echo "== memcheck: BoundRunEqualsDirectCall, SlideLinear exact i8 =="
timeout 150 /usr/local/cuda/bin/compute-sanitizer --tool memcheck --error-exitcode 9 $B/test_gpu_backends --gtest_filter='GpuBackends.BoundRunEqualsDirectCall' > $OUT/memcheck.txt 2>&1; echo "memcheck backends rc $? ($((SECONDS-t0)) s)"; tail -3 $OUT/memcheck.txt
timeout 120 /usr/local/cuda/bin/compute-sanitizer --tool memcheck --error-exitcode 9 $B/test_gpu_slide_linear --gtest_filter='*GraphCapture*:*DenseOnly*' >> $OUT/memcheck.txt 2>&1; echo "memcheck slide_linear rc $? ($((SECONDS-t0)) s)"; tail -3 $OUT/memcheck.txt
echo "== layer host overhead (bound vs direct) =="
timeout 150 $B/slidesparse bench --suite layer --precisions i8 e4m3 bf16 --models qwen2.5-7b --ms 16 --patterns 6:8 --search-iters 2 --host-calls 2000 --host-batch 100 --out $OUT/layer_host_bound_h100.jsonl > $OUT/layer_host_bound_log.txt 2>&1; echo "bench rc $? ($((SECONDS-t0)) s)"; grep "host " $OUT/layer_host_bound_log.txt
