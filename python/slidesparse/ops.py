"""PyTorch custom ops over the C ABI (torch.library.custom_op, with fake implementations so that
torch.compile(fullgraph=True) traces them and torch.library.opcheck checks them):

  slidesparse::quant_lift(x, pattern_n, precision) -> (q, scale)   fused per-token quant + lift
  slidesparse::sparse_linear(x, handle, n, path) -> y              a SlideLinear forward
  slidesparse::dense_linear(x, handle, n) -> y                     the same layer on its dense GEMM

x and y are bf16 CUDA tensors [..., k] / [..., n]. ``handle`` is the integer id of a layer in this
module's registry (register()); the layer (plan, weights) lives in the C library and is owned by
the nn.Module. Every op runs on torch's current CUDA stream; the intermediate buffers come from
torch's caching allocator (one scratch per call), so layers share memory and a CUDA graph capture
records them in its private pool. No op allocates or searches under capture once the layer's plans
exist (SlideLinear.warmup). The ops are inference-only (no autograd formula).
"""
from __future__ import annotations

import itertools

import torch

from . import _lib
from .patterns import bucket_rows, slide_k

_REGISTRY: dict = {}
_ids = itertools.count(1)

_Q_DTYPES = {"int8": torch.int8, "i8": torch.int8, "fp8": torch.float8_e4m3fn, "e4m3": torch.float8_e4m3fn,
             "bf16": torch.bfloat16}
_Q_CODES = {"int8": 0, "i8": 0, "fp8": 1, "e4m3": 1, "bf16": 2}
PATHS = {"auto": _lib.PATH_AUTO, "sparse": _lib.PATH_SPARSE, "dense": _lib.PATH_DENSE}

try:
    _raw_stream = torch._C._cuda_getCurrentRawStream  # one C call instead of a Stream object
except AttributeError:  # pragma: no cover
    def _raw_stream(index):
        return torch.cuda.current_stream(index).cuda_stream


def register(handle: "_lib.LinearHandle") -> int:
    hid = next(_ids)
    _REGISTRY[hid] = handle
    handle.scratch = {}
    return hid


def unregister(hid: int) -> None:
    h = _REGISTRY.pop(hid, None)
    if h is not None:
        h.close()


def handle(hid: int) -> "_lib.LinearHandle":
    try:
        return _REGISTRY[hid]
    except KeyError:
        raise ValueError(f"slidesparse: no layer with handle {hid} (freed, or from another process)") from None


def _check_x(x: torch.Tensor, k: int, what: str) -> None:
    if x.dtype != torch.bfloat16:
        raise TypeError(f"{what}: x must be bfloat16, got {x.dtype}")
    if x.dim() < 1 or x.shape[-1] != k:
        raise ValueError(f"{what}: x has shape {list(x.shape)}, expected [..., {k}]")


def _linear_impl(x: torch.Tensor, hid: int, n: int, path: int) -> torch.Tensor:
    h = handle(hid)
    _check_x(x, h.k, "slidesparse linear")
    if n != h.n:
        raise ValueError(f"slidesparse linear: n = {n} but the layer has n = {h.n}")
    if x.device.type != "cuda":
        raise ValueError(f"slidesparse linear: x is on {x.device}, the layer runs on CUDA")
    x2 = x.reshape(-1, h.k).contiguous()
    m = x2.shape[0]
    y = torch.empty((m, n), dtype=torch.bfloat16, device=x.device)
    if m > 0:
        dense = path == _lib.PATH_DENSE or (path == _lib.PATH_AUTO and m < h.dense_below_m)
        key = (bucket_rows(min(m, 65536)), dense)
        nbytes = h.scratch.get(key)
        L = _lib.lib()
        if nbytes is None:
            out = _lib.ctypes.c_size_t()
            _lib.check(L.ss_linear_scratch_bytes(h.ptr, m, path, _lib.ctypes.byref(out)))
            nbytes = h.scratch[key] = out.value
        scratch = torch.empty(nbytes, dtype=torch.uint8, device=x.device)
        rc = L.ss_linear_forward_scratch(h.ptr, x2.data_ptr(), m, y.data_ptr(), _raw_stream(x.device.index), path,
                                         scratch.data_ptr(), nbytes)
        if rc:
            _lib.check(rc)
    return y.view(*x.shape[:-1], n)


@torch.library.custom_op("slidesparse::sparse_linear", mutates_args=())
def sparse_linear(x: torch.Tensor, handle: int, n: int, path: int) -> torch.Tensor:
    """y[..., n] = x[..., k] . W^T (+ bias) through the layer `handle`; path 0 auto, 1 sparse, 2 dense."""
    if path not in (0, 1, 2):
        raise ValueError(f"slidesparse::sparse_linear: path {path} is not 0 (auto), 1 (sparse), 2 (dense)")
    return _linear_impl(x, handle, n, path)


@sparse_linear.register_fake
def _(x, handle, n, path):
    return x.new_empty((*x.shape[:-1], n))


@torch.library.custom_op("slidesparse::dense_linear", mutates_args=())
def dense_linear(x: torch.Tensor, handle: int, n: int) -> torch.Tensor:
    """The layer's dense GEMM (the same pruned, quantized operands, or a dense_only layer's)."""
    return _linear_impl(x, handle, n, _lib.PATH_DENSE)


@dense_linear.register_fake
def _(x, handle, n):
    return x.new_empty((*x.shape[:-1], n))


def _quant_lift_shape(k: int, pattern_n: int) -> int:
    if pattern_n == 0:
        return k
    return slide_k(pattern_n, k)


@torch.library.custom_op("slidesparse::quant_lift", mutates_args=())
def quant_lift(x: torch.Tensor, pattern_n: int, precision: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token quantization of x [m, k] bf16 (int8 / fp8; bf16 = lift only, scales 1) and lifting
    to k' = slide_k(N, k) columns for pattern_n = N >= 2 (0: no lifting). Returns (q [m, k'], scale [m] f32)."""
    if precision not in _Q_DTYPES:
        raise ValueError(f"slidesparse::quant_lift: precision {precision!r}: expected int8, fp8 or bf16")
    if x.dtype != torch.bfloat16 or x.dim() != 2 or x.device.type != "cuda":
        raise ValueError(f"slidesparse::quant_lift: x must be a 2-D bf16 CUDA tensor, got {x.dtype} "
                         f"{list(x.shape)} on {x.device}")
    m, k = x.shape
    k_out = _quant_lift_shape(k, pattern_n)
    x = x.contiguous()
    q = torch.empty((m, k_out), dtype=_Q_DTYPES[precision], device=x.device)
    scale = torch.empty((m,), dtype=torch.float32, device=x.device)
    if m > 0:
        _lib.check(_lib.lib().ss_quant_lift(x.data_ptr(), m, k, q.data_ptr(), _Q_CODES[precision], k_out,
                                            scale.data_ptr(), pattern_n, _raw_stream(x.device.index)))
    return q, scale


@quant_lift.register_fake
def _(x, pattern_n, precision):
    if precision not in _Q_DTYPES:
        raise ValueError(f"slidesparse::quant_lift: precision {precision!r}: expected int8, fp8 or bf16")
    m, k = x.shape
    return (x.new_empty((m, _quant_lift_shape(k, pattern_n)), dtype=_Q_DTYPES[precision]),
            x.new_empty((m,), dtype=torch.float32))
