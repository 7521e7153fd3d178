#!/usr/bin/env python3
"""Markdown tables of a bench/e2e_prefill.py result: tokens/s per variant and m, and the ratios.
  python3 bench/e2e_table.py bench/results/e2e_prefill_h100.json > bench/results/e2e_prefill_h100.md"""
import json
import sys


def main():
    d = json.load(open(sys.argv[1]))
    ms = d["ms"]
    variants = []
    for r in d["records"]:
        if r["variant"] not in variants:
            variants.append(r["variant"])
    tps = {(r["variant"], r["m"]): r["tokens_per_s"] for r in d["records"]}
    cfg = d["config"]
    env = d["env"]
    print(f"# End-to-end prefill, {d['model']}\n")
    print(f"{env['gpu']}, torch {env['torch']} (CUDA {env['cuda']}), transformers {env.get('transformers')}; "
          f"{cfg['num_hidden_layers']} layers of Qwen2.5-7B shape (hidden {cfg['hidden_size']}, intermediate "
          f"{cfg['intermediate_size']}, {cfg['num_attention_heads']} heads / {cfg['num_key_value_heads']} KV heads, "
          f"vocab {cfg['vocab_size']}); BF16 activations, prompts of {d['seq_len']} tokens (batch = m / "
          f"{d['seq_len']}), attention {d['attn']}, LM head on the last token of each prompt; median of "
          f"{d['repeats']} timed forwards after {d['warmup']} warm-up (and one plan-creating call); GEMM algorithms "
          f"searched with {d.get('search_iters')} launches per candidate. Command: `{d['command']}`\n")
    print("## Tokens per second (thousands)\n")
    print("| variant | " + " | ".join(f"m={m}" for m in ms) + " |")
    print("|---|" + "---:|" * len(ms))
    for v in variants:
        print(f"| {v} | " + " | ".join(f"{tps[(v, m)] / 1e3:.1f}" if (v, m) in tps else "–" for m in ms) + " |")
    print("\n## Ratios (tokens/s over the dense baseline of the same precision, same run)\n")
    print("| ratio | " + " | ".join(f"m={m}" for m in ms) + " |")
    print("|---|" + "---:|" * len(ms))
    for key, row in d["ratios"].items():
        vals = [row.get(str(m), row.get(m)) for m in ms]
        if all(v is None for v in vals):
            continue
        name = f"**{key}**" if key == "6:8-fp8/dense-fp8" else key
        print(f"| {name} | " + " | ".join(f"{v:.3f}" if v is not None else "–" for v in vals) + " |")


if __name__ == "__main__":
    main()
