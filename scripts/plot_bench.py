#!/usr/bin/env python3
"""Render slidesparse_bench_gemm JSON Lines: speedup-vs-m plots per precision and a markdown table.

    python3 scripts/plot_bench.py out/gpu_gemm/gemm_bench.jsonl --out-dir out/gpu_gemm

Writes <out-dir>/speedup_<precision>.png (one panel per model: the speedup over dense of the
model's four linear layers together, i.e. sum of dense times / sum of variant times at each m,
with the ideal N/(N-1) as dotted lines) and <out-dir>/speedups.md (the same numbers, plus every
layer). Speedups are against cuBLASLt dense of the same precision measured in the same run.
matplotlib is optional: without it only the markdown is written (and a warning printed).
"""
import argparse
import collections
import json
import os
import sys

IDEAL = {"2:4": 2.0, "4:6": 1.5, "6:8": 4.0 / 3.0, "8:10": 1.25}
LAYERS = ("qkv", "o", "gate_up", "down")


def load(path):
    env, rows, errors = None, [], []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{lineno}: not JSON: {e}")
            kind = rec.get("type")
            if kind == "env":
                env = rec
            elif kind == "gemm":
                rows.append(rec)
            elif kind == "error":
                errors.append(rec)
    return env, rows, errors


def variant_order(v):
    if v == "dense":
        return (0, 0)
    keep, group = v.split(":")
    return (1, int(group))


def index(rows):
    """(precision, model, m) -> layer -> variant -> time_us."""
    t = collections.defaultdict(lambda: collections.defaultdict(dict))
    for r in rows:
        t[(r["precision"], r["model"], r["m"])][r["layer"]][r["variant"]] = r["time_us"]
    return t


def model_speedups(times):
    """(precision, model) -> variant -> [(m, speedup of the four layers together)]."""
    out = collections.defaultdict(lambda: collections.defaultdict(list))
    for (prec, model, m), layers in sorted(times.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        if not all(l in layers and "dense" in layers[l] for l in LAYERS):
            continue
        dense = sum(layers[l]["dense"] for l in LAYERS)
        variants = set().union(*(layers[l].keys() for l in LAYERS)) - {"dense"}
        for v in variants:
            if all(v in layers[l] for l in LAYERS):
                out[(prec, model)][v].append((m, dense / sum(layers[l][v] for l in LAYERS)))
    return out


def markdown(env, rows, errors, times, speedups):
    lines = ["# GEMM speedups over cuBLASLt dense (slidesparse_bench_gemm)", ""]
    if env:
        lines.append(
            f"{env.get('gpu')} (sm_{env.get('sm')}, {env.get('sm_count')} SMs), driver {env.get('driver_version')}, "
            f"CUDA runtime {env.get('runtime_version')}, cuSPARSELt {env.get('cusparselt_version')}, "
            f"cuBLASLt {env.get('cublaslt_version')}, git {env.get('git_sha')}, {env.get('date')}; "
            f"median of {env.get('reps')} launches, X rotated over {env.get('rotate_mib')} MiB.")
        lines.append("")
    lines.append("Speedup = dense time / variant time; for a model, the four linear layers together "
                 "(sum of times). GEMM only (no quantization or lifting kernel).")
    lines.append("")
    for (prec, model), per_variant in sorted(speedups.items()):
        variants = sorted(per_variant, key=variant_order)
        ms = sorted({m for v in variants for m, _ in per_variant[v]})
        lines.append(f"## {prec} {model} (four linear layers)")
        lines.append("")
        lines.append("| m | " + " | ".join(variants) + " |")
        lines.append("|---:|" + "---:|" * len(variants))
        for m in ms:
            cells = []
            for v in variants:
                s = dict(per_variant[v]).get(m)
                cells.append(f"{s:.2f}" if s is not None else "-")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    by_shape = collections.defaultdict(dict)
    for r in rows:
        by_shape[(r["precision"], r["model"], r["layer"], r["m"], r["n"], r["k"])][r["variant"]] = r
    if by_shape:
        variants = sorted({v for d in by_shape.values() for v in d}, key=variant_order)
        lines.append("## Every layer")
        lines.append("")
        lines.append("| precision | model | layer | m | n | K | dense us | dense TFLOP/s | "
                     + " | ".join(v for v in variants if v != "dense") + " |")
        lines.append("|---|---|---|---:|---:|---:|---:|---:|" + "---:|" * (len(variants) - 1))
        order = {l: i for i, l in enumerate(LAYERS)}
        for key in sorted(by_shape, key=lambda k: (k[0], k[1], order.get(k[2], 9), k[3])):
            d = by_shape[key]
            dense = d.get("dense")
            cells = []
            for v in variants:
                if v == "dense":
                    continue
                r = d.get(v)
                if r is None or r.get("speedup_vs_dense") is None:
                    cells.append("-")
                else:
                    mark = "" if r.get("verified", True) else " (unverified!)"
                    cells.append(f"{r['speedup_vs_dense']:.2f}{mark}")
            dense_us = f"{dense['time_us']:.1f}" if dense else "-"
            dense_tf = f"{dense['tflops']:.0f}" if dense else "-"
            lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {key[4]} | {key[5]} | {dense_us} | "
                         f"{dense_tf} | " + " | ".join(cells) + " |")
        lines.append("")
    if errors:
        lines.append(f"## Errors ({len(errors)})")
        lines.append("")
        for e in errors:
            lines.append(f"- {e.get('precision')} {e.get('model')} {e.get('layer')} m={e.get('m')} "
                         f"{e.get('variant')}: {e.get('message')}")
        lines.append("")
    return "\n".join(lines)


def plot(speedups, env, out_dir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot_bench: matplotlib not available, no PNG written", file=sys.stderr)
        return []
    written = []
    precisions = sorted({p for p, _ in speedups})
    for prec in precisions:
        models = sorted(m for p, m in speedups if p == prec)
        fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4.2), squeeze=False)
        for ax, model in zip(axes[0], models):
            per_variant = speedups[(prec, model)]
            for v in sorted(per_variant, key=variant_order):
                pts = sorted(per_variant[v])
                line, = ax.plot([m for m, _ in pts], [s for _, s in pts], marker="o", label=v)
                if v in IDEAL:
                    ax.axhline(IDEAL[v], color=line.get_color(), linestyle=":", linewidth=1)
            ax.axhline(1.0, color="black", linewidth=0.8)
            ax.set_xscale("log", base=2)
            ax.set_xlabel("m (tokens)")
            ax.set_ylabel("speedup vs cuBLASLt dense")
            ax.set_title(f"{model}, {prec}, four linear layers")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(title="pattern (dotted: ideal)", fontsize=8)
        if env:
            fig.suptitle(f"{env.get('gpu')}, cuSPARSELt {env.get('cusparselt_version')}, "
                         f"git {env.get('git_sha')}", fontsize=9)
        fig.tight_layout()
        path = os.path.join(out_dir, f"speedup_{prec}.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("jsonl", help="slidesparse_bench_gemm --out file")
    ap.add_argument("--out-dir", default=None, help="where to write the PNGs and speedups.md "
                    "(default: the JSONL's directory)")
    args = ap.parse_args()
    out_dir = args.out_dir or os.path.dirname(os.path.abspath(args.jsonl))
    os.makedirs(out_dir, exist_ok=True)
    env, rows, errors = load(args.jsonl)
    if not rows:
        sys.exit(f"{args.jsonl}: no gemm records")
    times = index(rows)
    speedups = model_speedups(times)
    md = markdown(env, rows, errors, times, speedups)
    md_path = os.path.join(out_dir, "speedups.md")
    with open(md_path, "w") as f:
        f.write(md + "\n")
    print(md)
    for p in [md_path] + plot(speedups, env, out_dir):
        print(f"plot_bench: wrote {p}", file=sys.stderr)


if __name__ == "__main__":
    main()
