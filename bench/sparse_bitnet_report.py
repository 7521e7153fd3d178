#!/usr/bin/env python3
"""Tables and plot of bench/sparse_bitnet.py results (torch-free, so that a committed JSON can be
re-rendered anywhere):  python3 bench/sparse_bitnet_report.py RESULT.json [--md OUT.md] [--png OUT.png]
"""
from __future__ import annotations

import argparse
import json
import math


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    colors = {"dense": "tab:blue", "6:8": "tab:orange", "2:4": "tab:red"}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    first = results[0]["seed"]
    for r in [r for r in results if r["seed"] == first]:
        style = "-" if r["ternary"] else "--"
        lab = r["variant"]
        axes[0].plot([c["tokens"] / 1e6 for c in r["train_curve"]], [c["train_loss"] for c in r["train_curve"]],
                     style, color=colors[r["pattern"]], label=lab, lw=1.2)
        axes[1].plot([c["tokens"] / 1e6 for c in r["eval_curve"]], [c["eval_loss"] for c in r["eval_curve"]],
                     style, marker="o", ms=3, color=colors[r["pattern"]], label=lab, lw=1.2)
    for ax, t in zip(axes, ("train loss (nats/byte)", "held-out loss (nats/byte)")):
        ax.set_xlabel("training tokens (M bytes)")
        ax.set_title(t)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    lo = min(c["eval_loss"] for r in results for c in r["eval_curve"])
    axes[1].set_ylim(lo - 0.05, lo + 1.0)
    axes[0].set_ylim(lo - 0.3, lo + 1.5)
    fig.suptitle("Byte-level LM on WikiText-2 (train: first 90% of wiki.test.raw, eval: last 10%); "
                 f"solid ternary W1.58A8, dashed bf16; seed {first}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def table(results):
    """One row per variant: eval loss mean over seeds (min..max), the paired difference to the same
    precision's dense run of the same seed, and the per-byte perplexity ratio."""
    seeds = sorted({r["seed"] for r in results})
    by = {(r["variant"], r["seed"]): r for r in results}
    names = list(dict.fromkeys(r["variant"] for r in results))
    lines = [f"seeds: {', '.join(map(str, seeds))}; loss = held-out nats/byte (mean over seeds, min..max)", "",
             "| variant | eval loss | bits/byte | ppl/byte | vs own dense (loss) | vs own dense (ppl ratio) | "
             "best eval loss (step) | best vs own dense | train tokens | train s | last flip rate | ternary zeros |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    for n in names:
        rs = [by[(n, s)] for s in seeds if (n, s) in by]
        loss = [r["final_eval_loss_nats_per_byte"] for r in rs]
        rng = f" ({min(loss):.4f}..{max(loss):.4f})" if len(rs) > 1 else ""
        dn = ("ternary" if rs[0]["ternary"] else "bf16") + "-dense"
        diffs = [r["final_eval_loss_nats_per_byte"] - by[(dn, r["seed"])]["final_eval_loss_nats_per_byte"]
                 for r in rs if (dn, r["seed"]) in by]
        rel = rat = ""
        if rs[0]["pattern"] != "dense" and diffs:
            rel = f"{mean(diffs):+.4f}" + (f" ({min(diffs):+.4f}..{max(diffs):+.4f})" if len(diffs) > 1 else "")
            rat = f"x{math.exp(mean(diffs)):.4f}"
        best = [min(e["eval_loss"] for e in r["eval_curve"]) for r in rs]
        steps = [min(r["eval_curve"], key=lambda e: e["eval_loss"])["step"] for r in rs]
        bdiffs = [b - min(e["eval_loss"] for e in by[(dn, r["seed"])]["eval_curve"])
                  for b, r in zip(best, rs) if (dn, r["seed"]) in by]
        brel = f"{mean(bdiffs):+.4f}" if rs[0]["pattern"] != "dense" and bdiffs else ""
        bcol = f"{mean(best):.4f} ({'/'.join(map(str, steps))})"
        fl = f"{mean([r['flip_rate'][-1]['mean'] for r in rs]):.2e}" if rs[0]["flip_rate"] else ""
        tz = f"{mean([r['ternary_zero_fraction'] for r in rs]):.3f}" if rs[0]["ternary"] else ""
        lines.append(f"| {n} | {mean(loss):.4f}{rng} | {mean(loss) / math.log(2):.4f} | {math.exp(mean(loss)):.4f} | "
                     f"{rel} | {rat} | {bcol} | {brel} | {rs[0]['train_tokens']} | {mean([r['train_seconds'] for r in rs]):.1f} | "
                     f"{fl} | {tz} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("json")
    ap.add_argument("--md")
    ap.add_argument("--png")
    a = ap.parse_args()
    with open(a.json) as f:
        results = json.load(f)["results"]
    md = table(results)
    print(md)
    if a.md:
        with open(a.md, "w") as f:
            f.write(md)
    if a.png:
        plot(results, a.png)


if __name__ == "__main__":
    main()
