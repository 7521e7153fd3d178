#!/usr/bin/env python3
"""Tier-0 (CPU, CI) tests of the torch-free parts of the Python package: pattern parsing and sizes,
target-name matching, and reading `slidesparse prune` checkpoints (plan_load) checked against the
CLI and an independent pure-Python reference of docs/FORMAT.md sections 2-3. No torch, no numpy.
The torch-dependent parts (ops, nn, patch) are tier-1 (tests/python/test_gpu.py); this script
says so loudly when torch is absent. Needs SLIDESPARSE_CLI (set by ctest) for the checkpoint checks.
"""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import traceback

here = os.path.dirname(os.path.abspath(__file__))
if not any(os.path.isdir(os.path.join(p, "slidesparse")) for p in sys.path if p):
    sys.path.insert(0, os.path.join(here, "..", "..", "python"))
import slidesparse  # noqa: E402
from slidesparse import CheckpointError, Checkpoint, plan_load, select_targets  # noqa: E402
from slidesparse.checkpoint import bf16_to_float, e4m3_to_float  # noqa: E402

FAILS = []


def check(name, fn):
    try:
        fn()
        print(f"PASS {name}")
    except Exception as e:  # noqa: BLE001 - every failure is reported and counted
        FAILS.append(name)
        print(f"FAIL {name}: {type(e).__name__}: {e}")
        traceback.print_exc()


def raises(exc, fn, needle):
    try:
        fn()
    except exc as e:
        assert needle in str(e), f"message {str(e)!r} lacks {needle!r}"
        return
    raise AssertionError(f"{fn} did not raise {exc.__name__}")


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


# ------------------------------------------------------------------------------- patterns
def test_patterns():
    assert [slidesparse.parse_pattern(p) for p in ("2:4", "4:6", "6:8", "8:10", "30:32")] == [2, 3, 4, 5, 16]
    assert slidesparse.parse_pattern(4) == 4 and slidesparse.pattern_str(4) == "6:8"
    for bad in ("3:4", "6:9", "1:2", "32:34", "6-8", "", "a:b"):
        raises(ValueError, lambda b=bad: slidesparse.parse_pattern(b), "pattern")
    # docs/FORMAT.md section 4: k' = align32(ceil(k / 2N) * 4(N-1)), expansion (2N-2)/N
    assert slidesparse.slide_k(4, 3584) == 5376 and slidesparse.slide_k(4, 18944) == 28416
    assert slidesparse.slide_k(3, 100) == 160  # 17 groups * 8 = 136 -> 160
    assert slidesparse.slide_k(2, 3584) == 3584 and slidesparse.slide_k(5, 3584) == 5760
    assert slidesparse.parse_precision("fp8") == (1, "e4m3") and slidesparse.parse_precision("INT8") == (0, "i8")
    raises(ValueError, lambda: slidesparse.parse_precision("fp4"), "precision")


# ------------------------------------------------------------------------------- naming
HF_NAMES = ["model.embed_tokens", "model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj",
            "model.layers.0.self_attn.v_proj", "model.layers.0.self_attn.o_proj", "model.layers.0.mlp.gate_proj",
            "model.layers.0.mlp.up_proj", "model.layers.0.mlp.down_proj", "model.layers.0.input_layernorm",
            "model.layers.1.self_attn.qkv_proj", "model.layers.1.mlp.gate_up_proj", "model.layers.1.mlp.xdown_proj",
            "model.layers.1.self_attn.q_proj_lora", "model.norm", "lm_head"]


def test_naming():
    got = select_targets(HF_NAMES)
    want = [n for n in HF_NAMES if n.split(".")[-1] in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                         "down_proj", "qkv_proj", "gate_up_proj")]
    assert got == want, got
    assert "lm_head" not in got and "model.layers.1.mlp.xdown_proj" not in got
    assert select_targets(HF_NAMES, include=r"lm_head") == ["lm_head"]
    assert select_targets(HF_NAMES, exclude=r"mlp") == [n for n in want if "mlp" not in n]
    assert select_targets(HF_NAMES, include=[r"layers\.0\..*proj", "lm_head"], exclude="down") == \
        [n for n in HF_NAMES if "layers.0." in n and "proj" in n and "down" not in n] + ["lm_head"]
    raises(ValueError, lambda: select_targets(HF_NAMES, include="("), "include regex")


# ------------------------------------------------------------------------------- checkpoints
CLI = os.environ.get("SLIDESPARSE_CLI")


def cli(*args):
    r = subprocess.run([CLI, *args], capture_output=True, text=True)
    if r.returncode:
        raise AssertionError(f"{' '.join(args)} -> exit {r.returncode}: {r.stderr}")
    return r.stdout


def ref_keep(row, n):
    """Magnitude keep-set of one row (docs/FORMAT.md section 2, pure Python)."""
    g = 2 * n
    keep = set()
    for s in range(0, len(row), g):
        grp = [(abs(v), -(s + i)) for i, v in enumerate(row[s:s + g]) if v != 0]
        for _, negc in sorted(grp, reverse=True)[:g - 2]:
            keep.add(-negc)
    return keep


def run_checkpoint_tests(tmp):
    dense = os.path.join(tmp, "dense")
    cli("synth", dense, "--layers", "2", "--hidden", "64", "--intermediate", "128", "--vocab", "64", "--shards", "2",
        "-q")
    cfg = json.load(open(os.path.join(dense, "config.json")))
    h, inter = cfg["hidden_size"], cfg["intermediate_size"]
    dck = Checkpoint(dense)
    shapes = {}
    for i in range(cfg["num_hidden_layers"]):
        for proj in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
                     "mlp.up_proj", "mlp.down_proj"):
            name = f"model.layers.{i}.{proj}"
            shapes[name] = dck.tensors[name + ".weight"].shape
    assert shapes["model.layers.0.mlp.down_proj"] == (h, inter)
    raises(CheckpointError, lambda: plan_load(dck, shapes), "no slidesparse metadata")

    for precision, pattern, n in (("int8", "6:8", 4), ("fp8", "4:6", 3), ("keep", "8:10", 5)):
        out = os.path.join(tmp, f"{precision}_{pattern.replace(':', '_')}")
        cli("prune", "--pattern", pattern, "--precision", precision, dense, out, "-q")
        ck = Checkpoint(out)
        params = {name: t.shape for name, t in dck.tensors.items()}
        plan = plan_load(ck, shapes, params)
        assert plan.pattern_n == n and len(plan.items) == 7 * cfg["num_hidden_layers"] and not plan.missing
        assert sorted(it.module for it in plan.items) == sorted(shapes)
        assert sorted(plan.other) == sorted(k for k in dck.tensors if not any(k == m + ".weight" for m in shapes))
        tok = {"int8": "i8", "fp8": "e4m3", "keep": "bf16"}[precision]
        for it in plan.items:
            assert it.precision == tok and (it.scale is not None) == (precision != "keep"), it
        # Codes and scales vs the reference rule applied to the dense weights, on two layers.
        for it in plan.items[:2] + plan.items[-1:]:
            w = bf16_to_float(dck.read(it.weight))
            raw = ck.read(it.weight)
            scales = struct.unpack(f"<{it.n}f", ck.read(it.scale)) if it.scale else None
            for r in range(it.n):
                row = w[r * it.k:(r + 1) * it.k]
                keep = ref_keep(row, n)
                if precision == "keep":
                    got = bf16_to_float(raw[2 * r * it.k:2 * (r + 1) * it.k])
                    want = [v if c in keep else 0.0 for c, v in enumerate(row)]
                    assert got == want, f"{it.weight} row {r}: kept values differ"
                    continue
                amax = max(abs(row[c]) for c in keep) if keep else 0.0
                Q = 127.0 if precision == "int8" else 448.0
                s = scales[r]
                assert math.isclose(s, f32(amax / Q), rel_tol=2 ** -22), f"{it.scale}[{r}] = {s}, want {amax / Q}"
                for c, v in enumerate(row):
                    code = raw[r * it.k + c]
                    q = (code - 256 if code > 127 else code) if precision == "int8" else e4m3_to_float(code)
                    if c not in keep:
                        assert q == 0, f"{it.weight}[{r}, {c}] pruned but code {code}"
                    elif precision == "int8":
                        assert abs(q * s - v) <= s * 0.5 * (1 + 1e-5), f"{it.weight}[{r}, {c}]: {q}*{s} vs {v}"
                    else:
                        assert abs(q * s - v) <= max(abs(v) * 2 ** -4, 2 ** -9 * s) * (1 + 1e-5), \
                            f"{it.weight}[{r}, {c}]: {q}*{s} vs {v}"
        # Shapes that do not fit the model are refused, naming the tensor.
        bad = dict(shapes)
        bad["model.layers.1.mlp.down_proj"] = (h, inter + 8)
        raises(CheckpointError, lambda: plan_load(ck, bad), "model.layers.1.mlp.down_proj.weight")
        part = {k: v for k, v in shapes.items() if "layers.1" not in k}
        assert len(plan_load(ck, part).missing) == 7
    # Ternary (docs/FORMAT.md section 3): plan_load sees i8 codes + scales, as for int8; the codes
    # and the one scale equal the rule computed here in Python from the dense bf16 weights.
    out = os.path.join(tmp, "ternary_6_8")
    cli("prune", "--pattern", "6:8", "--precision", "ternary", dense, out, "-q")
    ck = Checkpoint(out)
    plan = plan_load(ck, shapes)
    meta = json.loads(ck.metadata["slidesparse"])
    for it in plan.items:
        assert it.precision == "i8" and it.scale is not None, it
        assert meta["layers"][it.module]["quant"] == "ternary", it.module
    for it in plan.items[:2] + plan.items[-1:]:
        w = bf16_to_float(dck.read(it.weight))
        total = 0.0
        for v in w:  # double, row-major
            total += abs(v)
        s = f32(total / len(w)) if total else 1.0
        scales = struct.unpack(f"<{it.n}f", ck.read(it.scale))
        assert all(x == s for x in scales), f"{it.scale}: {scales[:3]}..., want {s} everywhere"
        raw = ck.read(it.weight)
        for r in range(it.n):
            row = w[r * it.k:(r + 1) * it.k]
            q = [max(-1, min(1, round(f32(v / s)))) for v in row]  # round(): half to even
            keep = ref_keep([v if c != 0 else 0.0 for v, c in zip(row, q)], 4)
            want = [c if i in keep else 0 for i, c in enumerate(q)]
            got = [b - 256 if b > 127 else b for b in raw[r * it.k:(r + 1) * it.k]]
            assert got == want, f"{it.weight} row {r}: ternary codes differ"
    # Include/exclude: the CLI (RE2 on tensor names) and select_targets (module names) agree.
    out = os.path.join(tmp, "sel")
    cli("prune", "--pattern", "6:8", "--include", r"layers\.1\.", "--exclude", "down|k_proj", dense, out, "-q")
    layers = sorted(json.loads(Checkpoint(out).metadata["slidesparse"])["layers"])
    assert layers == sorted(select_targets(shapes, include=r"layers\.1\.", exclude="down|k_proj")), layers
    # slide_k agrees with what `slidesparse slide` writes.
    slid = os.path.join(tmp, "slid")
    cli("slide", os.path.join(tmp, "int8_6_8"), slid, "-q")
    sck = Checkpoint(slid)
    for name, (nn_, k) in shapes.items():
        assert sck.tensors[name + ".slide_weight"].shape == (nn_, slidesparse.slide_k(4, k)), name
    # A truncated file is refused.
    trunc = os.path.join(tmp, "trunc.safetensors")
    with open(os.path.join(dense, "model-00001-of-00002.safetensors"), "rb") as f:
        data = f.read()
    with open(trunc, "wb") as f:
        f.write(data[:len(data) // 2])
    raises(CheckpointError, lambda: Checkpoint(trunc), "trunc.safetensors")


def test_checkpoints():
    if not CLI or not os.path.exists(CLI):
        raise AssertionError(f"SLIDESPARSE_CLI={CLI!r} is not the slidesparse executable (ctest sets it)")
    with tempfile.TemporaryDirectory() as tmp:
        run_checkpoint_tests(tmp)


def test_torch_parts():
    try:
        import torch  # noqa: F401
    except ImportError:
        # The torch-dependent names must fail with an ImportError naming torch, not anything else.
        raises(ImportError, lambda: slidesparse.patch_model, "torch")
        print("NOTE: torch is not installed here: the ops / nn / patch_model / load_pruned tests are tier-1 "
              "(tests/python/test_gpu.py) and did not run")
        return
    import importlib
    importlib.import_module("slidesparse.patch")  # imports; the C library is only loaded on first use


if __name__ == "__main__":
    check("patterns", test_patterns)
    check("naming", test_naming)
    check("checkpoints vs CLI and reference", test_checkpoints)
    check("torch-dependent parts", test_torch_parts)
    print(f"{4 - len(FAILS)} passed, {len(FAILS)} failed")
    sys.exit(1 if FAILS else 0)
