"""slidesparse for PyTorch: (2N-2):2N sparse linears on 2:4 sparse tensor cores.

    import slidesparse
    slidesparse.patch_model(model, pattern="6:8", precision="fp8")     # HF model, in place
    layer = slidesparse.nn.SlideLinear.from_linear(linear, pattern="6:8", precision="int8")
    slidesparse.load_pruned(model, "pruned_dir")                       # a `slidesparse prune` output

The torch-free parts (patterns, naming, checkpoint) import without torch; the rest imports torch
and the C library (libslidesparse_c.so) on first use.
"""
from .checkpoint import Checkpoint, CheckpointError, plan_load  # noqa: F401
from .naming import DEFAULT_TARGET, TargetMatcher, select_targets  # noqa: F401
from .patterns import parse_pattern, parse_precision, pattern_str, slide_k  # noqa: F401

__version__ = "0.1.0"

_LAZY = {"patch_model": "patch", "unpatch_model": "patch", "load_pruned": "patch", "target_linears": "patch",
         "warmup": "patch", "slide_modules": "patch", "SlideLinear": "nn", "prune_mask": "nn",
         "SparseBitLinear": "sparse_bitnet", "nm_mask": "sparse_bitnet", "nm_mask_ste": "sparse_bitnet"}


def __getattr__(name):
    import importlib
    if name in ("nn", "ops", "patch", "sparse_bitnet"):
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'slidesparse' has no attribute {name!r}")
