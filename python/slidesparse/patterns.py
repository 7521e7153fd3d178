"""Patterns and sizes of docs/FORMAT.md, in plain Python (no torch, no numpy).

A pattern is written ``keep:group`` and belongs to the family (2N-2):2N, 2 <= N <= 16
(2:4, 4:6, 6:8, 8:10, ..., 30:32). ``slide_k`` is the column count of the slid weight / lifted
activation: ``align32(ceil(k / 2N) * 4(N-1))`` (section 4).
"""
from __future__ import annotations

import re

MIN_N, MAX_N = 2, 16
SLIDE_ALIGN = 32

_PATTERN_RE = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")

# Precision names accepted by the Python API -> the C ABI's SS_PRECISION_* and the dtype token of
# docs/FORMAT.md.
PRECISIONS = {
    "int8": (0, "i8"), "i8": (0, "i8"),
    "fp8": (1, "e4m3"), "e4m3": (1, "e4m3"),
    "bf16": (2, "bf16"),
}


def parse_pattern(pattern) -> int:
    """N of a (2N-2):2N pattern given as "6:8" (or N itself as an int). ValueError otherwise."""
    if isinstance(pattern, int) and not isinstance(pattern, bool):
        n = pattern
    else:
        m = _PATTERN_RE.match(str(pattern))
        if not m:
            raise ValueError(f"pattern {pattern!r}: expected keep:group, e.g. 2:4, 4:6, 6:8, 8:10")
        keep, group = int(m.group(1)), int(m.group(2))
        if group % 2 or keep != group - 2:
            raise ValueError(f"pattern {pattern!r} is not of the form (2N-2):2N; valid: 2:4, 4:6, 6:8, 8:10, ..., 30:32")
        n = group // 2
    if not MIN_N <= n <= MAX_N:
        raise ValueError(f"pattern N = {n} outside [{MIN_N}, {MAX_N}] (2:4 ... 30:32)")
    return n


def pattern_str(n: int) -> str:
    return f"{2 * n - 2}:{2 * n}"


def parse_precision(precision: str) -> tuple[int, str]:
    """(C ABI code, dtype token) of "fp8" | "int8" | "bf16" (also "e4m3", "i8")."""
    try:
        return PRECISIONS[str(precision).lower()]
    except KeyError:
        raise ValueError(f"precision {precision!r}: expected one of fp8, int8, bf16") from None


def slide_k(n: int, k: int) -> int:
    """Columns of the slid weight W'[n, k'] for pattern (2N-2):2N and k (docs/FORMAT.md section 4)."""
    if not MIN_N <= n <= MAX_N:
        raise ValueError(f"N = {n} outside [{MIN_N}, {MAX_N}]")
    if k < 0:
        raise ValueError(f"k = {k} is negative")
    groups = -(-k // (2 * n))
    need = groups * 4 * (n - 1)
    return -(-need // SLIDE_ALIGN) * SLIDE_ALIGN


def bucket_rows(m: int) -> int:
    """Rows of the GEMM plan that runs m rows (SlideLinear::bucket_rows): next power of two >= m,
    at least 16, at most 65536."""
    rows = 16
    while rows < m and rows < 65536:
        rows *= 2
    return rows
