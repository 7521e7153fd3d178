set -u
t0=$SECONDS
echo "== python tier-1 =="
PKG_DIR=$PWD/.deps/wt5/src/build-gpu/python CKPT_DIR=$PWD/.deps/wt5/ckpt OUT=$OUT timeout 150 bash scripts/gpu_python.sh test > $OUT/python_gpu_log.txt 2>&1; echo "python rc $? ($((SECONDS-t0)) s)"; grep -E "^(PASS|FAIL)|passed" $OUT/python_gpu_log.txt
echo "== accuracy: 6:8 sparsegpt (sequential, held-out tail of 32768) vs dense, BF16 =="
ACC_ARGS="--heldout-tail 32768 --calib-tokens 32768 --methods sparsegpt-seq --patterns 6:8 --precisions bf16 --slide-check=" timeout $((540 - SECONDS + t0)) bash scripts/gpu_accuracy.sh; echo "acc rc $? ($((SECONDS-t0)) s)"
