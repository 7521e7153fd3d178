#!/usr/bin/env python3
"""Render `slidesparse bench` JSON Lines: speedup-vs-m plots per precision and markdown tables.

    python3 scripts/plot_bench.py out/gpu_all/kernel.jsonl --out-dir out/gpu_all
    python3 scripts/plot_bench.py out/gpu_all/layer_i8.jsonl out/gpu_all/layer_e4m3.jsonl \
        --out-dir bench/results --prefix layer_h100

Any number of files; records of every suite are recognized by their "type":
- kernel suite ("gemm"): <prefix>speedup_<precision>.png (one panel per model: the speedup over
  dense of the model's four linear layers together, i.e. sum of dense times / sum of variant times
  at each m, with the ideal N/(N-1) as dotted lines) and <prefix>speedups.md (the same numbers,
  plus every layer and the native-2:4-on-K' ratios).
- layer suite ("layer", "model", "offline", "host"): <prefix>layer_<precision>.png (full-layer
  speedups of the four linears summed) and <prefix>layer.md: the four-linear table per precision
  and model, slide vs native 2:4 on the same K', the small-m policy (auto:P) against dense, the
  memory-bound stages against a device copy of their bytes, host overhead.
- quant suite ("quant"): <prefix>quant.md.
Speedups are against the dense path of the same precision measured in the same run. matplotlib is
optional: without it only the markdown is written (and a warning printed).
"""
import argparse
import collections
import json
import os
import sys

IDEAL = {"2:4": 2.0, "4:6": 1.5, "6:8": 4.0 / 3.0, "8:10": 1.25}
LAYERS = ("qkv", "o", "gate_up", "down")


def load(paths):
    """env (the first), and every record by type."""
    env, recs = None, collections.defaultdict(list)
    for path in paths:
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
                if kind == "env" and env is None:
                    env = rec
                recs[kind].append(rec)
    return env, recs


def variant_order(v):
    """dense, the patterns, then 2:4@P (native 2:4 on K'(P)), then auto:P."""
    if v == "dense":
        return (0, 0)
    if v.startswith("2:4@"):
        return (2, int(v.split(":")[-1]))
    if v.startswith("auto:"):
        return (3, int(v.split(":")[-1]))
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
    lines = ["# GEMM speedups over cuBLASLt dense (`slidesparse bench --suite kernel`)", ""]
    if env:
        # Older records carry the options at the top level, newer ones under "options".
        opt = env.get("options") or env
        smi = env.get("nvidia_smi") or {}
        power = f", power limit {smi['power.limit']}" if smi.get("power.limit") else ""
        lines.append(
            f"{env.get('gpu')} (sm_{env.get('sm')}, {env.get('sm_count')} SMs{power}), driver {env.get('driver_version')}, "
            f"CUDA runtime {env.get('runtime_version')}, cuSPARSELt {env.get('cusparselt_version')}, "
            f"cuBLASLt {env.get('cublaslt_version')}, git {env.get('git_sha')}, {env.get('date')}; "
            f"median of {opt.get('reps')} launches, X rotated over {opt.get('rotate_mib')} MiB.")
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
    native = [r for r in rows if r.get("native_kprime_of")]
    if native:
        lines.append("## Slid pattern vs native 2:4 on the same K' (GEMM only, same plan cache)")
        lines.append("")
        lines.append("| precision | model | layer | m | pattern | K' | slid us | native 2:4 us | slid / native |")
        lines.append("|---|---|---|---:|---|---:|---:|---:|---:|")
        for r in native:
            ratio = r.get("slide_over_native")
            if ratio is None:
                continue
            lines.append(f"| {r['precision']} | {r['model']} | {r['layer']} | {r['m']} | {r['native_kprime_of']} | "
                         f"{r['k_gemm']} | {ratio * r['time_us']:.1f} | {r['time_us']:.1f} | {ratio:.3f} |")
        lines.append("")
    if errors:
        lines.append(f"## Errors ({len(errors)})")
        lines.append("")
        for e in errors:
            lines.append(f"- {e.get('precision')} {e.get('model')} {e.get('layer')} m={e.get('m')} "
                         f"{e.get('variant')}: {e.get('message')}")
        lines.append("")
    return "\n".join(lines)


def env_line(env):
    if not env:
        return ""
    smi = env.get("nvidia_smi") or {}
    clocks = (f"; nvidia-smi at start: SM {smi.get('clocks.sm')} (max {smi.get('clocks.max.sm')}), "
              f"memory {smi.get('clocks.mem')}, power limit {smi.get('power.limit')}") if smi else ""
    return (f"{env.get('gpu')} (sm_{env.get('sm')}, {env.get('sm_count')} SMs), driver {env.get('driver_version')}, "
            f"CUDA runtime {env.get('runtime_version')}, cuSPARSELt {env.get('cusparselt_version')}, "
            f"cuBLASLt {env.get('cublaslt_version')}, git {env.get('git_sha')}, {env.get('date')}{clocks}.")


def plot_lines(series, env, out_path, ylabel, title_fmt):
    """series: precision -> model -> variant -> [(m, y)]; one PNG with a panel per (precision, model)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot_bench: matplotlib not available, no PNG written", file=sys.stderr)
        return []
    panels = [(p, m) for p in sorted(series) for m in sorted(series[p])]
    if not panels:
        return []
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, (prec, model) in zip(axes[0], panels):
        for v in sorted(series[prec][model], key=variant_order):
            pts = sorted(series[prec][model][v])
            line, = ax.plot([m for m, _ in pts], [y for _, y in pts], marker="o", label=v)
            if v in IDEAL:
                ax.axhline(IDEAL[v], color=line.get_color(), linestyle=":", linewidth=1)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("m (tokens)")
        ax.set_ylabel(ylabel)
        ax.set_title(title_fmt.format(model=model, prec=prec))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    if env:
        fig.suptitle(f"{env.get('gpu')}, cuSPARSELt {env.get('cusparselt_version')}, git {env.get('git_sha')}",
                     fontsize=9)
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)
    plt.close(fig)
    return [out_path]


def layer_markdown(env, recs):
    """The layer suite's tables (see the module docstring)."""
    layers, models, offline, hosts = recs["layer"], recs["model"], recs["offline"], recs["host"]
    lines = ["# Full-layer results (`slidesparse bench --suite layer`)", "", env_line(env), ""]
    lines.append("Full layer = quant+lift + GEMM + scale epilogue (SlideLinear::forward on a warmed bucket), L2 flushed "
                 "before every call; speedup = dense layer time / variant time, the four linears summed; [brackets]: "
                 "the GEMM alone. dense = SlideLinear dense_only (cuBLASLt on K); P = slid pattern on K'; 2:4@P = a "
                 "native 2:4 layer of width K'(P); auto:P = P with its measured crossover (dense below it).")
    lines.append("")
    by_pm = collections.defaultdict(lambda: collections.defaultdict(dict))
    for r in models:
        by_pm[(r["precision"], r["model"])][r["m"]][r["variant"]] = r
    for (prec, model), per_m in sorted(by_pm.items()):
        variants = sorted({v for d in per_m.values() for v in d if v != "dense"}, key=variant_order)
        lines.append(f"## {prec} {model}: four linears")
        lines.append("")
        lines.append("| m | dense us | quant us | GEMM us | epilogue us | " + " | ".join(variants) + " |")
        lines.append("|---:|---:|---:|---:|---:|" + "---:|" * len(variants))
        for m in sorted(per_m):
            d = per_m[m].get("dense")
            if not d:
                continue
            cells = []
            for v in variants:
                r = per_m[m].get(v)
                if r is None:
                    cells.append("-")
                elif r.get("gemm_speedup_vs_dense") is not None:
                    cells.append(f"{r['speedup_vs_dense']:.2f} [{r['gemm_speedup_vs_dense']:.2f}]")
                else:
                    cells.append(f"{r['speedup_vs_dense']:.2f}")
            lines.append(f"| {m} | {d['full_us']:.1f} | {d['quant_us']:.1f} | {d['gemm_us']:.1f} | "
                         f"{d['epilogue_us']:.1f} | " + " | ".join(cells) + " |")
        lines.append("")

    native = [r for r in layers if r.get("native_kprime_of")]
    if native:
        lines.append("## Slid pattern vs native 2:4 on the same K' (acceptance: slid / native <= 1.05)")
        lines.append("")
        lines.append("Same GEMM shape and algorithm (shared plan cache); the slid layer quantizes + lifts X[m, K] -> "
                     "X'[m, K'], the native one quantizes X[m, K']. Four linears summed per m; per-layer maxima over "
                     "the sweep beside them (small m is noise-bound: ~20 us layers, 1 us = 5%).")
        lines.append("")
        lines.append("| precision | model | pattern | m | slid / native, full layer | GEMM only |")
        lines.append("|---|---|---|---:|---:|---:|")
        for r in sorted((r for r in models if r.get("native_kprime_of")),
                        key=lambda r: (r["precision"], r["model"], variant_order(r["native_kprime_of"]), r["m"])):
            full, gemm = r.get("slide_over_native"), r.get("slide_over_native_gemm")
            lines.append(f"| {r['precision']} | {r['model']} | {r['native_kprime_of']} | {r['m']} | "
                         f"{full:.3f} | {gemm:.3f} |" if full is not None and gemm is not None else
                         f"| {r['precision']} | {r['model']} | {r['native_kprime_of']} | {r['m']} | - | - |")
        lines.append("")
        lines.append("| precision | model | pattern | per-layer max, full (all m / m >= 1024) | per-layer max, GEMM "
                     "(all m / m >= 1024) | where (GEMM max) |")
        lines.append("|---|---|---|---:|---:|---|")
        groups = collections.defaultdict(list)
        for r in native:
            if r.get("slide_over_native") is not None and r.get("slide_over_native_gemm") is not None:
                groups[(r["precision"], r["model"], r["native_kprime_of"])].append(r)
        for (prec, model, pat), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], variant_order(kv[0][2]))):
            big = [r for r in rs if r["m"] >= 1024] or rs
            worst = max(rs, key=lambda r: r["slide_over_native_gemm"])
            lines.append(f"| {prec} | {model} | {pat} | {max(r['slide_over_native'] for r in rs):.3f} / "
                         f"{max(r['slide_over_native'] for r in big):.3f} | "
                         f"{max(r['slide_over_native_gemm'] for r in rs):.3f} / "
                         f"{max(r['slide_over_native_gemm'] for r in big):.3f} | {worst['layer']} m={worst['m']} |")
        lines.append("")

    autos = [r for r in layers if r["variant"].startswith("auto:")]
    if autos:
        # The interleaved (paired) measurement where the run made one, else the separate medians.
        def pr(r):
            return r.get("paired_speedup_vs_dense") or r.get("speedup_vs_dense")
        paired = any(r.get("paired_speedup_vs_dense") for r in autos)
        lines.append("## Small-m policy: SlideLinear with its measured crossover vs the dense layer (bar: >= 0.98)")
        lines.append("")
        if paired:
            pairwise = any(r.get("paired_reps") for r in autos)
            lines.append("Ratios from the policy layer and the dense layer timed interleaved, call by call "
                         "(`paired_speedup_vs_dense`" +
                         ("; per layer the median over call pairs of dense / policy, "
                          f"{min(r['paired_reps'] for r in autos if r.get('paired_reps'))}–"
                          f"{max(r['paired_reps'] for r in autos if r.get('paired_reps'))} pairs a point; four "
                          "linears: the per-layer medians summed)." if pairwise else ")."))
            lines.append("")
        ctl = [r for r in autos if r.get("control_twin_ratio")]
        if ctl:
            lo = min(ctl, key=lambda r: r["control_twin_ratio"])
            hi = max(ctl, key=lambda r: r["control_twin_ratio"])
            dense_pts = [r for r in autos if r.get("path") == "dense" and pr(r)]
            lines.append(f"Control (`control_twin_ratio`): a second dense layer built from the same weight with the "
                         f"same options, timed against the dense layer the same way, ranges "
                         f"{lo['control_twin_ratio']:.3f} ({lo['precision']} {lo['model']} {lo['layer']} m={lo['m']}) "
                         f"to {hi['control_twin_ratio']:.3f} over {len(ctl)} points: the harness's floor for two "
                         f"identical layers."
                         + (f" Where the policy takes the dense path ({len(dense_pts)} points) its ratio ranges "
                            f"{min(pr(r) for r in dense_pts):.3f} to {max(pr(r) for r in dense_pts):.3f}."
                            if dense_pts else ""))
            lines.append("")
        cross = {}
        for r in offline:
            if r["variant"].startswith("auto:"):
                cross[(r["precision"], r["model"], r["layer"], r["variant"])] = r.get("dense_below_m")
        dense = {(r["precision"], r["model"], r["layer"], r["m"]): r for r in layers if r["variant"] == "dense"}
        lines.append("| precision | model | policy | crossover per layer (dense below m) | four linears: min ratio (m) | "
                     "per layer: min ratio (layer, m, path) |")
        lines.append("|---|---|---|---|---:|---:|")
        groups = collections.defaultdict(list)
        for r in autos:
            groups[(r["precision"], r["model"], r["variant"])].append(r)
        for (prec, model, v), rs in sorted(groups.items()):
            cx = ", ".join(f"{l} {cross.get((prec, model, l, v))}" for l in LAYERS if (prec, model, l, v) in cross)
            sums = [r for r in models if r["precision"] == prec and r["model"] == model and r["variant"] == v]
            smin = min(sums, key=pr) if sums else None
            lmin = min((r for r in rs if pr(r) is not None), key=pr)
            lines.append(f"| {prec} | {model} | {v} | {cx} | "
                         + (f"{pr(smin):.3f} ({smin['m']})" if smin else "-")
                         + f" | {pr(lmin):.3f} ({lmin['layer']}, {lmin['m']}, {lmin['path']}) |")
        lines.append("")
        lines.append("Per layer and m (ratio, path taken):")
        lines.append("")
        ms = sorted({r["m"] for r in autos})
        lines.append("| precision | model | policy | layer | " + " | ".join(str(m) for m in ms) + " |")
        lines.append("|---|---|---|---|" + "---:|" * len(ms))
        for (prec, model, v), rs in sorted(groups.items()):
            for l in LAYERS:
                cells = []
                for m in ms:
                    r = next((x for x in rs if x["layer"] == l and x["m"] == m), None)
                    cells.append(f"{pr(r):.2f} {r['path'][0]}" if r and pr(r) else "-")
                if any(c != "-" for c in cells):
                    lines.append(f"| {prec} | {model} | {v} | {l} | " + " | ".join(cells) + " |")
        lines.append("")

    staged = [r for r in models if r.get("copy_epilogue_us") is not None and r["variant"] in ("dense", "6:8")]
    if staged:
        lines.append("## The memory-bound stages against a device copy of their bytes (four linears)")
        lines.append("")
        lines.append("copy = cudaMemcpyAsync D2D moving the same bytes (read + written), timed like the stages in "
                     "the same run. Epilogue bytes = m*n*(4 + 2) (i32/f32 accumulator read, bf16 written); quant "
                     "bytes = m*K*2 + m*K'*1 + m*4. target: full <= 1.05 x (GEMM + copy_quant).")
        lines.append("")
        lines.append("| precision | model | variant | m | GEMM us | epilogue us | copy of its bytes us | epilogue / copy "
                     "| epilogue / GEMM | quant us | copy us | full / (GEMM + copy_quant) |")
        lines.append("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in sorted(staged, key=lambda r: (r["precision"], r["model"], variant_order(r["variant"]), r["m"])):
            lines.append(f"| {r['precision']} | {r['model']} | {r['variant']} | {r['m']} | {r['gemm_us']:.1f} | "
                         f"{r['epilogue_us']:.1f} | {r['copy_epilogue_us']:.1f} | "
                         f"{r['epilogue_us'] / r['copy_epilogue_us']:.2f} | {r['epilogue_us'] / r['gemm_us']:.2f} | "
                         f"{r['quant_us']:.1f} | {r['copy_quant_us']:.1f} | {r['full_over_gemm_plus_quant_bound']:.3f} |")
        lines.append("")

    if hosts:
        def stats(key):
            v = sorted(h[key] for h in hosts)
            return f"{v[len(v) // 2]:.1f} | {v[0]:.1f} | {v[-1]:.1f}"
        lines.append(f"## Host cost of one forward() (m = {hosts[0]['m']}, warmed bucket)")
        lines.append("")
        lines.append(f"{len(hosts)} (precision, layer, variant) records; graph replay output identical to the eager "
                     f"forward in {sum(1 for h in hosts if h.get('graph_identical'))} of them.")
        lines.append("")
        lines.append("| | median | min | max |")
        lines.append("|---|---:|---:|---:|")
        lines.append(f"| forward() issued, us/call | {stats('host_us')} |")
        lines.append(f"| cudaGraphLaunch of a captured forward, us/call | {stats('graph_host_us')} |")
        lines.append(f"| graph replay, GPU us (events) | {stats('graph_gpu_us')} |")
        lines.append(f"| eager forward, GPU us (events) | {stats('eager_gpu_us')} |")
        lines.append("")
    errors = recs["error"]
    if errors:
        lines.append(f"## Errors ({len(errors)})")
        lines.append("")
        for e in errors:
            lines.append(f"- {e.get('precision')} {e.get('model')} {e.get('layer')} m={e.get('m')} "
                         f"{e.get('variant')}: {e.get('message')}")
        lines.append("")
    return "\n".join(lines)


def quant_markdown(env, recs):
    rows = recs["quant"]
    lines = ["# Fused quant (+lift) vs a device copy of the same bytes (`slidesparse bench --suite quant`)", "",
             env_line(env), "",
             "| m | k | k_out | pattern | dtype | us | GB/s | copy GB/s | fraction of copy | verified |",
             "|---:|---:|---:|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['m']} | {r['k']} | {r['k_out']} | {r['pattern']} | {r['dtype']} | {r['time_us']:.1f} | "
                     f"{r['gbps']:.0f} | {r['copy_gbps']:.0f} | {r['fraction_of_copy']:.3f} | {r['verified']} |")
    big = [r for r in rows if r["m"] * r["k"] >= 32 * 2**20]
    if big:
        w = min(big, key=lambda r: r["fraction_of_copy"])
        lines += ["", f"Worst fraction of copy at m*k >= 32M: {w['fraction_of_copy']:.3f} (m {w['m']}, k {w['k']}, "
                      f"{w['pattern']} {w['dtype']}); acceptance >= 0.85."]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("jsonl", nargs="+", help="`slidesparse bench --out` files")
    ap.add_argument("--out-dir", default=None, help="where to write the PNGs and tables "
                    "(default: the first JSONL's directory)")
    ap.add_argument("--prefix", default="", help="file name prefix of everything written (e.g. layer_h100_)")
    args = ap.parse_args()
    out_dir = args.out_dir or os.path.dirname(os.path.abspath(args.jsonl[0]))
    os.makedirs(out_dir, exist_ok=True)
    env, recs = load(args.jsonl)
    written = []

    def write(name, text):
        path = os.path.join(out_dir, args.prefix + name)
        with open(path, "w") as f:
            f.write(text + "\n")
        print(text)
        written.append(path)

    if recs["gemm"]:
        times = index(recs["gemm"])
        speedups = model_speedups(times)
        write("speedups.md", markdown(env, recs["gemm"], recs["error"], times, speedups))
        series = collections.defaultdict(dict)
        for (prec, model), per_v in speedups.items():
            series[prec][model] = per_v
        for prec in sorted(series):
            written += plot_lines({prec: series[prec]}, env, os.path.join(out_dir, f"{args.prefix}speedup_{prec}.png"),
                                  "speedup vs cuBLASLt dense", "{model}, {prec}, four linear layers (GEMM only)")
    if recs["layer"]:
        write("layer.md", layer_markdown(env, recs))
        series = collections.defaultdict(lambda: collections.defaultdict(lambda: collections.defaultdict(list)))
        for r in recs["model"]:
            if r["variant"] != "dense":
                series[r["precision"]][r["model"]][r["variant"]].append((r["m"], r["speedup_vs_dense"]))
        for prec in sorted(series):
            written += plot_lines({prec: series[prec]}, env, os.path.join(out_dir, f"{args.prefix}layer_{prec}.png"),
                                  "full-layer speedup vs dense layer", "{model}, {prec}, four linears (full layer)")
    if recs["quant"]:
        write("quant.md", quant_markdown(env, recs))
    if not written:
        sys.exit(f"{', '.join(args.jsonl)}: no gemm, layer or quant records")
    for p in written:
        print(f"plot_bench: wrote {p}", file=sys.stderr)


if __name__ == "__main__":
    main()
