"""The range of every numeric setting, read from where the setting is declared (its field's
`ge` / `gt` / `le` / `lt`: memlab/config/schema.py, a strategy's settings), checked by `memlab
validate`, `plan`, `run` and `submit` before anything starts (memlab/config/expand.py reports a
value out of range as one line naming its key). Every float must also be finite. A numeric
field without a range fails tests/unit/test_config_ranges.py, so a new field cannot skip it."""

from __future__ import annotations

import math
from typing import Any

from memlab.config.load import field_at

INF = math.inf


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def rule(key: str) -> tuple[float, bool, float, bool] | None:
    """(low, low included, high, high included) of the numeric setting at dotted `key`, as
    its field declares it (memlab/config/schema.py, a strategy's settings); None: none."""
    try:
        field = field_at(key)[1]
    except KeyError:
        return None
    return None if field is None else field.metadata.get("range")


def _describe(r: tuple[float, bool, float, bool]) -> str:
    low, low_in, high, high_in = r
    fmt = lambda x: f"{x:g}"  # noqa: E731
    if high == INF and low == -INF:
        return "a finite number"
    if high == INF:
        return f"must be {'>=' if low_in else '>'} {fmt(low)}"
    if low == -INF:
        return f"must be {'<=' if high_in else '<'} {fmt(high)}"
    return f"must be in {'[' if low_in else '('}{fmt(low)}, {fmt(high)}{']' if high_in else ')'}"


def out_of_range(key: str, value: Any) -> str | None:
    """Why `value` is no valid setting of the numeric field `key` (None: it is)."""
    return outside(value, rule(key))


def outside(value: Any, r: tuple[float, bool, float, bool] | None) -> str | None:
    """Why `value` (a number, or a list of numbers) is not in range `r` (low, low included,
    high, high included; None: any finite number), None if it is: the one check of a setting's
    range, for the settings a command takes outside the schema too (`memlab plagiarism
    --batch-size`)."""
    items = value if isinstance(value, list) else [value]
    for v in items:
        if not is_number(v):
            continue
        if isinstance(v, float) and not math.isfinite(v):
            return f"must be a finite number, got {v}"
        if r is None:
            continue
        low, low_in, high, high_in = r
        if v < low or (v == low and not low_in) or v > high or (v == high and not high_in):
            return f"{'each item ' if isinstance(value, list) else ''}{_describe(r)}, got {v}"
    return None


def plain_name(name: str) -> bool:
    """A name that becomes one folder: no separator, not `.` / `..`, no control characters."""
    return bool(name) and name not in (".", "..") and not any(
        c in name for c in "/\\") and all(c.isprintable() for c in name)
