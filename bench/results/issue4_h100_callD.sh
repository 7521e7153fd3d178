set -u
mkdir -p .deps/models
cat /tmp/ss_part1 .deps/xfer/part2 > .deps/models/SmolLM2-135M-Instruct.Q4_1.gguf
export WIKITEXT=$PWD/.deps/xfer/wiki.test.raw
command -v python3
t0=$SECONDS
SKIP_SETUP=1 BUILD_DIR=$PWD/.deps/xfer/bin DEMO_DIR=/tmp/demo timeout 420 bash scripts/demo.sh > $OUT/demo_gpu_log.txt 2>&1
echo "demo rc $? ($((SECONDS-t0)) s)"
cp /tmp/demo/summary.json $OUT/demo_gpu_summary.json 2>/dev/null
tail -30 $OUT/demo_gpu_log.txt
