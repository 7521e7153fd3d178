"""Read checkpoints written by the `slidesparse` CLI (docs/FORMAT.md section 5), without torch or
numpy: a single .safetensors file or a Hugging Face directory (model.safetensors, or an index with
shards). Tensors are handed out as raw little-endian bytes with dtype and shape; slidesparse.load
turns them into torch tensors.

``plan_load`` decides, from the checkpoint alone and the model's linear shapes, what each pruned
layer is built from (codes + scales, or float weights) and rejects inconsistent files with a
CheckpointError naming the tensor.
"""
from __future__ import annotations

import json
import mmap
import os
import struct
from dataclasses import dataclass, field
from typing import Optional

from .patterns import parse_pattern

# safetensors dtype -> (docs/FORMAT.md dtype token, bytes per element)
DTYPES = {
    "BOOL": ("bool", 1), "U8": ("u8", 1), "I8": ("i8", 1), "F8_E5M2": ("e5m2", 1), "F8_E4M3": ("e4m3", 1),
    "I16": ("i16", 2), "U16": ("u16", 2), "F16": ("f16", 2), "BF16": ("bf16", 2), "I32": ("i32", 4),
    "U32": ("u32", 4), "F32": ("f32", 4), "I64": ("i64", 8), "U64": ("u64", 8), "F64": ("f64", 8),
}
MAX_HEADER_BYTES = 100 << 20
FLOAT_TOKENS = ("f32", "f16", "bf16")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model (message names the problem)."""


@dataclass
class TensorRef:
    name: str
    dtype: str          # safetensors name: "I8", "F8_E4M3", "BF16", ...
    shape: tuple
    file: str
    offset: int         # absolute byte offset in file
    nbytes: int

    @property
    def token(self) -> str:
        return DTYPES[self.dtype][0]

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


def _read_header(path: str) -> tuple[dict, int]:
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        if size < 8:
            raise CheckpointError(f"{path}: {size} bytes, too short for a safetensors file")
        (h,) = struct.unpack("<Q", f.read(8))
        if h > MAX_HEADER_BYTES or 8 + h > size:
            raise CheckpointError(f"{path}: header length {h} is past the end of the file or above 100 MiB")
        raw = f.read(h)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: header is not a JSON object")
    return header, 8 + h


def _file_tensors(path: str) -> tuple[dict, dict]:
    header, base = _read_header(path)
    size = os.path.getsize(path)
    meta = header.pop("__metadata__", {}) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError(f"{path}: __metadata__ must map strings to strings")
    out = {}
    for name, e in header.items():
        if not isinstance(e, dict) or not {"dtype", "shape", "data_offsets"} <= e.keys():
            raise CheckpointError(f"{path}: entry {name!r} lacks dtype/shape/data_offsets")
        if e["dtype"] not in DTYPES:
            raise CheckpointError(f"{path}: tensor {name!r} has unknown dtype {e['dtype']!r}")
        shape = e["shape"]
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise CheckpointError(f"{path}: tensor {name!r} shape {shape!r} is not a list of non-negative integers")
        b, end = e["data_offsets"]
        t = TensorRef(name, e["dtype"], tuple(shape), path, base + b, end - b)
        if not (0 <= b <= end and base + end <= size) or t.nbytes != t.numel * DTYPES[t.dtype][1]:
            raise CheckpointError(f"{path}: tensor {name!r} offsets [{b}, {end}] do not fit its shape or the file")
        out[name] = t
    return out, meta


class Checkpoint:
    """Tensors and metadata of a .safetensors file or a Hugging Face directory."""

    def __init__(self, path: str):
        self.path = path
        self.tensors: dict[str, TensorRef] = {}
        self.metadata: dict[str, str] = {}
        if os.path.isdir(path):
            index = os.path.join(path, "model.safetensors.index.json")
            if os.path.exists(index):
                with open(index) as f:
                    try:
                        weight_map = json.load(f)["weight_map"]
                    except (json.JSONDecodeError, KeyError, TypeError) as e:
                        raise CheckpointError(f"{index}: not a safetensors index ({e})") from None
                files = sorted(set(weight_map.values()))
            elif os.path.exists(os.path.join(path, "model.safetensors")):
                files = ["model.safetensors"]
            else:
                raise CheckpointError(f"{path}: no model.safetensors or model.safetensors.index.json")
            for fn in files:
                t, meta = _file_tensors(os.path.join(path, fn))
                for name in t:
                    if name in self.tensors:
                        raise CheckpointError(f"{path}: tensor {name!r} appears in two shards")
                self.tensors.update(t)
                self.metadata.update(meta)
        elif os.path.exists(path):
            self.tensors, self.metadata = _file_tensors(path)
        else:
            raise CheckpointError(f"{path}: not found")
        self.slidesparse = self._parse_slidesparse()

    def _parse_slidesparse(self) -> Optional[dict]:
        raw = self.metadata.get("slidesparse")
        if raw is None:
            return None
        try:
            meta = json.loads(raw)
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{self.path}: __metadata__['slidesparse'] is not JSON ({e})") from None
        if not isinstance(meta, dict) or meta.get("format") != 1:
            raise CheckpointError(f"{self.path}: slidesparse metadata format {meta.get('format') if isinstance(meta, dict) else meta!r} is not 1")
        return meta

    def read(self, name: str) -> bytes:
        """The raw bytes of one tensor (little-endian, row-major)."""
        t = self.tensors[name]
        with open(t.file, "rb") as f:
            if t.nbytes == 0:
                return b""
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                return mm[t.offset:t.offset + t.nbytes]


@dataclass
class LoadItem:
    """How one pruned linear is rebuilt: ``weight`` (+ ``scale``, + ``bias``) tensors of the checkpoint."""
    module: str
    n: int
    k: int
    pattern_n: int
    precision: str                  # dtype token of the stored weight: i8, e4m3, bf16, f16, f32
    weight: str
    scale: Optional[str] = None
    bias: Optional[str] = None


@dataclass
class LoadPlan:
    pattern_n: int
    items: list = field(default_factory=list)
    other: list = field(default_factory=list)      # tensors to copy into the model as they are
    missing: list = field(default_factory=list)    # pruned layers in the checkpoint the model lacks


def plan_load(ckpt: Checkpoint, linears: dict, params: Optional[dict] = None) -> LoadPlan:
    """Match a CLI checkpoint to a model.

    linears: module name -> (n, k) of the model's nn.Linear modules; params: parameter/buffer name
    -> shape of the model's state (for the other tensors; None: not planned). Every layer listed in
    the slidesparse metadata must be a linear of the model with the same [n, k]; quantized layers
    need ``P.weight_scale`` F32 [n].
    """
    meta = ckpt.slidesparse
    if meta is None:
        raise CheckpointError(f"{ckpt.path}: no slidesparse metadata: not written by `slidesparse prune`")
    try:
        pn = parse_pattern(meta.get("pattern"))
    except ValueError as e:
        raise CheckpointError(f"{ckpt.path}: metadata pattern: {e}") from None
    plan = LoadPlan(pattern_n=pn)
    layers = meta.get("layers", {})
    if not isinstance(layers, dict):
        raise CheckpointError(f"{ckpt.path}: metadata 'layers' is not an object")
    used = set()
    for mod, info in layers.items():
        wname = f"{mod}.weight"
        if wname not in ckpt.tensors:
            raise CheckpointError(f"{ckpt.path}: metadata lists {mod!r} but tensor {wname!r} is absent")
        w = ckpt.tensors[wname]
        if len(w.shape) != 2:
            raise CheckpointError(f"{ckpt.path}: {wname} has shape {list(w.shape)}, expected [n, k]")
        n, k = w.shape
        if mod not in linears:
            plan.missing.append(mod)
            continue
        if tuple(linears[mod]) != (n, k):
            raise CheckpointError(f"{wname}: checkpoint [n, k] = [{n}, {k}] but the model's linear is {list(linears[mod])}")
        tok = w.token
        item = LoadItem(mod, n, k, pn, tok, wname)
        if tok in ("i8", "e4m3"):
            sname = f"{mod}.weight_scale"
            s = ckpt.tensors.get(sname)
            if s is None or s.dtype != "F32" or s.shape != (n,):
                got = "absent" if s is None else f"{s.dtype} {list(s.shape)}"
                raise CheckpointError(f"{sname}: a {tok} weight needs F32 [{n}] per-channel scales ({got})")
            item.scale = sname
        elif tok not in FLOAT_TOKENS:
            raise CheckpointError(f"{wname}: dtype {w.dtype} is not a pruned weight dtype (I8, F8_E4M3, F32, F16, BF16)")
        bname = f"{mod}.bias"
        if bname in ckpt.tensors:
            b = ckpt.tensors[bname]
            if b.shape != (n,):
                raise CheckpointError(f"{bname}: shape {list(b.shape)}, expected [{n}]")
            item.bias = bname
        plan.items.append(item)
        used.update(x for x in (item.weight, item.scale, item.bias) if x)
    if params is not None:
        for name, t in ckpt.tensors.items():
            if name in used or name.endswith(".slide_weight") or name.endswith(".weight_scale"):
                continue
            if name in params:
                if tuple(params[name]) != t.shape:
                    raise CheckpointError(f"{name}: checkpoint shape {list(t.shape)} but the model has {list(params[name])}")
                plan.other.append(name)
    return plan


def bf16_to_float(raw: bytes) -> list:
    """Decode BF16 bytes to Python floats (tests and small tensors)."""
    n = len(raw) // 2
    halves = struct.unpack(f"<{n}H", raw)
    return list(struct.unpack(f"<{n}f", struct.pack(f"<{n}I", *[h << 16 for h in halves])))


def e4m3_to_float(code: int) -> float:
    """OCP E4M3 (fn) code -> float (docs/FORMAT.md section 3); 0x7F / 0xFF are NaN."""
    sign = -1.0 if code & 0x80 else 1.0
    e, m = (code >> 3) & 0xF, code & 0x7
    if e == 0xF and m == 0x7:
        return float("nan")
    if e == 0:
        return sign * m * 2.0 ** -9
    return sign * (1 + m / 8) * 2.0 ** (e - 7)
