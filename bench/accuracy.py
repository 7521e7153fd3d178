#!/usr/bin/env python3
"""Perplexity table on a real model: dense vs (2N-2):2N patterns x pruning methods x precisions.

Drives the `slidesparse` CLI only (no Python dependency beyond the standard library):
  1. calibrate   on a calibration text (default: the license texts every Debian system ships in
                 /usr/share/common-licenses -- disjoint from WikiText-2) for activation-aware pruning
                 (wanda: input norms; sparsegpt: also the input Hessians, `calibrate --hessian`);
     With --heldout-tail N the calibration text is instead the last N tokens of the evaluation ids
     (a documented held-out slice of the same corpus), and only the tokens before it are evaluated.
     Methods "wanda-seq" / "sparsegpt-seq" calibrate once per pattern, block-sequentially
     (`calibrate --sequential`: each layer observed on the model whose earlier layers are pruned);
  2. prune       the model once per (pattern, method), keeping BF16 weights;
  3. eval        each pruned model with its projections as stored (BF16 weights, f32 math on the
                 CPU, bf16 SlideLinear on the GPU), W8A8 INT8 and W8A8 FP8 (quantized at load);
  4. lossless    for --slide-check patterns: the same evals through the slid 2:4 weights;
and writes one JSON document (every row, the environment and the exact commands) plus a markdown
table. Example (CPU, a 16-window slice):
  python3 bench/accuracy.py --cli build/slidesparse --model .deps/smollm2-hf \\
      --text ../shared/data/wikitext-2-raw/wiki.test.raw --max-tokens 8192 --out bench/results/acc.json
"""
import argparse
import datetime
import glob
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time


def run(cmd, log):
    log.append(" ".join(shlex.quote(c) for c in cmd))
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(f"command failed (exit {p.returncode}): {log[-1]}\n{p.stderr}\n")
        sys.exit(p.returncode)
    return p.stdout, time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cli", required=True, help="path to the slidesparse binary")
    ap.add_argument("--model", required=True, help="dense HF directory (from import-gguf)")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="evaluation text (WikiText-2 test)")
    src.add_argument("--ids", help="evaluation token ids instead (int32 LE, from `slidesparse tokenize --ids-out`)")
    ap.add_argument("--calib", help="precomputed calibration file (skips the calibrate step); sparsegpt needs one "
                                    "written with `calibrate --hessian`")
    ap.add_argument("--calib-text", nargs="*", default=sorted(glob.glob("/usr/share/common-licenses/*")),
                    help="calibration text files, concatenated (default: /usr/share/common-licenses/*)")
    ap.add_argument("--calib-tokens", type=int, default=16384, help="calibration tokens (first N)")
    ap.add_argument("--heldout-tail", type=int, default=0,
                    help="calibrate on the last N tokens of --ids instead of --calib-text, and evaluate only the "
                         "tokens before them (disjoint by construction)")
    ap.add_argument("--patterns", default="2:4,4:6,6:8,8:10,14:16")
    ap.add_argument("--methods", default="magnitude,wanda",
                    help="magnitude, wanda, sparsegpt, wanda-seq, sparsegpt-seq (comma-separated; -seq: "
                         "block-sequential calibration per pattern)")
    ap.add_argument("--damp", type=float, default=None, help="sparsegpt: --damp passed to prune (default: the CLI's)")
    ap.add_argument("--precisions", default="bf16,int8,fp8", help="bf16 = weights as stored (BF16)")
    ap.add_argument("--slide-check", default="6:8",
                    help="patterns also evaluated in the other form ('' = none): on the CPU through the slid "
                         "weights (--slide), on the GPU unslid (--gpu-path dense: same operands, dense GEMMs)")
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--max-tokens", type=int, default=0, help="evaluate the first N tokens only (0: all)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--workdir", default=None, help="where pruned models go (default: a temp dir)")
    ap.add_argument("--out", required=True, help="JSON output; a .md table is written beside it")
    ap.add_argument("--rows-from", action="append", default=[],
                    help="reuse rows printed by an earlier run of this script (its stdout log; e.g. one cut off by a "
                         "time limit): those rows are not evaluated again and are marked with their source")
    a = ap.parse_args()

    log = []
    work = a.workdir or tempfile.mkdtemp(prefix="ss-acc-")
    os.makedirs(work, exist_ok=True)
    common = ["-q", "--json"] + (["-j", str(a.threads)] if a.threads else [])
    prec_flag = {"bf16": "stored", "int8": "int8", "fp8": "fp8"}
    rows = []

    source = ["--text", a.text] if a.text else ["--ids", a.ids]
    calib_source = None  # --heldout-tail: ["--ids", tail file]
    if a.heldout_tail:
        if not a.ids:
            sys.exit("--heldout-tail needs --ids")
        with open(a.ids, "rb") as f:
            data = f.read()
        n = len(data) // 4
        if a.heldout_tail >= n:
            sys.exit(f"--heldout-tail {a.heldout_tail} leaves no tokens to evaluate ({n} ids)")
        head, tail = os.path.join(work, "eval_head.ids"), os.path.join(work, "calib_tail.ids")
        with open(head, "wb") as f:
            f.write(data[:4 * (n - a.heldout_tail)])
        with open(tail, "wb") as f:
            f.write(data[4 * (n - a.heldout_tail):])
        source = ["--ids", head]
        calib_source = ["--ids", tail]
        print(f"held out the last {a.heldout_tail} of {n} ids for calibration; evaluating the first "
              f"{n - a.heldout_tail}" + (f" (at most {a.max_tokens})" if a.max_tokens else ""), flush=True)

    def evaluate(model, pattern, method, precision, check=False):
        if (pattern, method, precision, check) in reuse:
            rows.append(reuse[(pattern, method, precision, check)])
            return rows[-1]
        """The main form, or (check=True) the other form for the lossless comparison. CPU: main runs the
        pruned weights, check runs them slid (--slide). GPU: main runs a pruned model slid on the 2:4
        sparse GEMMs (--gpu-path sparse), check runs the same operands unslid on dense GEMMs."""
        cmd = [a.cli, "eval", "--model", model] + source + ["--ctx", str(a.ctx), "--max-tokens", str(a.max_tokens),
                                                            "--precision", prec_flag[precision]] + common
        if a.device == "gpu":
            sparse = pattern != "dense" and not check
            cmd += ["--device", "gpu", "--gpu-path", "sparse" if sparse else "dense"]
            slid = sparse
        else:
            if check:
                cmd.append("--slide")
            slid = check
        out, secs = run(cmd, log)
        r = json.loads(out)
        row = {"pattern": pattern, "method": method, "precision": precision, "slid": slid, "check": check,
               "ppl": r["ppl"], "tokens_evaluated": r["tokens_evaluated"], "seconds": r["seconds"],
               "linears": r.get("linears", "")}
        rows.append(row)
        print(f"  {pattern:>6} {method:<9} {precision:<5} {'slid ' if slid else 'unslid'} ppl {r['ppl']:.4f}"
              f"  ({r['tokens_evaluated']} tokens, {secs:.0f} s)", flush=True)
        return row

    # Rows of earlier runs, parsed from their printed lines: "  <pattern> <method> <precision> <form> ppl <x>  (<n> tokens, <s> s)"
    line_re = re.compile(r"^\s*(\S+) (\S+)\s+(\S+)\s+(slid|unslid)\s+ppl ([0-9.]+)\s+\((\d+) tokens, (\d+) s\)")
    reuse = {}
    for path in a.rows_from:
        for line in open(path):
            m = line_re.match(line)
            if m:
                pat, meth, prec, form, ppl, ntok, secs = m.groups()
                slid = form == "slid"
                check = (a.device == "gpu" and pat != "dense" and not slid) or (a.device == "cpu" and slid)
                reuse[(pat, meth, prec, check)] = {
                    "pattern": pat, "method": meth, "precision": prec, "slid": slid, "check": check,
                    "ppl": float(ppl), "tokens_evaluated": int(ntok), "seconds": float(secs), "linears": "",
                    "source": os.path.basename(path)}

    precisions = a.precisions.split(",")
    patterns = [p for p in a.patterns.split(",") if p]
    methods = [m for m in a.methods.split(",") if m]
    slide_check = set(p for p in a.slide_check.split(",") if p)

    calib = a.calib
    calibrated = {"wanda", "sparsegpt"}

    def base(method):  # "sparsegpt-seq" -> "sparsegpt"
        return method[:-4] if method.endswith("-seq") else method

    if calib_source is None and calibrated & {base(m) for m in methods}:
        ctext = os.path.join(work, "calib.txt")
        with open(ctext, "wb") as f:
            for path in a.calib_text:
                with open(path, "rb") as g:
                    f.write(g.read())
                f.write(b"\n\n")
        calib_source = ["--text", ctext]
    if calibrated & set(methods) and not calib:
        calib = os.path.join(work, "calib.safetensors")
        out, secs = run([a.cli, "calibrate", "--model", a.model] + calib_source + ["--ctx", str(a.ctx),
                         "--max-tokens", str(a.calib_tokens), "-o", calib, "--force"] +
                        (["--hessian"] if "sparsegpt" in methods else []) + common, log)
        c = json.loads(out)
        print(f"calibrated on {c['tokens']} tokens in {secs:.0f} s", flush=True)

    for prec in precisions:
        evaluate(a.model, "dense", "-", prec)
    for pat in patterns:
        for method in methods:
            pruned = os.path.join(work, f"p{pat.replace(':', '_')}_{method}")
            wanted = [(pat, method, p, c) for p in precisions for c in ([False, True] if pat in slide_check else [False])]
            if all(k in reuse for k in wanted):
                for k in wanted:
                    rows.append(reuse[k])
                continue
            cmd = [a.cli, "prune", a.model, pruned, "--pattern", pat, "--method", base(method), "--force"] + common
            damp = ["--damp", str(a.damp)] if base(method) == "sparsegpt" and a.damp is not None else []
            if method.endswith("-seq"):
                seq_calib = os.path.join(work, f"calib_{pat.replace(':', '_')}_{method}.safetensors")
                out, secs = run([a.cli, "calibrate", "--model", a.model] + calib_source +
                                ["--ctx", str(a.ctx), "--max-tokens", str(a.calib_tokens), "-o", seq_calib,
                                 "--force", "--sequential", base(method), "--pattern", pat] + damp + common, log)
                print(f"  {pat}: sequential {base(method)} calibration in {secs:.0f} s", flush=True)
                cmd += ["--calib", seq_calib]
            elif method in calibrated:
                cmd += ["--calib", calib]
            cmd += damp
            run(cmd, log)
            for prec in precisions:
                evaluate(pruned, pat, method, prec)
            if pat in slide_check:
                target = pruned
                if a.device == "cpu":  # the CPU reads the stored P.slide_weight
                    target = pruned + "_slid"
                    run([a.cli, "slide", pruned, target, "--force"] + common, log)
                for prec in precisions:
                    evaluate(target, pat, method, prec, check=True)

    lossless = []
    for r in rows:
        if r["check"]:
            main_r = next(x for x in rows if not x["check"] and (x["pattern"], x["method"], x["precision"]) ==
                          (r["pattern"], r["method"], r["precision"]))
            lossless.append({"pattern": r["pattern"], "method": r["method"], "precision": r["precision"],
                             "ppl": main_r["ppl"], "ppl_other_form": r["ppl"], "identical": r["ppl"] == main_r["ppl"],
                             "rel_diff": abs(r["ppl"] - main_r["ppl"]) / main_r["ppl"]})
    env = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "host": platform.node(),
           "cpu": platform.processor() or platform.machine(), "nproc": os.cpu_count(), "device": a.device}
    try:
        env["git_sha"] = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                        text=True).stdout.strip()
    except OSError:
        pass
    doc = {"env": env, "args": vars(a), "command": " ".join(shlex.quote(x) for x in sys.argv), "rows": rows,
           "lossless": lossless, "cli_commands": log}
    with open(a.out + ".tmp", "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(a.out + ".tmp", a.out)
    md = render_markdown(doc)
    md_path = os.path.splitext(a.out)[0] + ".md"
    with open(md_path, "w") as f:
        f.write(md)
    print(md)


def render_markdown(doc):
    rows = doc["rows"]
    precs = doc["args"]["precisions"].split(",")
    dense = {r["precision"]: r["ppl"] for r in rows if r["pattern"] == "dense"}
    lines = ["| pattern | method | " + " | ".join(f"{p} ppl (x dense)" for p in precs) + " |",
             "|---|---|" + "---|" * len(precs)]
    seen = []
    for r in rows:
        key = (r["pattern"], r["method"], r["check"])
        if key not in seen:
            seen.append(key)
    for pat, method, check in seen:
        cells = []
        for p in precs:
            m = [r for r in rows if (r["pattern"], r["method"], r["check"], r["precision"]) == (pat, method, check, p)]
            if not m:
                cells.append("")
            elif pat == "dense":
                cells.append(f"{m[0]['ppl']:.3f}")
            else:
                cells.append(f"{m[0]['ppl']:.3f} ({m[0]['ppl'] / dense[p]:.3f})")
        form = ""
        if check:
            form = " (slid)" if doc["env"]["device"] == "cpu" else " (unslid, dense GEMM)"
        lines.append(f"| {pat}{form} | {method} | " + " | ".join(cells) + " |")
    if doc.get("lossless"):
        lines.append("")
    for l in doc.get("lossless", []):
        lines.append(f"Lossless check {l['pattern']} {l['method']} {l['precision']}: ppl {l['ppl']:.6f} vs "
                     f"{l['ppl_other_form']:.6f} in the other form -- "
                     + ("identical" if l["identical"] else f"relative difference {l['rel_diff']:.2e}") + "  ")
    tokens = rows[0]["tokens_evaluated"] if rows else 0
    lines.append("")
    lines.append(f"{tokens} tokens evaluated per row, ctx {doc['args']['ctx']}, device {doc['env']['device']}, "
                 f"{doc['env']['date']}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
