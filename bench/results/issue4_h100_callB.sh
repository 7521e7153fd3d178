set -u
cd "$(git rev-parse --show-toplevel 2>/dev/null || pwd)"
t0=$SECONDS
echo "== python tier-1 (check D re-run) =="
PKG_DIR=$PWD/.deps/wt5/src/build-gpu/python CKPT_DIR=$PWD/.deps/wt5/ckpt OUT=$OUT timeout 150 bash scripts/gpu_python.sh test > $OUT/python_gpu_log.txt 2>&1; echo "python rc $? ($((SECONDS-t0)) s)"; tail -25 $OUT/python_gpu_log.txt
echo "== layer host overhead =="
timeout 120 .deps/xfer/bin/slidesparse bench --suite layer --precisions i8 e4m3 bf16 --models qwen2.5-7b --ms 16 --patterns 6:8 --search-iters 2 --out $OUT/layer_host_h100.jsonl > $OUT/layer_host_log.txt 2>&1; echo "bench rc $? ($((SECONDS-t0)) s)"; grep "host " $OUT/layer_host_log.txt | head -20
echo "== accuracy: 6:8 sparsegpt (sequential, held-out tail) vs dense, BF16, all non-held-out tokens =="
ACC_ARGS="--heldout-tail 16384 --methods sparsegpt-seq --patterns 6:8 --precisions bf16 --slide-check=" timeout $((430 - SECONDS + t0)) bash scripts/gpu_accuracy.sh; echo "acc rc $? ($((SECONDS-t0)) s)"
