"""ctypes binding of libslidesparse_c.so (include/slidesparse/slidesparse_c.h). No torch here.

The library is looked for at $SLIDESPARSE_LIB, then next to this file (where the CMake build puts
it: <build>/python/slidesparse/libslidesparse_c.so).
"""
from __future__ import annotations

import ctypes
import os
from ctypes import POINTER, c_char_p, c_int, c_int64, c_size_t, c_void_p

ABI_VERSION = 1
PATH_AUTO, PATH_SPARSE, PATH_DENSE = 0, 1, 2
STATUS_NAMES = {1: "invalid argument", 2: "not found", 3: "I/O error", 4: "bad format", 5: "invalid data",
                6: "already exists", 7: "unsupported", 8: "internal error"}


class SlideSparseError(RuntimeError):
    """A failing C ABI call: .status is the slidesparse::Status code."""

    def __init__(self, status: int, message: str):
        super().__init__(f"[{STATUS_NAMES.get(status, status)}] {message}")
        self.status = status


_lib = None


def library_path() -> str:
    env = os.environ.get("SLIDESPARSE_LIB")
    if env:
        return env
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "libslidesparse_c.so")


def lib():
    """The loaded library (ImportError with the reason when it cannot be loaded)."""
    global _lib
    if _lib is not None:
        return _lib
    path = library_path()
    if not os.path.exists(path):
        raise ImportError(f"slidesparse: {path} not found: build with CUDA (cmake -DSLIDESPARSE_ENABLE_CUDA=ON) and "
                          f"use PYTHONPATH=<build>/python, or set SLIDESPARSE_LIB")
    L = ctypes.CDLL(path)
    sigs = {
        "ss_c_abi_version": (c_int, []),
        "ss_last_error": (c_char_p, []),
        "ss_have_cusparselt": (c_int, []),
        "ss_slide_k": (c_int64, [c_int, c_int64]),
        "ss_plan_cache_create": (c_int, [POINTER(c_void_p)]),
        "ss_plan_cache_destroy": (None, [c_void_p]),
        "ss_linear_from_dense": (c_int, [c_void_p, c_int64, c_int64, c_void_p, c_int, c_int, c_int, c_int64, c_int,
                                         c_void_p, POINTER(c_void_p)]),
        "ss_linear_from_quantized": (c_int, [c_void_p, c_void_p, c_int64, c_int64, c_void_p, c_int, c_int, c_int,
                                             c_int64, c_int, c_void_p, POINTER(c_void_p)]),
        "ss_linear_from_dense_device": (c_int, [c_void_p, c_int, c_int64, c_int64, c_void_p, c_int, c_int, c_int,
                                                c_int64, c_int, c_void_p, c_void_p, POINTER(c_void_p)]),
        "ss_linear_update_weight_device": (c_int, [c_void_p, c_void_p, c_int, c_void_p, c_int]),
        "ss_linear_update_weight_codes_device": (c_int, [c_void_p, c_void_p, c_void_p, c_void_p, c_int]),
        "ss_linear_check_weight_updates": (c_int, [c_void_p, c_void_p]),
        "ss_linear_destroy": (None, [c_void_p]),
        "ss_linear_forward": (c_int, [c_void_p, c_void_p, c_int64, c_void_p, c_void_p, c_int]),
        "ss_linear_forward_scratch": (c_int, [c_void_p, c_void_p, c_int64, c_void_p, c_void_p, c_int, c_void_p,
                                              c_size_t]),
        "ss_linear_scratch_bytes": (c_int, [c_void_p, c_int64, c_int, POINTER(c_size_t)]),
        "ss_linear_warmup": (c_int, [c_void_p, c_int64, c_void_p, c_int, c_int]),
        "ss_linear_release_buckets": (c_int, [c_void_p]),
        "ss_linear_info": (c_int, [c_void_p] + [POINTER(c_int64)] * 5),
        "ss_linear_describe": (c_int, [c_void_p, c_char_p, c_size_t, POINTER(c_size_t)]),
        "ss_nm_mask": (c_int, [c_void_p, c_int, c_int64, c_int64, c_int64, c_int, c_int, c_void_p, c_void_p, c_void_p,
                               c_void_p]),
        "ss_quant_lift": (c_int, [c_void_p, c_int64, c_int64, c_void_p, c_int, c_int64, c_void_p, c_int, c_void_p]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(L, name)
        fn.restype = res
        fn.argtypes = args
    v = L.ss_c_abi_version()
    if v != ABI_VERSION:
        raise ImportError(f"slidesparse: {path} has C ABI version {v}, this package needs {ABI_VERSION}")
    _lib = L
    return L


def check(rc: int) -> None:
    if rc != 0:
        raise SlideSparseError(rc, lib().ss_last_error().decode(errors="replace"))


class PlanCache:
    """GEMM algorithm choices shared by many layers (a model's layers of one shape search once)."""

    def __init__(self):
        h = c_void_p()
        check(lib().ss_plan_cache_create(ctypes.byref(h)))
        self.ptr = h.value
        self._destroy = lib().ss_plan_cache_destroy

    def __del__(self):
        if getattr(self, "ptr", None):
            self._destroy(self.ptr)
            self.ptr = None


class LinearHandle:
    """Owns one ss_linear. Registered under an integer id that the torch ops take (ops.py)."""

    def __init__(self, ptr: int, cache: "PlanCache | None"):
        self.ptr = ptr
        self.cache = cache  # keeps the plan cache alive as long as the layer
        self._destroy = lib().ss_linear_destroy
        n, k, ks, kd, db = (c_int64() for _ in range(5))
        check(lib().ss_linear_info(ptr, *(ctypes.byref(v) for v in (n, k, ks, kd, db))))
        self.n, self.k, self.k_sparse, self.k_dense, self.dense_below_m = n.value, k.value, ks.value, kd.value, db.value

    def describe(self) -> str:
        need = c_size_t()
        check(lib().ss_linear_describe(self.ptr, None, 0, ctypes.byref(need)))
        buf = ctypes.create_string_buffer(need.value + 1)
        check(lib().ss_linear_describe(self.ptr, buf, need.value + 1, ctypes.byref(need)))
        return buf.value.decode()

    def close(self):
        if self.ptr:
            self._destroy(self.ptr)
            self.ptr = None

    def __del__(self):
        self.close()
