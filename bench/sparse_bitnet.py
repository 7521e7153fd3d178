#!/usr/bin/env python3
"""Sparse-BitNet experiment (issue 7 item 3): does a ternary model lose less to N:M sparsity than a
bf16 one? A small byte-level causal LM is trained from scratch six times -- bf16 / ternary x dense /
6:8 / 2:4 -- with the same initial weights, the same data order and the same hyperparameters, and
evaluated on held-out text.

  data      WikiText-2 raw, the test file only (the one we have): bytes [0, 90%) train, [90%, 100%)
            evaluation (disjoint). Tokens are bytes (vocab 256), so losses are nats per byte; we
            report per-byte perplexity exp(loss) and bits per byte loss / ln 2.
  model     GPT-style: learned positions, pre-LayerNorm blocks (causal SDPA attention, GELU MLP 4x),
            every block linear (qkv, proj, fc1, fc2) a SparseBitLinear; embeddings and head dense.
  variants  bf16 (weights and activations full precision, bf16 GEMMs) or ternary (W1.58: absmean
            ternary weights, per-token absmax INT8 activations, STE), each dense or with a dynamic
            6:8 / 2:4 mask recomputed every forward from the latent |w| (STE to pruned positions).
  training  AdamW (0.9, 0.95), weight decay 0.1 on matrices, linear warm-up then cosine to 10%,
            gradient clipping 1.0, bf16 autocast; fixed batch/steps; batch start offsets drawn once
            from --seed and shared by every variant; the model is initialised from --seed for each.
  eval      every byte of the held-out part predicted once: non-overlapping windows of --ctx.

  python3 bench/sparse_bitnet.py --data wiki.test.raw --out-json r.json --out-png r.png --out-md r.md
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
sys.path.append(os.path.join(here, "..", "python"))  # after PYTHONPATH (a build with the library)
sys.path.insert(0, here)
from slidesparse.sparse_bitnet import SparseBitLinear, flip_rates, ternary_quantize  # noqa: E402
from sparse_bitnet_report import plot, table  # noqa: E402

VARIANTS = {  # name: (ternary, pattern)
    "bf16-dense": (False, None), "bf16-6:8": (False, "6:8"), "bf16-2:4": (False, "2:4"),
    "ternary-dense": (True, None), "ternary-6:8": (True, "6:8"), "ternary-2:4": (True, "2:4"),
}


class Block(nn.Module):
    def __init__(self, d, heads, lin, dropout):
        super().__init__()
        self.heads = heads
        self.drop = nn.Dropout(dropout)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = lin(d, 3 * d), lin(d, d)
        self.fc1, self.fc2 = lin(d, 4 * d), lin(4 * d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, t, d)))
        return x + self.drop(self.fc2(F.gelu(self.fc1(self.ln2(x)))))


class ByteLM(nn.Module):
    def __init__(self, layers, d, heads, ctx, ternary, pattern, dropout):
        super().__init__()
        lin = lambda i, o: SparseBitLinear(i, o, pattern=pattern, ternary=ternary)  # noqa: E731
        self.tok, self.pos = nn.Embedding(256, d), nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList(Block(d, heads, lin, dropout) for _ in range(layers))
        self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, 256, bias=False)
        for m in self.modules():
            if isinstance(m, (nn.Embedding, nn.Linear)):
                nn.init.normal_(m.weight, std=0.02)
            elif isinstance(m, SparseBitLinear):
                nn.init.normal_(m.weight, std=0.02)

    def forward(self, idx):
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        for b in self.blocks:
            x = b(x)
        return self.head(self.ln_f(x))


def lr_at(step, steps, warmup, lr):
    if step < warmup:
        return lr * (step + 1) / warmup
    p = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


@torch.no_grad()
def evaluate(model, data, ctx, batch):
    model.eval()
    nwin = (len(data) - 1) // ctx
    x = data[: nwin * ctx].view(nwin, ctx)
    y = data[1: nwin * ctx + 1].view(nwin, ctx)
    tot = torch.zeros((), dtype=torch.float64, device=data.device)
    for i in range(0, nwin, batch):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(x[i:i + batch])
        tot += F.cross_entropy(logits.float().reshape(-1, 256), y[i:i + batch].reshape(-1), reduction="sum").double()
    model.train()
    return float(tot) / (nwin * ctx), nwin * ctx


def ternary_stats(model):
    """Fraction of zeros in ternary(W) over all block linears (before masks), and the fraction of
    6:8 / 2:4 groups already within budget (no pruning needed)."""
    zeros = total = 0
    ok = {"6:8": [0, 0], "2:4": [0, 0]}
    for m in model.modules():
        if isinstance(m, SparseBitLinear):
            q = ternary_quantize(m.weight.detach().float()) != 0
            zeros += int((~q).sum())
            total += q.numel()
            for name, (keep, group) in (("6:8", (6, 8)), ("2:4", (2, 4))):
                g = q.view(q.shape[0], -1, group).sum(-1)
                ok[name][0] += int((g <= keep).sum())
                ok[name][1] += g.numel()
    return {"ternary_zero_fraction": zeros / total,
            "groups_within_budget": {k: v[0] / v[1] for k, v in ok.items()}}


def run_variant(name, seed, args, train, evald, starts, dev):
    ternary, pattern = VARIANTS[name]
    torch.manual_seed(seed)
    model = ByteLM(args.layers, args.d, args.heads, args.ctx, ternary, pattern, args.dropout).to(dev)
    decay = [p for p in model.parameters() if p.dim() == 2]
    other = [p for p in model.parameters() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), fused=True)
    offs = torch.arange(args.ctx + 1, device=dev)
    curve, evals, flips = [], [], []
    acc = torch.zeros((), device=dev)
    train_s = 0.0
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for step in range(args.steps):
        for gp in opt.param_groups:
            gp["lr"] = lr_at(step, args.steps, args.warmup, args.lr)
        seq = train[starts[step].unsqueeze(1) + offs]
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(seq[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, 256), seq[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        acc += loss.detach()
        last = step + 1 == args.steps
        if (step + 1) % args.log_every == 0 or last:
            n = (step % args.log_every) + 1
            mean = float(acc) / n
            acc.zero_()
            if not math.isfinite(mean):
                raise RuntimeError(f"{name}: training loss is {mean} at step {step + 1}")
            tokens = (step + 1) * args.batch * args.ctx
            curve.append({"step": step + 1, "tokens": tokens, "train_loss": mean})
            if pattern is not None:
                fr = list(flip_rates(model).values())
                flips.append({"step": step + 1, "mean": sum(fr) / len(fr), "max": max(fr)})
        if (step + 1) % args.eval_every == 0 or last:
            torch.cuda.synchronize()
            train_s += time.perf_counter() - t0
            ev, nbytes = evaluate(model, evald, args.ctx, args.eval_batch)
            evals.append({"step": step + 1, "tokens": (step + 1) * args.batch * args.ctx, "eval_loss": ev})
            print(f"[{name}] step {step + 1}/{args.steps} train {curve[-1]['train_loss']:.4f} eval {ev:.4f}"
                  + (f" flip {flips[-1]['mean']:.2e}" if flips else ""), flush=True)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
    final = evals[-1]["eval_loss"]
    out = {
        "variant": name, "seed": seed, "ternary": ternary, "pattern": pattern or "dense",
        "train_curve": curve, "eval_curve": evals, "flip_rate": flips,
        "final_eval_loss_nats_per_byte": final, "final_eval_bits_per_byte": final / math.log(2),
        "final_eval_ppl_per_byte": math.exp(final), "eval_bytes": nbytes,
        "best_eval_loss_nats_per_byte": min(e["eval_loss"] for e in evals),
        "train_tokens": args.steps * args.batch * args.ctx, "train_seconds": train_s,
        "train_tokens_per_s": args.steps * args.batch * args.ctx / train_s,
        "params_block_linears": sum(m.weight.numel() for m in model.modules() if isinstance(m, SparseBitLinear)),
        "params_total": sum(p.numel() for p in model.parameters()),
    }
    if ternary:
        out.update(ternary_stats(model))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="wiki.test.raw")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--warmup", type=int, default=60)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seeds", default="0", help="comma-separated; each seed: init and data order")
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--eval-batch", type=int, default=128)
    ap.add_argument("--out-json")
    ap.add_argument("--out-png")
    ap.add_argument("--out-md")
    args = ap.parse_args()
    names = args.variants.split(",")
    for n in names:
        if n not in VARIANTS:
            sys.exit(f"unknown variant {n!r}; choose from {', '.join(VARIANTS)}")
    if not torch.cuda.is_available():
        sys.exit("sparse_bitnet.py needs a CUDA device")
    dev = torch.device("cuda")
    raw = open(args.data, "rb").read()
    split = int(len(raw) * 0.9)
    data = torch.frombuffer(bytearray(raw), dtype=torch.uint8).long().to(dev)
    train, evald = data[:split], data[split:]
    t_all = time.perf_counter()
    results = []
    for seed in [int(v) for v in args.seeds.split(",")]:
        g = torch.Generator().manual_seed(seed)
        starts = torch.randint(0, split - args.ctx - 1, (args.steps, args.batch), generator=g).to(dev)
        results += [run_variant(n, seed, args, train, evald, starts, dev) for n in names]
    env = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "python": platform.python_version(), "wall_seconds_total": time.perf_counter() - t_all}
    env["git_sha"] = os.environ.get("GIT_SHA", "")  # a shipped copy may sit inside another repository
    if not env["git_sha"]:
        try:
            env["git_sha"] = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True,
                                            text=True).stdout.strip()
        except OSError:
            pass
    doc = {"config": {k: v for k, v in vars(args).items() if not k.startswith("out")},
           "data": {"file": os.path.basename(args.data), "bytes": len(raw), "train_bytes": split,
                    "eval_bytes": len(raw) - split, "split": "train = bytes [0, 90%), eval = bytes [90%, 100%)",
                    "tokenization": "bytes (vocab 256)"},
           "env": env, "results": results}
    md = table(results)
    print(md)
    if args.out_json:
        with open(args.out_json, "w") as f:
            json.dump(doc, f, indent=1)
    if args.out_md:
        with open(args.out_md, "w") as f:
            f.write(md)
    if args.out_png:
        plot(results, args.out_png)


if __name__ == "__main__":
    main()
