#!/usr/bin/env python3
"""Our CPU Llama forward (slidesparse eval) vs Hugging Face transformers loading the same
safetensors directory: max |delta logit| on a few sequences and perplexity over the same windows.

Runs wherever torch + transformers are installed (the GPU machines' python3). HF runs in float32
(on the GPU with TF32 off when one is present, else on the CPU); ours is the f32 CPU forward.
  python3 scripts/hf_compare.py --cli build/slidesparse --model DIR --ids wiki_test.ids --out cmp.json
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import transformers


def ours(cli, model, ids_path, ctx, max_tokens, threads, dump=None):
    cmd = [cli, "eval", "--model", model, "--ids", ids_path, "--ctx", str(ctx), "--max-tokens", str(max_tokens),
           "-q", "--json", "-j", str(threads)]
    if dump:
        cmd += ["--dump-logits", dump]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr}")
    return json.loads(p.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--model", required=True, help="HF directory (config.json + model.safetensors)")
    ap.add_argument("--ids", required=True, help="token ids, int32 little-endian")
    ap.add_argument("--lengths", default="1,37,200,512", help="sequence lengths compared logit by logit")
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--windows", type=int, default=8, help="windows for the perplexity comparison")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    ids = np.fromfile(a.ids, dtype="<i4")
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    hf = transformers.LlamaForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32).to(dev).eval()
    tmp = tempfile.mkdtemp()
    seqs = []
    for i, n in enumerate(int(x) for x in a.lengths.split(",")):
        off = 1000 * (i + 1)
        win = ids[off:off + n].astype("<i4")
        path = os.path.join(tmp, f"w{n}.ids")
        win.tofile(path)
        dump = os.path.join(tmp, f"w{n}.logits")
        ours(a.cli, a.model, path, max(n, 2), n, a.threads, dump)
        mine = np.fromfile(dump, dtype="<f4").reshape(n, -1).astype(np.float64)
        with torch.no_grad():
            ref = hf(torch.tensor(win, dtype=torch.long, device=dev)[None]).logits[0].double().cpu().numpy()
        d = float(np.abs(mine - ref).max())
        seqs.append({"tokens": n, "offset": off, "max_abs_delta_logit": d, "max_abs_logit": float(np.abs(ref).max())})
        print(f"T={n:4d}: max |delta logit| {d:.3e} (max |logit| {np.abs(ref).max():.2f})", flush=True)

    t0 = time.time()
    r = ours(a.cli, a.model, a.ids, a.ctx, a.ctx * a.windows, a.threads)
    ours_s = time.time() - t0
    nll, count = 0.0, 0
    with torch.no_grad():
        for w in range(a.windows):
            win = torch.tensor(ids[w * a.ctx:(w + 1) * a.ctx], dtype=torch.long, device=dev)
            lg = hf(win[None]).logits[0].double()
            nll += torch.nn.functional.cross_entropy(lg[:-1], win[1:], reduction="sum").item()
            count += len(win) - 1
    ppl_hf = math.exp(nll / count)
    print(f"perplexity over {count} tokens: ours {r['ppl']:.6f}, transformers {ppl_hf:.6f} "
          f"(relative difference {abs(r['ppl'] - ppl_hf) / ppl_hf:.2e})", flush=True)
    doc = {"transformers": transformers.__version__, "torch": torch.__version__, "hf_device": dev,
           "command": " ".join(sys.argv), "sequences": seqs,
           "max_abs_delta_logit": max(s["max_abs_delta_logit"] for s in seqs),
           "perplexity": {"tokens": count, "ours": r["ppl"], "transformers": ppl_hf,
                          "relative_difference": abs(r["ppl"] - ppl_hf) / ppl_hf, "ours_seconds": ours_s,
                          "same_4_significant_digits": f"{r['ppl']:.4g}" == f"{ppl_hf:.4g}"}}
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
