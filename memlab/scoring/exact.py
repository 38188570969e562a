"""Exact extraction (METRICS.md section 1): token-level comparison of a generation with the
reference suffix of its own document."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from memlab.scoring.registry import mean, percent, scorer


def longest_common_run(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest contiguous run of tokens present in both sequences."""
    if not a or not b:
        return 0
    best = 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                cur[j] = prev[j - 1] + 1
                if cur[j] > best:
                    best = cur[j]
        prev = cur
    return best


@scorer("exact_extracted", pa.bool_(), aggregate=percent("exact_pct", share=True),
        report={"exact_pct": "exact_%"}, doc="samples whose suffix came back token for token")
def exact_extracted(gen: Sequence[int], suffix: Sequence[int]) -> bool:
    """The first len(suffix) generated tokens equal the suffix, token for token."""
    n = len(suffix)
    return n > 0 and list(gen[:n]) == list(suffix)


@scorer("token_match_frac", pa.float64(), aggregate=percent("match_pct"),
        report={"match_pct": "match_%"}, doc="suffix tokens reproduced at their position")
def token_match_frac(gen: Sequence[int], suffix: Sequence[int]) -> float:
    """Fraction of the suffix positions where the generation has the same token."""
    n = len(suffix)
    if n == 0:
        return 0.0
    return sum(1 for g, s in zip(gen[:n], suffix) if g == s) / n


@scorer("lcs_tokens", pa.int32(), aggregate=mean("lcs_tokens_mean"))
def lcs_tokens(gen: Sequence[int], suffix: Sequence[int]) -> int:
    """Longest common contiguous token run between the generation and the suffix."""
    return longest_common_run(gen, suffix)
