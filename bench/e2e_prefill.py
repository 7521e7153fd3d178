#!/usr/bin/env python3
"""End-to-end prefill throughput of a Qwen2.5-7B-shaped causal LM (Hugging Face transformers,
built from its config with random weights; nothing downloaded), BF16 activations.

Variants (all on one model instance, patched and unpatched in turn, timed in the same run):
  dense-bf16           plain HF (torch's cuBLAS bf16 linears)
  dense-fp8, dense-int8  our dense path: per-token x per-channel W8A8 through SlideLinear(pattern="dense")
  4:6, 6:8, 8:10 x fp8/int8   slid onto 2:4 sparse tensor cores (cuSPARSELt)
  2:4 x fp8/int8       native 2:4 (same code path, N = 2: no lifting)
Only the 7 projections per layer are replaced; attention (SDPA), norms, embeddings are HF's.
m tokens per forward = batch x seq_len prompts (default prompts of 1024 tokens). The LM head runs
on the last token of each prompt (what a serving prefill needs). Timing: CUDA events around one
forward, warm-up first, median over repeats. tokens/s = m / median time.

  python3 bench/e2e_prefill.py --layers 28 --out bench/results/e2e_prefill_h100.json
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import torch

QWEN25_7B = dict(hidden_size=3584, intermediate_size=18944, num_attention_heads=28, num_key_value_heads=4,
                 vocab_size=152064, max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
                 tie_word_embeddings=False, num_hidden_layers=28)

VARIANTS = ["dense-bf16", "dense-fp8", "6:8-fp8", "dense-int8", "6:8-int8", "2:4-fp8", "2:4-int8", "4:6-fp8",
            "8:10-fp8", "4:6-int8", "8:10-int8"]


def build_model(layers, attn):
    import transformers
    cfg = transformers.Qwen2Config(**{**QWEN25_7B, "num_hidden_layers": layers})
    cfg._attn_implementation = attn
    torch.manual_seed(0)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = transformers.Qwen2ForCausalLM(cfg)
    torch.set_default_dtype(prev)
    return model.eval(), cfg


def prefill(model, ids):
    h = model.model(input_ids=ids, use_cache=False).last_hidden_state
    return model.lm_head(h[:, -1, :])


def time_forward(model, ids, warmup, repeats):
    for _ in range(warmup):
        prefill(model, ids)
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        prefill(model, ids)
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=28, help="num_hidden_layers (Qwen2.5-7B: 28)")
    ap.add_argument("--ms", default="1024,2048,4096,8192,16384,32768", help="tokens per forward")
    ap.add_argument("--seq-len", type=int, default=1024, help="tokens per prompt (batch = m / seq_len)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--attn", default="sdpa")
    ap.add_argument("--search-iters", type=int, default=10,
                    help="timed launches per candidate GEMM algorithm when plans are made (0: library defaults)")
    ap.add_argument("--out", required=True, help="JSON output")
    ap.add_argument("--plot", help="PNG output (matplotlib)")
    ap.add_argument("--time-budget-s", type=float, default=0, help="skip remaining variants past this (0: none)")
    args = ap.parse_args()

    import slidesparse
    ms = [int(v) for v in args.ms.split(",")]
    for m in ms:
        if m % args.seq_len and m > args.seq_len:
            sys.exit(f"m = {m} is not a multiple of --seq-len {args.seq_len}")
    variants = args.variants.split(",")
    for v in variants:
        if v not in VARIANTS:
            sys.exit(f"unknown variant {v!r}; known: {', '.join(VARIANTS)}")
    t_start = time.time()
    model, cfg = build_model(args.layers, args.attn)
    gen = torch.Generator(device="cuda").manual_seed(1)
    inputs = {m: torch.randint(0, cfg.vocab_size, (max(1, m // args.seq_len), min(m, args.seq_len)), device="cuda",
                               generator=gen) for m in ms}
    env = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "python": platform.python_version(), "host": platform.node()}
    try:
        import transformers
        env["transformers"] = transformers.__version__
        env["git_sha"] = os.environ.get("SLIDESPARSE_GIT_SHA") or subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                                        cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or None
    except Exception:  # noqa: BLE001 - environment record only
        pass
    records = []
    with torch.no_grad():
        for v in variants:
            if args.time_budget_s and time.time() - t_start > args.time_budget_s:
                print(f"[e2e] time budget reached: skipping {v}", flush=True)
                continue
            t0 = time.time()
            originals = None
            if v != "dense-bf16":
                pattern, precision = v.split("-")
                # dense_below_m=0: the slid path at every m (all m here are prefill-sized).
                originals = slidesparse.patch_model(model, pattern, precision, dense_below_m=0,
                                                    search=args.search_iters)
            build_s = time.time() - t0
            for m in ms:
                t1 = time.time()
                prefill(model, inputs[m])  # creates (and searches) each layer's GEMM plans for m
                torch.cuda.synchronize()
                plan_s = time.time() - t1
                times = time_forward(model, inputs[m], args.warmup, args.repeats)
                # One m's plans (and their compressed weights) at a time: a full 28-layer model would
                # otherwise hold a compressed copy of every weight per m.
                for mod in slidesparse.patch.slide_modules(model):
                    mod.release_plans()
                med = statistics.median(times)
                rec = {"variant": v, "m": m, "batch": inputs[m].shape[0], "seq_len": inputs[m].shape[1],
                       "median_s": med, "times_s": times, "tokens_per_s": m / med, "build_s": build_s,
                       "plan_s": plan_s, "max_mem_gib": torch.cuda.max_memory_allocated() / 2 ** 30}
                records.append(rec)
                print(f"[e2e] {v:11s} m={m:6d} {m / med:12.0f} tok/s  median {med * 1e3:8.2f} ms  "
                      f"(build {build_s:.1f} s, first call {plan_s:.1f} s)", flush=True)
            if originals is not None:
                slidesparse.unpatch_model(model, originals)
                del originals
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def tps(v, m):
        for r in records:
            if r["variant"] == v and r["m"] == m:
                return r["tokens_per_s"]
        return None

    ratios = {}
    for prec in ("fp8", "int8"):
        for pat in ("6:8", "4:6", "8:10", "2:4"):
            key = f"{pat}-{prec}/dense-{prec}"
            ratios[key] = {m: (tps(f"{pat}-{prec}", m) / tps(f"dense-{prec}", m)
                               if tps(f"{pat}-{prec}", m) and tps(f"dense-{prec}", m) else None) for m in ms}
        ratios[f"dense-{prec}/dense-bf16"] = {m: (tps(f"dense-{prec}", m) / tps("dense-bf16", m)
                                                  if tps(f"dense-{prec}", m) and tps("dense-bf16", m) else None)
                                              for m in ms}
    out = {"benchmark": "e2e_prefill", "model": "Qwen2.5-7B-shaped (random weights, from config)",
           "config": {**QWEN25_7B, "num_hidden_layers": args.layers}, "seq_len": args.seq_len, "ms": ms,
           "repeats": args.repeats, "warmup": args.warmup, "attn": args.attn, "search_iters": args.search_iters, "env": env, "command": " ".join(sys.argv),
           "records": records, "ratios": ratios, "wall_s": time.time() - t_start}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print("[e2e] FP8 6:8 / FP8 dense:", {m: (round(r, 3) if r else None) for m, r in ratios["6:8-fp8/dense-fp8"].items()})
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
        for ax, prec in zip(axes, ("fp8", "int8")):
            for v in ["dense-bf16", f"dense-{prec}", f"2:4-{prec}", f"4:6-{prec}", f"6:8-{prec}", f"8:10-{prec}"]:
                xs = [m for m in ms if tps(v, m)]
                if xs:
                    ax.plot(xs, [tps(v, m) / 1e3 for m in xs], marker="o", label=v,
                            linestyle="--" if v.startswith("dense") else "-")
            ax.set_xscale("log", base=2)
            ax.set_xlabel("tokens per forward (m)")
            ax.set_ylabel("prefill throughput (k tokens/s)")
            ax.set_title(f"{prec.upper()} W8A8, Qwen2.5-7B shapes, {args.layers} layers, {env['gpu']}", fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)


if __name__ == "__main__":
    main()
