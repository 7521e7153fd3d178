#!/usr/bin/env python3
"""Per-call host (Python-side) cost of the slidesparse ops in eager mode.

Host time to issue one call: batches of 100 calls queued behind a ~30 ms GPU spin kernel
(torch.cuda._sleep), so the GPU never drains the queue during a batch and the host never waits on
it; median over 20 batches:
  ctypes   ss_linear_forward_scratch through ctypes with preallocated y and scratch: the C++ layer
           and its three kernel launches, no torch (the floor)
  op       torch.ops.slidesparse.sparse_linear (custom_op dispatch, output + scratch allocation)
  module   slidesparse.nn.SlideLinear.__call__ (nn.Module + op)
  F.linear torch.nn.functional.linear, bf16, same shape (one cuBLAS launch; for reference)
The op's Python-side overhead is op - ctypes.

  python3 bench/op_overhead.py --out bench/results/op_overhead_h100.json
"""
import argparse
import ctypes
import json
import statistics
import time

import torch


def host_us_per_call(fn, calls=100, batches=20):
    for _ in range(20):
        fn()
    torch.cuda.synchronize()
    per = []
    for _ in range(batches):
        torch.cuda.synchronize()
        # The GPU spins ~30 ms first, so the calls below only queue work: the time is the host's.
        torch.cuda._sleep(60_000_000)
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        per.append((time.perf_counter() - t0) / calls * 1e6)
    torch.cuda.synchronize()
    return statistics.median(per)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--k", type=int, default=3584)
    args = ap.parse_args()
    import slidesparse
    from slidesparse import _lib, ops
    from slidesparse.nn import SlideLinear
    lin = torch.nn.Linear(args.k, args.n, bias=False, device="cuda", dtype=torch.bfloat16)
    rows = []
    for precision in ("fp8", "int8"):
        sl = SlideLinear.from_linear(lin, pattern="6:8", precision=precision, dense_below_m=0)
        sl.warmup(args.m)
        x = torch.randn(args.m, args.k, device="cuda", dtype=torch.bfloat16)
        h = ops.handle(sl.handle)
        L = _lib.lib()
        nbytes = ctypes.c_size_t()
        _lib.check(L.ss_linear_scratch_bytes(h.ptr, args.m, 1, ctypes.byref(nbytes)))
        scratch = torch.empty(nbytes.value, dtype=torch.uint8, device="cuda")
        y = torch.empty(args.m, args.n, dtype=torch.bfloat16, device="cuda")
        stream = torch.cuda.current_stream().cuda_stream

        def raw():
            L.ss_linear_forward_scratch(h.ptr, x.data_ptr(), args.m, y.data_ptr(), stream, 1, scratch.data_ptr(),
                                        nbytes.value)
        raw()
        ref = torch.ops.slidesparse.sparse_linear(x, sl.handle, args.n, 1)
        torch.cuda.synchronize()
        assert torch.equal(y, ref), "raw ctypes call and the op disagree"
        r = {"precision": precision, "m": args.m, "n": args.n, "k": args.k,
             "ctypes_us": host_us_per_call(raw),
             "op_us": host_us_per_call(lambda: torch.ops.slidesparse.sparse_linear(x, sl.handle, args.n, 1)),
             "module_us": host_us_per_call(lambda: sl(x)),
             "f_linear_bf16_us": host_us_per_call(lambda: torch.nn.functional.linear(x, lin.weight))}
        r["op_overhead_us"] = r["op_us"] - r["ctypes_us"]
        # GPU time of one call (for context: host cost below it is hidden in a stream of calls).
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(200):
            raw()
        b.record()
        b.synchronize()
        r["gpu_us_per_call"] = a.elapsed_time(b) * 1e3 / 200
        rows.append(r)
        print(json.dumps(r), flush=True)
    with open(args.out, "w") as f:
        json.dump({"benchmark": "op_overhead", "gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
                   "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
