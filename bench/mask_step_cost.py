#!/usr/bin/env python3
"""Per-step cost of dynamic N:M masks on the sparse INT8 path (issue 7, third acceptance item).

With masks recomputed every step, running the forward GEMM on the slid 2:4 sparse path means
redoing, once per step and layer, what is otherwise offline:
  mask      slidesparse::nm_mask on the f32 latent weight (the CUDA kernel, src/kernels/nm_mask.cu)
  quantize  ternary codes of the masked weight, int8 (absmean scale of the unmasked weight): torch
  slide     greedy placement of docs/FORMAT.md section 4 into N-1 windows per group: torch
            (elementwise over [n, groups], one pass per window lane; 2:4 needs only the k' padding)
  compress  cuSPARSELt compression of the slid int8 weight: torch._cslt_compress (torch's bundled
            cuSPARSELt; SlideLinear itself compresses on the host-side setup path)
and weighs it against what the sparse path saves per forward: the same layer (slidesparse
SlideLinear, int8, same masked weight) timed on its dense path (quant + dense INT8 GEMM +
epilogue) and its sparse path (quant + lift + slid 2:4 GEMM + epilogue), at the tokens of one
step. Only the forward GEMM can use the sparse weight: the backward GEMMs (dX = dY W, dW = dY^T X)
are dense whatever the mask. Times: CUDA events, median of --reps after warm-up, one layer at a time.

  python3 bench/mask_step_cost.py --out mask_step_cost.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.append(os.path.join(here, "..", "python"))  # after PYTHONPATH (a build with the library)
try:  # --render needs none of these
    import torch
    import slidesparse
    from slidesparse import _lib, ops
    from slidesparse.nn import SlideLinear
except ImportError as e:
    torch = None
    _IMPORT_ERROR = e

EXPERIMENT = [("qkv", 1152, 384), ("proj", 384, 384), ("fc1", 1536, 384), ("fc2", 384, 1536)]
QWEN7B = [("qkv", 4608, 3584), ("o", 3584, 3584), ("gate_up", 37888, 3584), ("down", 3584, 18944)]


def timed(fn, reps, warmup=3):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b) * 1000.0)
    return statistics.median(ts)


def slide_torch(q: torch.Tensor, n_pat: int) -> torch.Tensor:
    """docs/FORMAT.md section 4, greedy placement, for q [n, k] within (2N-2):2N -> [n, k']."""
    n, k = q.shape
    g2 = 2 * n_pat
    groups = -(-k // g2)
    kp = slidesparse.slide_k(n_pat, k)
    if n_pat == 2:
        return torch.nn.functional.pad(q, (0, kp - k))
    qp = torch.nn.functional.pad(q, (0, groups * g2 - k)).view(n, groups, g2)
    nz = qp != 0
    placed = torch.zeros_like(nz)
    out = torch.zeros((n, groups, n_pat - 1, 4), dtype=q.dtype, device=q.device)
    zero = torch.zeros((), dtype=q.dtype, device=q.device)
    for w in range(n_pat - 1):
        cnt = torch.zeros((n, groups), dtype=torch.int8, device=q.device)
        for lane in range(4):
            o = 2 * w + lane
            take = nz[..., o] & ~placed[..., o] & (cnt < 2)
            out[..., w, lane] = torch.where(take, qp[..., o], zero)
            placed[..., o] |= take
            cnt += take
    out = out.view(n, groups * 4 * (n_pat - 1))
    return torch.nn.functional.pad(out, (0, kp - out.shape[1]))


def lift_index(n_pat, k, kp, device):
    """k(k') of docs/FORMAT.md section 4, -1 for padding."""
    src = torch.full((kp,), -1, dtype=torch.long)
    if n_pat == 2:
        src[:k] = torch.arange(k)
        return src.to(device)
    for c in range(kp):
        g, r = divmod(c, 4 * (n_pat - 1))
        w, lane = divmod(r, 4)
        j = g * 2 * n_pat + 2 * w + lane
        if g < -(-k // (2 * n_pat)) and j < k:
            src[c] = j
    return src.to(device)


def check_slide(dev):
    """The torch slide is exact: X' W'^T == X W^T (float64) and every window is 2:4."""
    for n_pat, keep, group in ((4, 6, 8), (3, 4, 6), (2, 2, 4)):
        n, k = 48, 8 * 13 + 4 if n_pat != 3 else 6 * 11 + 2
        w = torch.randn(n, k, device=dev)
        mask = torch.ops.slidesparse.nm_mask(w, keep, group)
        q = torch.where(mask, torch.randint(-3, 4, (n, k), device=dev), 0).to(torch.int8)
        ws = slide_torch(q, n_pat)
        kp = ws.shape[1]
        assert int((ws != 0).view(n, -1, 4).sum(-1).max()) <= 2, "slid window holds more than 2 nonzeros"
        assert int((ws != 0).sum()) == int((q != 0).sum()), "slide lost or duplicated a nonzero"
        x = torch.randint(-5, 6, (7, k), device=dev).double()
        src = lift_index(n_pat, k, kp, dev)
        xl = torch.where(src >= 0, x[:, src.clamp_min(0)], torch.zeros((), dtype=torch.float64, device=dev))
        assert torch.equal(xl @ ws.double().t(), x @ q.double().t()), f"slide of {keep}:{group} not exact"


def measure(shape_set, name, n, k, n_pat, ms, reps, dev, search):
    keep, group = 2 * n_pat - 2, 2 * n_pat
    torch.manual_seed(0)
    w = torch.randn(n, k, device=dev) * 0.02
    row = {"set": shape_set, "layer": name, "n": n, "k": k, "pattern": f"{keep}:{group}",
           "k_slid": slidesparse.slide_k(n_pat, k)}

    def mask_fn():
        return torch.ops.slidesparse.nm_mask(w, keep, group, False)

    mask = mask_fn()

    def quant_fn():
        return torch.where(mask, torch.clamp(torch.round(w * (1.0 / w.abs().mean())), -1, 1), 0).to(torch.int8)

    q = quant_fn()
    ws = slide_torch(q, n_pat)

    row["mask_us"] = timed(mask_fn, reps)  # the torch op as training calls it (dispatch + allocation)
    # The kernel alone: ss_nm_mask straight from ctypes into a preallocated mask.
    L0, st0 = _lib.lib(), ops._raw_stream(torch.cuda.current_device())
    mbuf = torch.empty((n, k), dtype=torch.bool, device=dev)
    row["mask_kernel_us"] = timed(lambda: L0.ss_nm_mask(w.data_ptr(), 0, n, k, k, keep, group, mbuf.data_ptr(), None,
                                                        None, st0), reps)
    assert torch.equal(mbuf, mask)
    row["quantize_us"] = timed(quant_fn, reps)
    row["slide_us"] = timed(lambda: slide_torch(q, n_pat), reps)
    try:
        row["compress_us"] = timed(lambda: torch._cslt_compress(ws), reps)
    except (RuntimeError, AttributeError) as e:
        row["compress_us"] = None
        row["compress_error"] = str(e)[:300]
    parts = [row[k_] for k_ in ("mask_us", "quantize_us", "slide_us", "compress_us")]
    row["update_torch_us"] = sum(parts) if None not in parts else None

    # The same masked ternary weight as a SlideLinear (int8 codes used as given, one scale per row).
    scale = torch.full((n,), float(w.abs().mean()), dtype=torch.float32)
    layer = SlideLinear.from_quantized(q, scale, pattern=f"{keep}:{group}", dense_below_m=0, search=search)
    # The library's in-place device update (issue 3's GPU weight preparation): codes -> slide +
    # compress into the layer's buffers and plans, no allocation, no synchronization (check = 0).
    L, h = _lib.lib(), ops.handle(layer.handle)
    st = ops._raw_stream(torch.cuda.current_device())
    scale_dev = scale.to(dev)
    if hasattr(L, "ss_linear_update_weight_codes_device"):
        def upd_codes():
            rc = L.ss_linear_update_weight_codes_device(h.ptr, q.data_ptr(), scale_dev.data_ptr(), st, 0)
            if rc:
                _lib.check(rc)

        def upd_dense():
            rc = L.ss_linear_update_weight_device(h.ptr, w.data_ptr(), 0, st, 0)
            if rc:
                _lib.check(rc)

        row["lib_update_dense_f32_us"] = timed(upd_dense, reps)  # prune (nm_mask) + per-channel quant + slide + compress
        _lib.check(L.ss_linear_check_weight_updates(h.ptr, st))
        row["lib_update_codes_us"] = timed(upd_codes, reps)  # slide + compress of given codes (the last one: q)
        _lib.check(L.ss_linear_check_weight_updates(h.ptr, st))
        row["update_gpu_us"] = row["mask_us"] + row["quantize_us"] + row["lib_update_codes_us"]
    row["per_m"] = []
    wb = w.bfloat16()
    for m in ms:
        x = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
        ys = torch.ops.slidesparse.sparse_linear(x, layer.handle, n, 1)
        yd = torch.ops.slidesparse.sparse_linear(x, layer.handle, n, 2)
        rel = float((ys.float() - yd.float()).norm() / yd.float().norm().clamp_min(1e-30))
        t_sp = timed(lambda: torch.ops.slidesparse.sparse_linear(x, layer.handle, n, 1), reps)
        t_de = timed(lambda: torch.ops.slidesparse.sparse_linear(x, layer.handle, n, 2), reps)
        t_bf = timed(lambda: torch.nn.functional.linear(x, wb), reps)
        saved = t_de - t_sp
        ent = {"m": m, "int8_sparse_fwd_us": t_sp, "int8_dense_fwd_us": t_de, "bf16_dense_fwd_us": t_bf,
               "saved_per_forward_us": saved, "sparse_vs_dense_rel_diff": rel}
        for key in ("update_gpu_us", "update_torch_us"):
            if row.get(key) is not None:
                tag = key[len("update_"):-len("_us")]
                ent[f"net_per_step_{tag}_us"] = saved - row[key]
                ent[f"forwards_per_update_to_break_even_{tag}"] = (row[key] / saved) if saved > 0 else None
        row["per_m"].append(ent)
        del x
    del layer
    torch.cuda.empty_cache()
    return row


def render_md(doc) -> str:
    """Two tables from the JSON: update costs per layer, and what one forward saves per m."""
    f = lambda v: "–" if v is None else f"{v:.0f}"  # noqa: E731
    e = doc["env"]
    out = [f"{e['gpu']}, torch {e['torch']}, CUDA {e['cuda']}, torch's cuSPARSELt {e['cusparselt_torch']}; "
           f"median of {e['reps']} (CUDA events, eager calls); SlideLinear plans: "
           f"{'library defaults' if not e['search'] else str(e['search']) + ' timed launches per candidate'}.", "",
           "Update cost per layer and step (µs): the mask kernel alone and as the torch op; ternary codes "
           "(torch, unfused); the library's in-place device update from codes (slide + compress) and from the "
           "f32 weight (its own mask + per-channel int8 + slide + compress); the torch slide and torch's "
           "cuSPARSELt compress for comparison. `mask+ternary+lib` = mask op + ternary + lib codes update.", "",
           "| set | layer | n × k | pattern | mask kernel | mask op | ternary (torch) | lib codes update | "
           "lib update from f32 | torch slide | cslt compress | mask+ternary+lib |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        out.append(f"| {r['set']} | {r['layer']} | {r['n']} × {r['k']} | {r['pattern']} | {f(r.get('mask_kernel_us'))} | "
                   f"{f(r['mask_us'])} | {f(r['quantize_us'])} | {f(r.get('lib_update_codes_us'))} | "
                   f"{f(r.get('lib_update_dense_f32_us'))} | {f(r['slide_us'])} | {f(r['compress_us'])} | "
                   f"{f(r.get('update_gpu_us'))} |")
    out += ["", "What the sparse path saves per forward (µs; SlideLinear int8, same layer: quant + dense INT8 GEMM + "
            "epilogue vs quant + lift + slid 2:4 GEMM + epilogue; bf16 `F.linear` for reference) and the net per "
            "step with one forward per update (saved − (mask+ternary+lib)); break-even = forwards one update "
            "must serve (– : the sparse path is slower, never).", "",
            "| set | layer | pattern | m | int8 dense | int8 sparse | bf16 dense | saved | net per step | break-even forwards |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        for p in r["per_m"]:
            be = p.get("forwards_per_update_to_break_even_gpu")
            out.append(f"| {r['set']} | {r['layer']} | {r['pattern']} | {p['m']} | {f(p['int8_dense_fwd_us'])} | "
                       f"{f(p['int8_sparse_fwd_us'])} | {f(p['bf16_dense_fwd_us'])} | {p['saved_per_forward_us']:+.0f} | "
                       f"{f(p.get('net_per_step_gpu_us'))} | {'–' if be is None else f'{be:.1f}'} |")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--render", metavar="JSON", help="only write the markdown tables of an earlier run (--md)")
    ap.add_argument("--md", help="markdown tables")
    ap.add_argument("--out")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--m-experiment", default="16384")
    ap.add_argument("--m-qwen", default="4096,16384")
    ap.add_argument("--search", type=int, default=0, help="SlideLinear algorithm search launches (0: defaults)")
    ap.add_argument("--sets", default="experiment,qwen7b")
    args = ap.parse_args()
    if args.render:
        with open(args.render) as fh:
            md = render_md(json.load(fh))
        if args.md:
            with open(args.md, "w") as fh:
                fh.write(md)
        print(md)
        return
    if not args.out:
        ap.error("--out is required (or --render)")
    if torch is None:
        sys.exit(f"mask_step_cost.py: {_IMPORT_ERROR}")
    dev = torch.device("cuda")
    check_slide(dev)
    print("torch slide: exact on the check cases", flush=True)
    rows = []
    sets = {"experiment": (EXPERIMENT, [int(v) for v in args.m_experiment.split(",")]),
            "qwen7b": (QWEN7B, [int(v) for v in args.m_qwen.split(",")])}
    for sname in args.sets.split(","):
        shapes, ms = sets[sname]
        for n_pat in (4, 2):
            for name, n, k in shapes:
                r = measure(sname, name, n, k, n_pat, ms, args.reps, dev, args.search)
                rows.append(r)
                pm = ", ".join(f"m={e['m']}: saved {e['saved_per_forward_us']:.1f}" for e in r["per_m"])
                print(f"{sname} {name} {n}x{k} {r['pattern']}: mask {r['mask_us']:.1f} quant {r['quantize_us']:.1f} "
                      f"torch slide {r['slide_us']:.1f} compress {r['compress_us']} | lib update codes "
                      f"{r.get('lib_update_codes_us')} dense {r.get('lib_update_dense_f32_us')} us | {pm}", flush=True)
    env = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "cusparselt_torch": getattr(torch.backends.cusparselt, "version", lambda: None)(),
           "reps": args.reps, "search": args.search}
    doc = {"env": env, "rows": rows}
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
    if args.md:
        with open(args.md, "w") as f:
            f.write(render_md(doc))


if __name__ == "__main__":
    main()
