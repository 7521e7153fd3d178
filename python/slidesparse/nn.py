"""slidesparse.nn.SlideLinear: a drop-in replacement for torch.nn.Linear (bf16 activations) whose
weight is pruned to (2N-2):2N, quantized per output channel (int8 / fp8) or kept in bf16, slid to
2:4 and run on the sparse tensor cores through the C library (or, pattern="dense", the same
quantization on the dense GEMM: the baseline).
"""
from __future__ import annotations

import copy
import ctypes
from typing import Optional

import torch

from . import _lib, ops
from .patterns import parse_pattern, parse_precision, pattern_str


def prune_mask(w: torch.Tensor, pattern_n: int, score: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Keep mask of docs/FORMAT.md section 2 for W[n, k]: per aligned group of 2N along k, the 2N-2
    highest scores (default |w|), equal scores keeping the lower column; groups with fewer nonzeros
    untouched (zeros score lowest and are dropped first). k need not be a multiple of 2N."""
    g = 2 * pattern_n
    n, k = w.shape
    s = (w.abs() if score is None else score).float()
    s = torch.where(w != 0, s, torch.full_like(s, -1.0))  # zeros first, whatever their score
    kp = -(-k // g) * g
    if kp != k:
        s = torch.nn.functional.pad(s, (0, kp - k), value=-2.0)
    order = torch.sort(s.view(n, kp // g, g), dim=-1, descending=True, stable=True).indices
    keep = torch.zeros_like(order, dtype=torch.bool)
    keep.scatter_(-1, order[..., : g - 2], True)
    return keep.view(n, kp)[:, :k] & (w != 0)


# dtype codes of the C ABI's *_device entries (SS_DTYPE_*).
_DEVICE_DTYPES = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2}


def _search_code(search) -> int:
    """The C ABI's search argument: 0 none, n timed launches per candidate (True: 10)."""
    if search is True:
        return 10
    if search is False or search is None:
        return 0
    if int(search) < 0:
        raise ValueError(f"search = {search}: use True, False or a positive launch count")
    return int(search)


def _drop_probe_buckets(lh: "_lib.LinearHandle", dense_below_m: int) -> None:
    """Measuring the crossover (dense_below_m = -1) leaves the probed buckets with their own X', scale
    and output buffers (up to 4096 rows: ~0.3 GB for one 7B gate projection). The ops use torch
    scratch instead, so free them; the plans come back on first use, their algorithm choices from
    the shared plan cache."""
    if dense_below_m < 0:
        _lib.check(_lib.lib().ss_linear_release_buckets(lh.ptr))


class _Owner:
    """Frees a registered layer when the last module using it is collected (deep copies share it)."""

    def __init__(self, hid: int):
        self.hid = hid

    def __del__(self):
        try:
            ops.unregister(self.hid)
        except Exception:  # interpreter shutdown: the registry may be gone
            pass


class SlideLinear(torch.nn.Module):
    """y = x . W^T (+ bias) on the slidesparse GEMM path. Build with from_linear / from_quantized.
    The weights and GEMM plans live in the C library; copy.deepcopy shares them (read-only)."""

    def __init__(self, lh: "_lib.LinearHandle", in_features: int, out_features: int, pattern: Optional[int],
                 precision: str, has_bias: bool, path: str = "auto"):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.pattern_n = pattern  # None: dense baseline layer
        self.precision = precision
        self.has_bias = has_bias
        self.handle = ops.register(lh)
        self._owner = _Owner(self.handle)
        self.path = path

    @property
    def path(self) -> str:
        return self._path

    @path.setter
    def path(self, p: str) -> None:
        if p not in ops.PATHS:
            raise ValueError(f"path {p!r}: expected auto, sparse or dense")
        if self.pattern_n is None and p == "sparse":
            raise ValueError("a dense baseline layer (pattern='dense') has no sparse path")
        self._path = p
        self._path_code = ops.PATHS[p]

    # -- construction ---------------------------------------------------------------------------
    @staticmethod
    def _options(pattern, precision):
        dense_only = pattern is None or str(pattern).lower() == "dense"
        pn = 0 if dense_only else parse_pattern(pattern)
        code, token = parse_precision(precision)
        return dense_only, pn, code, token

    @classmethod
    def from_linear(cls, linear: torch.nn.Linear, pattern="6:8", precision: str = "fp8", method: str = "magnitude",
                    act_norm: Optional[torch.Tensor] = None, dense_below_m: int = -1, search=True,
                    plan_cache: Optional["_lib.PlanCache"] = None, device=None, prep: str = "auto") -> "SlideLinear":
        """Prune (magnitude, or wanda with act_norm[k] = ||X[:, k]||_2), quantize per channel and slide
        `linear`'s weight. pattern "dense" (or None) makes the quantized dense baseline layer.
        prep: "device" prunes, quantizes and slides on the GPU (ss_linear_from_dense_device), "host" on
        the CPU; "auto" takes the GPU when the weight is already on the layer's device. Both give the
        same layer bit for bit.
        dense_below_m: -1 measures the sparse/dense crossover per layer, 0 always sparse.
        search: True (10 timed launches per candidate GEMM algorithm), False (library defaults) or
        the number of timed launches."""
        dense_only, pn, code, token = cls._options(pattern, precision)
        n, k = linear.weight.shape
        w = linear.weight.detach().float()
        if method == "wanda":
            if act_norm is None or act_norm.shape != (k,):
                raise ValueError(f"method='wanda' needs act_norm of shape [{k}]")
            if not dense_only:
                w = w * prune_mask(w, pn, w.abs() * act_norm.to(w.device).float().view(1, k))
        elif method != "magnitude":
            raise ValueError(f"method {method!r}: expected magnitude or wanda (sparsegpt: prune with the CLI, "
                             f"then load_pruned)")
        # From here the C library prunes by magnitude, which keeps an already pruned group as it is.
        bias = None if linear.bias is None else linear.bias.detach().float().cpu().contiguous()
        dev = torch.device(device) if device is not None else linear.weight.device
        if dev.type != "cuda":
            dev = torch.device("cuda", torch.cuda.current_device())
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        with torch.cuda.device(dev):
            ptr = ctypes.c_void_p()
            L = _lib.lib()
            common = (pn, code, int(dense_only), dense_below_m, _search_code(search),
                      plan_cache.ptr if plan_cache else None)
            b_ptr = None if bias is None else bias.data_ptr()
            if prep == "device" or (prep == "auto" and w.device == dev):
                # Pruned, quantized and slid on the GPU (the same layer as the host path, bit for bit).
                src = linear.weight.detach() if method == "magnitude" else w
                src = src.to(dev).contiguous()
                if src.dtype not in _DEVICE_DTYPES:
                    src = src.float()
                _lib.check(L.ss_linear_from_dense_device(src.data_ptr(), _DEVICE_DTYPES[src.dtype], n, k, b_ptr,
                                                         *common, ops._raw_stream(dev.index), ctypes.byref(ptr)))
            elif prep in ("auto", "host"):
                w_host = w.cpu().contiguous()
                _lib.check(L.ss_linear_from_dense(w_host.data_ptr(), n, k, b_ptr, *common, ctypes.byref(ptr)))
            else:
                raise ValueError(f"prep {prep!r}: expected auto, device or host")
            lh = _lib.LinearHandle(ptr.value, plan_cache)
            _drop_probe_buckets(lh, dense_below_m)
        return cls(lh, k, n, None if dense_only else pn, token, bias is not None)

    @classmethod
    def from_quantized(cls, codes: torch.Tensor, scale: torch.Tensor, pattern="6:8", bias: Optional[torch.Tensor] = None,
                       dense_below_m: int = -1, search=True, plan_cache: Optional["_lib.PlanCache"] = None,
                       device=None) -> "SlideLinear":
        """A layer from per-channel quantized codes as stored by `slidesparse prune --precision int8|fp8`:
        codes [n, k] int8 or float8_e4m3fn (already (2N-2):2N-pruned), scale [n] (w = q * scale), used
        exactly as given (no pruning, no re-quantization)."""
        if codes.dtype == torch.int8:
            precision = "int8"
        elif codes.dtype == torch.float8_e4m3fn:
            precision = "fp8"
        else:
            raise TypeError(f"codes must be int8 or float8_e4m3fn, got {codes.dtype}")
        dense_only, pn, code, token = cls._options(pattern, precision)
        n, k = codes.shape
        if tuple(scale.shape) != (n,):
            raise ValueError(f"scale has shape {list(scale.shape)}, expected [{n}]")
        q_host = codes.detach().cpu().contiguous().view(torch.uint8)
        s_host = scale.detach().float().cpu().contiguous()
        b_host = None if bias is None else bias.detach().float().cpu().contiguous()
        dev = torch.device(device) if device is not None else torch.device("cuda", torch.cuda.current_device())
        with torch.cuda.device(dev):
            ptr = ctypes.c_void_p()
            _lib.check(_lib.lib().ss_linear_from_quantized(
                q_host.data_ptr(), s_host.data_ptr(), n, k, None if b_host is None else b_host.data_ptr(), pn, code,
                int(dense_only), dense_below_m, _search_code(search), plan_cache.ptr if plan_cache else None, ctypes.byref(ptr)))
            lh = _lib.LinearHandle(ptr.value, plan_cache)
            _drop_probe_buckets(lh, dense_below_m)
        return cls(lh, k, n, None if dense_only else pn, token, b_host is not None)

    # -- weight updates (training) ----------------------------------------------------------------
    def _update_stream(self, t: torch.Tensor):
        if t.device.type != "cuda":
            raise ValueError(f"the new weight must be on a CUDA device, got {t.device}")
        return ops._raw_stream(t.device.index)

    def update_weight_(self, weight: torch.Tensor, check: bool = True) -> None:
        """Replaces the layer's weight in place with `weight` [out, in] (f32 / bf16 / f16, on the layer's
        device): pruned, quantized, slid and compressed on the current stream, no allocation (the
        layer's GEMM plans keep their algorithms). check=True synchronizes and raises on a non-finite
        weight (the layer is then unchanged); check=False does not synchronize (CUDA graphs) and
        check_weight_updates() reports problems later."""
        if tuple(weight.shape) != (self.out_features, self.in_features):
            raise ValueError(f"weight has shape {list(weight.shape)}, expected [{self.out_features}, {self.in_features}]")
        if weight.dtype not in _DEVICE_DTYPES:
            raise TypeError(f"weight dtype {weight.dtype}: expected float32, bfloat16 or float16")
        w = weight.detach().contiguous()
        _lib.check(_lib.lib().ss_linear_update_weight_device(ops.handle(self.handle).ptr, w.data_ptr(),
                                                             _DEVICE_DTYPES[w.dtype], self._update_stream(w),
                                                             int(check)))

    def update_codes_(self, codes: torch.Tensor, scale: Optional[torch.Tensor] = None, check: bool = True) -> None:
        """Replaces the weight with already quantized, already masked codes: int8 / float8_e4m3fn [out, in]
        with scale [out] (float32) for an int8 / fp8 layer, bfloat16 values and no scale for a bf16 layer.
        A sparse layer's codes must satisfy its pattern (check=True raises naming row and group)."""
        if tuple(codes.shape) != (self.out_features, self.in_features):
            raise ValueError(f"codes have shape {list(codes.shape)}, expected [{self.out_features}, {self.in_features}]")
        want = {"i8": torch.int8, "int8": torch.int8, "e4m3": torch.float8_e4m3fn, "fp8": torch.float8_e4m3fn,
                "bf16": torch.bfloat16}[self.precision]
        if codes.dtype != want:
            raise TypeError(f"a {self.precision} layer takes {want} codes, got {codes.dtype}")
        s_ptr = None
        if want == torch.bfloat16:
            if scale is not None:
                raise ValueError("a bf16 layer takes no scale")
        else:
            if scale is None or tuple(scale.shape) != (self.out_features,) or scale.dtype != torch.float32:
                raise ValueError(f"scale must be a float32 tensor of shape [{self.out_features}]")
            if scale.device != codes.device:
                raise ValueError("codes and scale must be on the same device")
            scale = scale.detach().contiguous()
            s_ptr = scale.data_ptr()
        c = codes.detach().contiguous()
        _lib.check(_lib.lib().ss_linear_update_weight_codes_device(ops.handle(self.handle).ptr, c.data_ptr(), s_ptr,
                                                                   self._update_stream(c), int(check)))

    def check_weight_updates(self) -> None:
        """Synchronizes the current stream and raises the first problem an update with check=False met."""
        _lib.check(_lib.lib().ss_linear_check_weight_updates(ops.handle(self.handle).ptr,
                                                             ops._raw_stream(torch.cuda.current_device())))

    # -- use ------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pattern_n is None:
            return torch.ops.slidesparse.dense_linear(x, self.handle, self.out_features)
        return torch.ops.slidesparse.sparse_linear(x, self.handle, self.out_features, self._path_code)

    def warmup(self, max_m: int) -> None:
        """Creates the GEMM plans every m <= max_m needs (on this layer's path), so that later calls
        search nothing and can be captured in a CUDA graph. Synchronizes the current stream."""
        h = ops.handle(self.handle)
        _lib.check(_lib.lib().ss_linear_warmup(h.ptr, max_m, ops._raw_stream(torch.cuda.current_device()),
                                               self._path_code, 0))

    def release_plans(self) -> None:
        """Frees the layer's GEMM plans (and their compressed weights); they are rebuilt on demand."""
        _lib.check(_lib.lib().ss_linear_release_buckets(ops.handle(self.handle).ptr))

    def describe(self) -> str:
        return ops.handle(self.handle).describe()

    @property
    def dense_below_m(self) -> int:
        return ops.handle(self.handle).dense_below_m

    def extra_repr(self) -> str:
        pat = "dense" if self.pattern_n is None else pattern_str(self.pattern_n)
        return (f"in_features={self.in_features}, out_features={self.out_features}, pattern={pat}, "
                f"precision={self.precision}, bias={self.has_bias}, path={self.path}")

    def __deepcopy__(self, memo):
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            new.__dict__[key] = value if key == "_owner" else copy.deepcopy(value, memo)
        return new
