#!/usr/bin/env bash
# The README's main command: set up, build, and run the main job on the embedded default.
# Until the real model lands (issue 4), the default is a small random Llama-shaped checkpoint:
# generate it, prune 6:8 (and 2:4 for contrast), slide, verify against the dense original,
# and print a table. Results go to ${DEMO_DIR:-out/demo}; a JSON summary to summary.json there.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/setup.sh"
bash "$root/scripts/build.sh"
ss="${BUILD_DIR:-$root/build}/slidesparse"
dir=${DEMO_DIR:-$root/out/demo}
mkdir -p "$dir"
cd "$dir"

echo "== 1. a random Llama-shaped BF16 checkpoint (4 layers, hidden 512, 2 shards + config.json)"
"$ss" synth dense --layers 4 --hidden 512 --intermediate 1536 --vocab 4096 --shards 2 --seed 1 --force -q
for pat in 6:8 2:4; do
  tag=${pat/:/of}
  echo; echo "== 2. prune $pat (magnitude, BF16 kept) -> pruned-$tag"
  "$ss" prune --pattern "$pat" dense "pruned-$tag" --force -q
  echo; echo "== 3. slide: add the windowed 2:4 weight P.slide_weight -> slid-$tag"
  "$ss" slide "pruned-$tag" "slid-$tag" --force -q
  echo; echo "== 4. verify: pattern, every window 2:4, W' maps back to W, kept values == dense originals"
  "$ss" verify "slid-$tag" --against dense -q
  "$ss" verify "slid-$tag" --against dense -q --json > "verify-$tag.json"
done
echo; echo "== 5. 6:8 with INT8 and FP8 weights (per-channel scales), then slide + verify"
for prec in int8 fp8; do
  "$ss" prune --pattern 6:8 --precision "$prec" dense "pruned-6of8-$prec" --force -q --json > "prune-6of8-$prec.json"
  "$ss" slide "pruned-6of8-$prec" "slid-6of8-$prec" --force -q --json > /dev/null
  "$ss" verify "slid-6of8-$prec" --against dense -q --json > "verify-6of8-$prec.json"
done

python3 - "$dir" <<'PY'
import json, os, sys
d = sys.argv[1]
rows = []
for name, tag in [("6:8 bf16", "6of8"), ("2:4 bf16", "2of4"), ("6:8 int8", "6of8-int8"), ("6:8 fp8", "6of8-fp8")]:
    v = json.load(open(os.path.join(d, f"verify-{tag}.json")))
    layers = v["layers"]
    sp = sum(l["sparsity"] for l in layers) / len(layers)
    kp = [l["slide"]["k_slide"] / l["shape"][1] for l in layers]
    size = sum(os.path.getsize(os.path.join(d, f"slid-{tag}", f)) for f in os.listdir(os.path.join(d, f"slid-{tag}")))
    rows.append(dict(variant=name, layers=len(layers), sparsity=sp, expansion=sum(kp) / len(kp),
                     compliant=v["compliant"], slid_bytes=size))
print()
hdr = ("variant", "layers", "sparsity", "k'/k", "verify", "slid ckpt")
print(f"{hdr[0]:<10} {hdr[1]:>6} {hdr[2]:>9} {hdr[3]:>7} {hdr[4]:>8} {hdr[5]:>11}")
for r in rows:
    print(f"{r['variant']:<10} {r['layers']:>6} {100*r['sparsity']:>8.1f}% {r['expansion']:>7.3f} "
          f"{'ok' if r['compliant'] else 'FAIL':>8} {r['slid_bytes']/2**20:>9.1f} MiB")
json.dump(rows, open(os.path.join(d, "summary.json"), "w"), indent=2)
print(f"\nartifacts and JSON in {d}")
sys.exit(0 if all(r["compliant"] for r in rows) else 1)
PY
