"""Which linear layers of a model are targets, by module name (no torch).

Default (as `slidesparse prune`, docs/FORMAT.md section 5): modules named ``*.q_proj``, ``k_proj``,
``v_proj``, ``o_proj``, ``qkv_proj``, ``gate_proj``, ``up_proj``, ``gate_up_proj``, ``down_proj``;
never embeddings, norms or ``lm_head``. ``include`` (a regular expression, partial match on the
module name, like the CLI's RE2 ``--include``) replaces that rule; ``exclude`` removes matches.
Both may also be lists of expressions (any match counts).
"""
from __future__ import annotations

import re
from typing import Iterable, Sequence, Union

DEFAULT_TARGET = re.compile(r"(^|\.)(q|k|v|o|qkv|gate|up|gate_up|down)_proj$")

Patterns = Union[None, str, Sequence[str]]


def _compile(p: Patterns, what: str) -> list[re.Pattern]:
    if p is None:
        return []
    items = [p] if isinstance(p, str) else list(p)
    out = []
    for s in items:
        try:
            out.append(re.compile(s))
        except re.error as e:
            raise ValueError(f"{what} regex {s!r}: {e}") from None
    return out


class TargetMatcher:
    def __init__(self, include: Patterns = None, exclude: Patterns = None):
        self.include = _compile(include, "include")
        self.exclude = _compile(exclude, "exclude")

    def __call__(self, name: str) -> bool:
        if self.include:
            hit = any(r.search(name) for r in self.include)
        else:
            hit = DEFAULT_TARGET.search(name) is not None
        return hit and not any(r.search(name) for r in self.exclude)


def select_targets(names: Iterable[str], include: Patterns = None, exclude: Patterns = None) -> list[str]:
    """The names (in order) that are targets."""
    m = TargetMatcher(include, exclude)
    return [n for n in names if m(n)]
