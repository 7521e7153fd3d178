"""Sparse-BitNet training pieces (BRIEF section 7; arXiv 2603.05168): the dynamic keep:group mask,
its straight-through autograd function, and the SparseBitLinear module.

  slidesparse::nm_mask(w, keep, group, check_nan) -> mask (bool, w's shape)
      top-`keep` |w| in every aligned group of `group` along the last dim, ties to the lower index,
      -0.0 == +0.0, a partial last group keeps min(keep, len) (include/slidesparse/nm_mask.hpp).
      CUDA tensors (f32/bf16/f16): the kernel over the C ABI (ss_nm_mask); CPU tensors (any float
      dtype, f64 included): nm_mask_reference, a pure-torch stable sort with the same tie rule.
      NaN: the CPU path raises ValueError naming the index; on CUDA a group holding a NaN keeps
      nothing, and check_nan=True synchronizes to read the kernel's report and raise the same error.
  nm_mask_ste(w, keep, group, scores=None) -> w * mask, mask from |scores| (default: w itself);
      backward passes the dense gradient through unchanged (pruned positions included), so a pruned
      weight keeps learning and can come back.
  SparseBitLinear(in, out, pattern=None|'6:8'|'2:4'|'keep:group', ternary=True, act_quant=None)
      forward: W_eff = mask(ternary(W)) with STE, x_eff = int8_fake_quant(x) with STE, bf16 GEMM.

Which magnitudes choose the mask: the LATENT weight |w| (the full-precision parameter), not the
ternary values. The ternary magnitude |round(w * s)| clamped to 1 is a nondecreasing function of
|w|, so a top-keep of the latent |w| is also a valid top-keep of the ternary magnitudes: it keeps
every nonzero ternary value a quantized-value mask could keep and only breaks the (many: ternary
values have two magnitudes) ties by latent magnitude instead of by column. Ranking quantized values
would hand those ties to the lower column index, a bias unrelated to the weights that would also
make masks jump whenever a value crosses a rounding threshold. This is also the paper's choice
(masks recomputed every forward from the latent weights).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _lib

_DTYPE_CODES = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2}

try:
    _raw_stream = torch._C._cuda_getCurrentRawStream
except AttributeError:  # pragma: no cover
    def _raw_stream(index):
        return torch.cuda.current_stream(index).cuda_stream


def parse_keep_group(pattern) -> tuple[int, int]:
    """'6:8' -> (6, 8); (keep, group) passes through. Any 0 <= keep <= group <= 32."""
    if isinstance(pattern, (tuple, list)) and len(pattern) == 2:
        keep, group = int(pattern[0]), int(pattern[1])
    else:
        try:
            a, b = str(pattern).split(":")
            keep, group = int(a), int(b)
        except ValueError:
            raise ValueError(f"N:M pattern {pattern!r}: expected 'keep:group' such as '6:8' or '2:4'") from None
    _check_keep_group(keep, group)
    return keep, group


def _check_keep_group(keep: int, group: int) -> None:
    if not (1 <= group <= 32 and 0 <= keep <= group):
        raise ValueError(f"nm_mask: keep:group = {keep}:{group} is not valid: need 1 <= group <= 32 and "
                         f"0 <= keep <= group")


def _nan_error(index: int, k: int) -> ValueError:
    return ValueError(f"nm_mask: NaN weight at row {index // k}, column {index % k} "
                      f"(an N:M mask needs ordered magnitudes)")


def nm_mask_reference(w: torch.Tensor, keep: int, group: int) -> torch.Tensor:
    """Pure-torch definition (any device, any float dtype): bool mask of w's shape."""
    _check_keep_group(keep, group)
    if not w.is_floating_point():
        raise TypeError(f"nm_mask: w must be a floating tensor, got {w.dtype}")
    if w.dim() == 0:
        raise ValueError("nm_mask: w must have at least one dimension (k = its last)")
    k = w.shape[-1]
    if w.numel() == 0:
        return torch.zeros(w.shape, dtype=torch.bool, device=w.device)
    w2 = w.detach().reshape(-1, k)
    nan = torch.isnan(w2)
    if bool(nan.any()):
        raise _nan_error(int(nan.reshape(-1).nonzero()[0, 0]), k)
    # |w| (so -0.0 == +0.0); padding -1 sorts after every real element. A stable descending sort
    # keeps equal magnitudes in column order: the first `keep` of each group are the kept ones.
    a = w2.abs()
    pad = (-k) % group
    if pad:
        a = F.pad(a, (0, pad), value=-1.0)
    g = a.view(a.shape[0], -1, group)
    order = torch.sort(g, dim=-1, descending=True, stable=True).indices
    mask = torch.zeros_like(g, dtype=torch.bool)
    if keep > 0:
        mask.scatter_(-1, order[..., :keep], True)
    # Padding can only be picked in a partial group with len < keep, where it changes nothing.
    return mask.view(a.shape[0], -1)[:, :k].contiguous().reshape(w.shape)


@torch.library.custom_op("slidesparse::nm_mask", mutates_args=())
def nm_mask(w: torch.Tensor, keep: int, group: int, check_nan: bool = True) -> torch.Tensor:
    """Top-`keep` |w| per aligned group of `group` along the last dim (ties to the lower index)."""
    _check_keep_group(keep, group)
    if w.device.type != "cuda":
        return nm_mask_reference(w, keep, group)
    if w.dtype not in _DTYPE_CODES:
        raise TypeError(f"nm_mask: CUDA tensors must be float32, bfloat16 or float16, got {w.dtype}")
    if w.dim() == 0:
        raise ValueError("nm_mask: w must have at least one dimension (k = its last)")
    k = w.shape[-1]
    mask = torch.empty(w.shape, dtype=torch.bool, device=w.device)
    if w.numel() == 0:
        return mask
    w2 = w.reshape(-1, k)
    if w2.stride(-1) != 1:
        w2 = w2.contiguous()
    rows = w2.shape[0]
    first_nan = torch.empty(1, dtype=torch.int64, device=w.device)
    # torch.bool stores one byte 0/1 per element: the kernel's mask bytes are valid bools.
    _lib.check(_lib.lib().ss_nm_mask(w2.data_ptr(), _DTYPE_CODES[w.dtype], rows, k, w2.stride(0), keep, group,
                                     mask.data_ptr(), None, first_nan.data_ptr(), _raw_stream(w.device.index)))
    if check_nan:
        idx = int(first_nan.item())  # UINT64_MAX reads as -1
        if idx != -1:
            raise _nan_error(idx, k)
    return mask


@nm_mask.register_fake
def _(w, keep, group, check_nan=True):
    _check_keep_group(keep, group)
    return torch.empty_like(w, dtype=torch.bool)


class NmMaskSTE(torch.autograd.Function):
    """out = w * mask (mask: a bool tensor of w's shape); backward: the identity (straight through)."""

    @staticmethod
    def forward(ctx, w, mask):
        return torch.where(mask, w, torch.zeros((), dtype=w.dtype, device=w.device))

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class NmMaskExact(torch.autograd.Function):
    """out = w * mask with the true gradient (grad * mask): the non-STE twin, for comparison."""

    @staticmethod
    def forward(ctx, w, mask):
        ctx.save_for_backward(mask)
        return torch.where(mask, w, torch.zeros((), dtype=w.dtype, device=w.device))

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return torch.where(mask, grad, torch.zeros((), dtype=grad.dtype, device=grad.device)), None


def nm_mask_ste(w: torch.Tensor, keep: int, group: int, scores: torch.Tensor | None = None,
                straight_through: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(w * mask, mask); mask = nm_mask(|scores| or |w|). straight_through=False uses the true
    gradient (zero at pruned positions) instead of the dense one."""
    src = (w if scores is None else scores).detach()
    if scores is not None and scores.shape != w.shape:
        raise ValueError(f"nm_mask_ste: scores {list(scores.shape)} and w {list(w.shape)} differ in shape")
    mask = torch.ops.slidesparse.nm_mask(src, keep, group, False)
    fn = NmMaskSTE if straight_through else NmMaskExact
    return fn.apply(w, mask), mask


def ternary_quantize(w: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """BRIEF section 7: s = 1 / mean|W| (per tensor, on the unmasked W), Wq = clamp(round(W*s), -1, 1) / s,
    in W's dtype (f32 latent weights: f32). torch.round is round-half-to-even. Values only."""
    s = 1.0 / w.detach().abs().mean().clamp_min(eps)
    return torch.clamp(torch.round(w.detach() * s), -1.0, 1.0) / s


def int8_fake_quant(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-token (last dim) absmax INT8 in f32 (f64 stays f64): s = 127 / max|x|,
    x_q = clamp(round(x*s), -128, 127) / s. Values only."""
    xf = x.detach() if x.dtype == torch.float64 else x.detach().float()
    s = 127.0 / xf.abs().amax(dim=-1, keepdim=True).clamp_min(eps)
    return torch.clamp(torch.round(xf * s), -128.0, 127.0) / s


class _TernarySTE(torch.autograd.Function):
    """ternary_quantize(w) forward, identity backward (exact forward values, unlike w + (q - w).detach())."""

    @staticmethod
    def forward(ctx, w):
        return ternary_quantize(w)

    @staticmethod
    def backward(ctx, grad):
        return grad


class _Int8STE(torch.autograd.Function):
    """int8_fake_quant(x) forward (f32), identity backward in x's dtype."""

    @staticmethod
    def forward(ctx, x):
        ctx.in_dtype = x.dtype
        return int8_fake_quant(x)

    @staticmethod
    def backward(ctx, grad):
        return grad.to(ctx.in_dtype)


class SparseBitLinear(torch.nn.Module):
    """A training linear with optional ternary weights and a dynamic keep:group mask.

    forward(x):  W_t   = ternary_quantize(W) if ternary else W        (scale from the unmasked W)
                 mask  = nm_mask(|W|, keep, group)                     (latent W, recomputed each call)
                 W_eff = W_t * mask,  x_eff = int8_fake_quant(x) if act_quant else x
                 y     = bf16(x_eff) @ bf16(W_eff)^T (+ bias)
    Gradients are straight through every quantizer and the mask: dL/dW = dL/dW_eff (dense, pruned
    positions included), dL/dx = dL/dx_eff. act_quant defaults to `ternary` (a W1.58A8 layer or a
    full-precision bf16 one). Flip rate: after each training forward (grad enabled) `flip_rate`
    holds the fraction of mask bits that changed since the previous one (a 0-dim tensor, no sync;
    NaN before the second step or without a pattern).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = False, pattern=None, ternary: bool = True,
                 act_quant: bool | None = None, compute_dtype=torch.bfloat16, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = torch.nn.Parameter(torch.empty(out_features, in_features, device=device, dtype=dtype))
        self.bias = torch.nn.Parameter(torch.zeros(out_features, device=device, dtype=dtype)) if bias else None
        torch.nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        self.pattern = None if pattern is None else parse_keep_group(pattern)
        self.ternary = bool(ternary)
        self.act_quant = self.ternary if act_quant is None else bool(act_quant)
        self.compute_dtype = compute_dtype
        self.register_buffer("_prev_mask", None, persistent=False)
        self.flip_rate = torch.tensor(float("nan"))

    def extra_repr(self) -> str:
        p = "dense" if self.pattern is None else f"{self.pattern[0]}:{self.pattern[1]}"
        return (f"in={self.in_features}, out={self.out_features}, pattern={p}, ternary={self.ternary}, "
                f"act_quant={self.act_quant}")

    def effective_weight(self, track: bool = False) -> torch.Tensor:
        w = self.weight
        w_t = _TernarySTE.apply(w) if self.ternary else w
        if self.pattern is None:
            return w_t
        w_eff, mask = nm_mask_ste(w_t, *self.pattern, scores=w)
        if track:
            if self._prev_mask is not None:
                self.flip_rate = (mask != self._prev_mask).float().mean()
            self._prev_mask = mask
        return w_eff

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        track = self.training and torch.is_grad_enabled()
        w_eff = self.effective_weight(track)
        x_eff = _Int8STE.apply(x) if self.act_quant else x
        b = None if self.bias is None else self.bias.to(self.compute_dtype)
        return F.linear(x_eff.to(self.compute_dtype), w_eff.to(self.compute_dtype), b)


def flip_rates(module: torch.nn.Module) -> dict:
    """{name: flip rate} of every SparseBitLinear with a pattern (one sync for all)."""
    named = [(n, m) for n, m in module.named_modules() if isinstance(m, SparseBitLinear) and m.pattern is not None]
    if not named:
        return {}
    vals = torch.stack([m.flip_rate.to(named[0][1].weight.device) for _, m in named]).tolist()
    return {n: v for (n, _), v in zip(named, vals)}
