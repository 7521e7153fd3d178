"""Model surgery: patch_model (replace a Hugging Face model's q/k/v/o/gate/up/down projections by
SlideLinear in place), unpatch_model, and load_pruned (build them from a checkpoint written by
`slidesparse prune`, without pruning again)."""
from __future__ import annotations

from typing import Optional

import torch

from . import _lib
from .checkpoint import Checkpoint, CheckpointError, plan_load
from .naming import Patterns, TargetMatcher
from .nn import SlideLinear

_TORCH_DTYPES = {"I8": torch.int8, "F8_E4M3": torch.float8_e4m3fn, "BF16": torch.bfloat16, "F16": torch.float16,
                 "F32": torch.float32, "I32": torch.int32, "I64": torch.int64, "U8": torch.uint8, "F64": torch.float64}


def _set_module(model: torch.nn.Module, name: str, module: torch.nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, module)


def target_linears(model: torch.nn.Module, include: Patterns = None, exclude: Patterns = None) -> list:
    """Names of the nn.Linear modules patch_model would replace."""
    match = TargetMatcher(include, exclude)
    return [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and match(n)]


def patch_model(model: torch.nn.Module, pattern="6:8", precision: str = "fp8", include: Patterns = None,
                exclude: Patterns = None, method: str = "magnitude", act_norms: Optional[dict] = None,
                dense_below_m: int = -1, search=True, path: str = "auto") -> dict:
    """Replaces the target linears of `model` in place by SlideLinear.from_linear(...). Layers of one
    shape share GEMM algorithm choices and, with dense_below_m=-1, the crossover measured on the
    first of them (the probes time both paths up to 16384 rows: once per shape, not per layer).
    Returns {name: original module} (for unpatch_model).
    act_norms: {name: norm[k]} for method="wanda". pattern="dense": the quantized dense baseline."""
    names = target_linears(model, include, exclude)
    if not names:
        raise ValueError("patch_model: no nn.Linear matches the target rule (include/exclude)")
    cache = _lib.PlanCache()
    crossovers = _SharedCrossover(dense_below_m)
    originals = {}
    for name in names:
        lin = model.get_submodule(name)
        norm = None if act_norms is None else act_norms.get(name)
        key = (tuple(lin.weight.shape), str(pattern), str(precision))
        sl = SlideLinear.from_linear(lin, pattern=pattern, precision=precision, method=method, act_norm=norm,
                                     dense_below_m=crossovers.get(key), search=search, plan_cache=cache)
        crossovers.put(key, sl)
        if sl.pattern_n is not None:
            sl.path = path
        _set_module(model, name, sl)
        originals[name] = lin
    return originals


class _SharedCrossover:
    """dense_below_m per layer kind: the caller's value, or with -1 the crossover the first layer of
    that (shape, pattern, precision) measured."""

    def __init__(self, dense_below_m: int):
        self.requested = dense_below_m
        self.known = {}

    def get(self, key) -> int:
        return self.known.get(key, self.requested) if self.requested == -1 else self.requested

    def put(self, key, sl: "SlideLinear") -> None:
        if self.requested == -1 and key not in self.known and sl.pattern_n is not None:
            self.known[key] = sl.dense_below_m


def unpatch_model(model: torch.nn.Module, originals: dict) -> None:
    """Puts back the modules patch_model replaced (their SlideLinear layers are freed when unreferenced)."""
    for name, mod in originals.items():
        _set_module(model, name, mod)


def slide_modules(model: torch.nn.Module) -> list:
    return [m for m in model.modules() if isinstance(m, SlideLinear)]


def warmup(model: torch.nn.Module, max_m: int) -> None:
    """SlideLinear.warmup(max_m) on every patched layer (before CUDA graph capture)."""
    for m in slide_modules(model):
        m.warmup(max_m)


def _tensor(ckpt: Checkpoint, name: str) -> torch.Tensor:
    t = ckpt.tensors[name]
    if t.dtype not in _TORCH_DTYPES:
        raise CheckpointError(f"{name}: dtype {t.dtype} cannot be loaded into torch")
    raw = bytearray(ckpt.read(name))
    return torch.frombuffer(raw, dtype=_TORCH_DTYPES[t.dtype]).reshape(t.shape) if raw else \
        torch.empty(t.shape, dtype=_TORCH_DTYPES[t.dtype])


def load_pruned(model: torch.nn.Module, path: str, precision: Optional[str] = None, dense_below_m: int = -1,
                search=True, load_others: bool = True, strict: bool = True) -> dict:
    """Loads a checkpoint written by `slidesparse prune` (any --method, --precision) into `model`:
    every pruned layer becomes a SlideLinear built from the stored weights as they are (int8 / fp8
    codes with their scales via from_quantized; float weights via from_linear, whose magnitude rule
    keeps already pruned groups unchanged, in `precision`, default bf16). With load_others, the
    checkpoint's other tensors (embeddings, norms, lm_head, biases) are copied into the model's
    parameters of the same name. strict: pruned layers the model lacks are an error.
    Returns {name: original module}."""
    ckpt = Checkpoint(path)
    linears = {n: tuple(m.weight.shape) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    state = model.state_dict()
    plan = plan_load(ckpt, linears, {k: tuple(v.shape) for k, v in state.items()} if load_others else None)
    if strict and plan.missing:
        raise CheckpointError(f"{path}: pruned layers not in the model: {', '.join(plan.missing[:5])}")
    cache = _lib.PlanCache()
    crossovers = _SharedCrossover(dense_below_m)
    if load_others:
        with torch.no_grad():
            for name in plan.other:
                state[name].copy_(_tensor(ckpt, name))
    originals = {}
    for it in plan.items:
        lin = model.get_submodule(it.module)
        bias = _tensor(ckpt, it.bias) if it.bias else (None if lin.bias is None else lin.bias.detach())
        dev = lin.weight.device if lin.weight.device.type == "cuda" else None
        key = (it.n, it.k, it.pattern_n, it.precision if it.scale is not None else (precision or "bf16"))
        if it.scale is not None:
            if precision is not None and precision not in (("int8", "i8") if it.precision == "i8" else ("fp8", "e4m3")):
                raise CheckpointError(f"{it.weight}: stored as {it.precision}; cannot load as {precision}")
            sl = SlideLinear.from_quantized(_tensor(ckpt, it.weight), _tensor(ckpt, it.scale), pattern=it.pattern_n,
                                            bias=bias, dense_below_m=crossovers.get(key), search=search,
                                            plan_cache=cache, device=dev)
        else:
            w = _tensor(ckpt, it.weight)
            tmp = torch.nn.Linear(it.k, it.n, bias=bias is not None)
            with torch.no_grad():
                tmp.weight = torch.nn.Parameter(w.float(), requires_grad=False)
                if bias is not None:
                    tmp.bias = torch.nn.Parameter(bias.float().cpu(), requires_grad=False)
            sl = SlideLinear.from_linear(tmp, pattern=it.pattern_n, precision=precision or "bf16",
                                         dense_below_m=crossovers.get(key), search=search, plan_cache=cache,
                                         device=dev)
        crossovers.put(key, sl)
        _set_module(model, it.module, sl)
        originals[it.module] = lin
    return originals
