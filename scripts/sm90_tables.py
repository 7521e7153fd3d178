#!/usr/bin/env python3
"""Markdown tables of the sm90 backend's benchmark records (`slidesparse bench --sm90`).

  python3 scripts/sm90_tables.py bench/results/kernel_sm90_h100.jsonl bench/results/layer_sm90_h100.jsonl

kernel suite: per (precision, layer, m, variant) the best dense (cuBLASLt or our dense kernel), our
best sparse configuration and cuSPARSELt, as speedups over the best dense (`sm90_best` records),
then every configuration's time (the sweep behind the default table of sm90_backend.cpp).
layer suite: the four-linear sums (`model` records) against the library dense layer and the best
dense layer. Writes <input>.md next to each input.
"""
import collections
import json
import sys


def kernel_tables(rows):
    out = ["| prec | layer | m | pattern | best dense us (cuBLASLt / sm90) | sm90 us | sm90 x best dense | "
           "cuSPARSELt us | cuSPARSELt x best dense | sm90 kernel |", "|" + "---|" * 10]
    for r in rows:
        if r.get("type") != "sm90_best":
            continue
        out.append("| {} | {} | {} | {} | {:.1f} ({:.1f} / {:.1f}) | {:.1f} | {:.2f}x | {:.1f} | {:.2f}x | {} |".format(
            r["precision"], r["layer"], r["m"], r["variant"], r["best_dense_us"], r["dense_cublaslt_us"],
            r.get("dense_sm90_us") or 0, r.get("sm90_us", 0), r.get("sm90_speedup_vs_best_dense", 0),
            r.get("cusparselt_us") or 0, r.get("cusparselt_speedup_vs_best_dense", 0),
            (r.get("sm90_kernel") or "").replace("sm90_", "")))
    sweep = collections.defaultdict(dict)
    kernels = set()
    for r in rows:
        if r.get("type") == "gemm" and r.get("backend") == "sm90":
            k = r["kernel"].replace("sm90_", "")
            kernels.add(k)
            sweep[(r["precision"], r["variant"].replace("sm90:", ""), r["layer"], r["m"])][k] = (
                r["time_us"], r.get("gemm_tflops"))
    out += ["", "Every configuration (us; the best in bold; sparse: TFLOP/s of the sparse math, 2*m*n*K'/2, "
            "in parentheses for the best):", ""]
    for prec in sorted({p for p, *_ in sweep}):
        ks = sorted(k for k in kernels if f"_{prec}_" in k)
        out.append("| {} | layer | m | ".format(prec) + " | ".join(ks) + " |")
        out.append("|" + "---|" * (3 + len(ks)))
        for key in sorted(k for k in sweep if k[0] == prec):
            d = sweep[key]
            best = min(d, key=lambda k: d[k][0])
            cells = []
            for k in ks:
                if k not in d:
                    cells.append("")
                elif k == best:
                    cells.append("**{:.1f}** ({:.0f})".format(d[k][0], d[k][1] or 0))
                else:
                    cells.append("{:.1f}".format(d[k][0]))
            out.append("| {} | {} | {} | ".format(key[1], key[2], key[3]) + " | ".join(cells) + " |")
        out.append("")
    return out


def layer_tables(rows):
    out = ["| prec | m | variant | four linears us | x library dense | x best dense | GEMM us | quant us | epilogue us |",
           "|" + "---|" * 9]
    for r in rows:
        if r.get("type") != "model":
            continue
        out.append("| {} | {} | {} | {:.1f} | {:.3f} | {:.3f} | {:.1f} | {:.1f} | {:.1f} |".format(
            r["precision"], r["m"], r["variant"], r["full_us"], r["speedup_vs_dense"], r["speedup_vs_best_dense"],
            r.get("gemm_us", 0), r.get("quant_us", 0), r.get("epilogue_us", 0)))
    return out


for path in sys.argv[1:]:
    rows = [json.loads(l) for l in open(path) if l.strip()]
    suite = next((r.get("suite") for r in rows if r.get("suite")), "")
    lines = kernel_tables(rows) if suite == "kernel" else layer_tables(rows)
    env = next((r for r in rows if r.get("type") == "env"), {})
    head = "# {} ({} suite, --sm90)\n\nFrom `{}`{}.\n\n".format(
        path.rsplit("/", 1)[-1], suite, path.rsplit("/", 1)[-1],
        ", " + env.get("gpu", env.get("gpu_name", "")) if env else "")
    with open(path.rsplit(".", 1)[0] + ".md", "w") as f:
        f.write(head + "\n".join(lines) + "\n")
    print("wrote", path.rsplit(".", 1)[0] + ".md")
