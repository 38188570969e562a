"""Exact extraction (METRICS.md section 1): token-level comparison of a generation with the
reference suffix of its own document; with attack.samples_per_prompt n > 1, probabilistic
extraction (METRICS.md section 7): per document, the count c of its n samples that extract
exactly, and its (n, p)-discoverability (Hayes et al. 2024, "Measuring memorization in
language models via probabilistic extraction"): the chance that at least one of n' fresh
samples extracts it, for each n' <= n of score.discoverable_within.

The greedy figure is not made here: it is the exact_pct of a trial with attack.decoding=greedy
and one sample per prompt on the same trained model (score.discoverable_within says why).
The per-sample exact_pct of a sampling trial is the mean of c / n, the discoverability at
n' = 1."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from memlab.scoring.registry import (
    DOC_SHARE,
    PERCENT,
    UNBOUNDED,
    Aggregation,
    PerDoc,
    mean,
    percent,
    scorer,
)


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


def discoverable(c, n, k: int) -> np.ndarray:
    """The unbiased estimate, from n samples of which c succeed, of the chance that at least
    one of k <= n fresh samples succeeds: 1 - C(n - c, k) / C(n, k) (pass@k, Chen et al. 2021,
    in their product form, exact in floating point for any n: prod over i < k of
    (n - c - i) / (n - i), 0 once n - c < k). Elementwise over arrays c, n."""
    c, n = np.asarray(c, dtype=np.int64), np.asarray(n, dtype=np.int64)
    if k < 1 or (n < k).any() or (c < 0).any() or (c > n).any():
        raise ValueError(f"discoverable: needs 1 <= k <= n and 0 <= c <= n (k={k})")
    miss = np.ones(c.shape, dtype=np.float64)
    for i in range(k):  # (n - c - i) < 0 where n - c < k: the product is 0 from there on
        miss *= np.clip(n - c - i, 0, None) / (n - i)
    return 1.0 - miss


def within(sec) -> list[int]:
    """score.discoverable_within, sorted, each once."""
    return sorted(set(sec.discoverable_within))


def _discoverability(x, doc, sec) -> dict[str, float]:
    """Each document's count c of exact samples of its n: the mean over documents of its
    discoverability at each n' <= the fewest samples of a document (`discoverable_n<n'>_pct`),
    the share of documents with c >= 1 (`exact_any_pct`) and the mean c (`exact_count_mean`)."""
    g = x.astype(bool).groupby(doc.to_numpy())
    c, n = g.sum().to_numpy(), g.size().to_numpy()
    out = {f"discoverable_n{k}_pct": 100.0 * float(discoverable(c, n, k).mean())
           for k in within(sec) if k <= n.min()}
    out["exact_any_pct"] = 100.0 * float((c > 0).mean())
    out["exact_count_mean"] = float(c.mean())
    return out


DISCOVERABILITY = PerDoc(
    Aggregation(_discoverability, lambda sec: {
        **{f"discoverable_n{k}_pct": PERCENT for k in within(sec)},
        "exact_any_pct": DOC_SHARE, "exact_count_mean": UNBOUNDED}),
    lambda sec: {**{f"discoverable_n{k}_pct": f"disc@{k}_%" for k in within(sec)},
                 "exact_any_pct": "exact_any_%"},
    doc="each document over its n samples, c of which extract the suffix exactly: disc@k_% "
        "the chance in % that at least one of k fresh samples would, 1 - C(n-c, k) / C(n, k) "
        "(Hayes et al. 2024; mean over documents; k > n: not shown), exact_any_% the "
        "documents with c >= 1")


@scorer("exact_extracted", pa.bool_(), aggregate=percent("exact_pct", share=True),
        report={"exact_pct": "exact_%"}, doc="samples whose suffix came back token for token",
        per_doc=DISCOVERABILITY)
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
