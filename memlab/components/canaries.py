"""Canaries (Carlini et al. 2019, "The Secret Sharer"): a fixed sentence with a random secret,
inserted into the training stream a configured number of times; `count` more canaries are never
inserted (repeat 0), the control.

Exposure of a canary with secret s in a space S of |S| possible secrets:
    exposure = log2 |S| - log2 rank(s),
rank(s) being s's position when every secret of S is ordered by the fine-tuned model's loss of
the whole canary sentence (lowest first; rank 1 = the model prefers s to every other secret).
|S| is too large to enumerate (10^9 for nine digits), so the rank is estimated from R secrets
drawn uniformly at random from S (the "sampling" estimator): with c of them having a lower
loss than s, the canary's share of S ranked at or above it is estimated by (c + 1) / (R + 1)
(the canary counted among the R + 1 candidates), so
    rank(s) ~ |S| (c + 1) / (R + 1)  ->  exposure ~ -log2((c + 1) / (R + 1)).
It cannot exceed log2(R + 1) bits, reported as the cap: a canary that beats all R alternatives
has an exposure of at least the cap (up to log2 |S|, which only more alternatives can show).
The alternatives are drawn with a fixed seed per canary, so every trial ranks a canary among
the same secrets.
"""

from __future__ import annotations

import math
import random

from memlab.config.schema import CanarySection


def canary_rows(c: CanarySection, seed: int) -> list[dict]:
    """The canaries of a dataset: doc_id, text, split "canary", dup_count (copies in the
    training stream, 0 for the controls). Deterministic in (settings, seed)."""
    if not c.count:
        return []
    rng = random.Random(f"memlab-canaries/{seed}")
    rows = []
    for r in [*c.repeats, 0]:
        for i in range(c.count):
            secret = "".join(rng.choice(c.alphabet) for _ in range(c.length))
            rows.append({"doc_id": f"canary-r{r}-{i}", "text": c.template.format(secret=secret),
                         "split": "canary", "dup_count": r, "response_start": 0,
                         "messages": None})
    return rows


def space_bits(c: CanarySection) -> float:
    return c.length * math.log2(len(c.alphabet))


def alternatives(c: CanarySection, doc_id: str, true_text: str, n: int) -> list[str]:
    """n canary sentences with other random secrets (never the canary's own), fixed per
    canary."""
    rng = random.Random(f"memlab-canary-alternatives/{doc_id}")
    out = []
    while len(out) < n:
        text = c.template.format(secret="".join(rng.choice(c.alphabet) for _ in range(c.length)))
        if text != true_text:
            out.append(text)
    return out


def exposure(beaten_by: int, alternatives: int) -> float:
    """The sampling estimate of exposure in bits (module docstring)."""
    return -math.log2((beaten_by + 1) / (alternatives + 1))
