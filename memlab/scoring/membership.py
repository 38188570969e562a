"""Membership-inference signals (METRICS.md section 4), on members and non-members alike.

Per document, from the passes memlab already makes (the generate stage's teacher-forced pass
over the document's first train.seq_len tokens, memlab/engine/engine.py `token_stats`; the base
model's pass over the same tokens, memlab/stages/base.py), each oriented so that higher means
"more likely a member":
- loss:   -NLL, the fine-tuned model's mean next-token loss (Yeom et al. 2018)
- zlib:   -NLL / zlib bytes of the same text (Carlini et al. 2021)
- mink:   the mean log-probability of the k% least likely tokens (Min-K% Prob, Shi et al. 2024)
- minkpp: the same over the tokens' normalised scores (log p - mu) / sigma (Min-K%++, Zhang et
          al. 2024)
- ref:    -NLL / the base model's NLL (the loss relative to the model before fine-tuning)

Per member group (all members, and members of each dup_count) against all non-members, one
value per document: ROC AUC (ties count 1/2: sklearn's roc_auc_score), TPR at 1% and at 0.1% FPR
(the largest TPR of a threshold whose FPR is at most that: sklearn's roc_curve read off), each
with a percentile bootstrap 95% interval (members and non-members resampled separately,
`score.membership.bootstrap` times, fixed seed; `roc_metrics`). The per-document signals stay
in the score shards, so the worst cases are there to read.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pyarrow as pa

from memlab.scoring.registry import (
    PERCENT,
    UNIT,
    Aggregation,
    Column,
    Context,
    Heading,
    Scorer,
    register,
)

SIGNALS = ("loss", "zlib", "mink", "minkpp", "ref")
FPRS = {"tpr1": 0.01, "tpr01": 0.001}  # metric prefix -> false-positive rate
SIGNAL_DOC = {  # the report's legends and its ROC figure
    "loss": "loss of the fine-tuned model", "zlib": "loss / zlib bytes",
    "mink": "min-k% token log-prob", "minkpp": "min-k%++",
    "ref": "loss relative to the base model"}
COLUMNS = {s: f"mia_{s}" for s in SIGNALS}  # signal -> its column of the score shards


def min_k(values, frac: float) -> float:
    """Mean of the lowest `frac` of the values (int(n * frac) of them, at least one)."""
    if not len(values):
        return math.nan
    v = np.sort(np.asarray(values, dtype=np.float64))
    return float(v[:max(1, int(len(v) * frac))].mean())


def signals(row: dict, frac: float) -> dict[str, float]:
    """The membership signals of one generation row (its document's), higher = member."""
    nll, base = row["doc_nll"], row.get("base_nll")
    zbytes = row["doc_zlib_bytes"]
    return {
        "loss": -nll,
        "zlib": -nll / zbytes if zbytes else math.nan,
        "mink": min_k(row["token_logp"], frac),
        "minkpp": min_k(row["token_z"], frac),
        "ref": -nll / base if base else math.nan,
    }


# ------------------------------------------------------------------ ROC statistics
def _running(w: np.ndarray) -> np.ndarray:
    """(B, n) weights -> (B, n + 1) running sums from 0: the weight below each sorted position."""
    out = np.zeros((w.shape[0], w.shape[1] + 1))
    np.cumsum(w, axis=1, out=out[:, 1:])
    return out


def _weighted_roc(pos: np.ndarray, neg: np.ndarray, d: np.ndarray,
                  c: np.ndarray) -> np.ndarray:
    """AUC and the TPR at each of FPRS (percent) of B weighted samples, (1 + len(FPRS), B).

    pos, neg: the scores, each sorted ascending; d (B, n1), c (B, n0): how many times each
    member / non-member is in each sample (all ones: the data itself; a bootstrap resample:
    multiplicities summing to n1 / n0). Counting over the once-sorted scores instead of sorting
    every resample: O(B (n1 + n0)).
    AUC = P(member > non-member) + P(tie) / 2; the TPRs: `members_flagged`."""
    n1, n0 = len(pos), len(neg)
    dcum, ccum = _running(d), _running(c)
    below = ccum[:, np.searchsorted(neg, pos, "left")]  # non-members below each member
    ties = ccum[:, np.searchsorted(neg, pos, "right")] - below
    auc = (d * (below + 0.5 * ties)).sum(axis=1) / (n1 * n0)
    return np.vstack([auc, 100.0 * members_flagged(pos, neg, dcum, ccum, FPRS.values()) / n1])


def members_flagged(pos: np.ndarray, neg: np.ndarray, dcum: np.ndarray, ccum: np.ndarray,
                    fprs) -> np.ndarray:
    """The members the ROC curve flags at each false-positive rate f of `fprs`, counted by
    their weights, (len(fprs), B): the most over thresholds t (member if score >= t) with at
    most m = floor(f * n0) non-members at or above t, that is the members above the (m+1)-th
    largest non-member (tied scores move together; all members once m >= n0).
    pos, neg: sorted as in `_weighted_roc`; dcum, ccum: the running sums of their weights.
    memlab's one reading of a ROC curve: the tpr metrics and the report's curves
    (`tpr_at_fpr`)."""
    b, n1, n0 = dcum.shape[0], len(pos), len(neg)
    at_or_above = n0 - ccum[:, :-1]  # non-members at sorted position >= j
    out = []
    for f in fprs:
        m = math.floor(f * n0 + 1e-9)
        if m >= n0:
            out.append(np.full(b, float(n1)))
            continue
        cut = neg[(at_or_above >= m + 1).sum(axis=1) - 1]
        out.append(n1 - dcum[np.arange(b), np.searchsorted(pos, cut, "right")])
    return np.stack(out)


def tpr_at_fpr(member, nonmember, fprs) -> np.ndarray:
    """The TPR (a fraction) at each false-positive rate of `fprs` of one score per document
    (higher = member): `members_flagged` with every weight 1. From the members above every
    non-member (FPR 0: the curve's start) to all of them (FPR 1: its end)."""
    pos = np.sort(np.asarray(member, dtype=np.float64))
    neg = np.sort(np.asarray(nonmember, dtype=np.float64))
    dcum, ccum = _running(np.ones((1, len(pos)))), _running(np.ones((1, len(neg))))
    return members_flagged(pos, neg, dcum, ccum, fprs)[:, 0] / len(pos)


@functools.lru_cache(maxsize=4)
def _multiplicities(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n): how many times each of n items is drawn in each resample of size n
    (kept: every signal of a group is resampled by the same draws)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n)) + (np.arange(resamples) * n)[:, None]
    out = np.bincount(draws.ravel(), minlength=resamples * n).reshape(resamples, n)
    out.flags.writeable = False
    return out


def roc_metrics(pos, neg, name: str, resamples: int = 1000, seed: int = 0) -> dict[str, float]:
    """auc_<name>, tpr1_<name>, tpr01_<name>, each with _lo and _hi: the 2.5th and 97.5th
    percentiles over `resamples` bootstrap resamples (members and non-members drawn with
    replacement separately, fixed seed: the same draws for every signal of a group); none when
    `resamples` is 0 or a side has fewer than 2 documents. Hand-written rather than
    scipy.stats.bootstrap, which sorts every resample anew (about 7x slower here)."""
    pos = np.asarray(pos, dtype=np.float64)
    neg = np.asarray(neg, dtype=np.float64)
    pos, neg = pos[~np.isnan(pos)], neg[~np.isnan(neg)]
    if not len(pos) or not len(neg):
        return {}
    names = [f"auc_{name}"] + [f"{p}_{name}" for p in FPRS]
    po, no = np.argsort(pos, kind="stable"), np.argsort(neg, kind="stable")
    pos, neg = pos[po], neg[no]
    point = _weighted_roc(pos, neg, np.ones((1, len(pos))), np.ones((1, len(neg))))[:, 0]
    out = dict(zip(names, point.tolist()))
    if resamples and len(pos) > 1 and len(neg) > 1:
        d = _multiplicities(len(pos), resamples, seed)[:, po]  # (drawn in document order)
        c = _multiplicities(len(neg), resamples, seed + 1)[:, no]
        lo, hi = np.percentile(_weighted_roc(pos, neg, d, c), [2.5, 97.5], axis=1)
        for n, a, z in zip(names, lo, hi):
            out[f"{n}_lo"], out[f"{n}_hi"] = float(a), float(z)
    return out


def contrast(name: str) -> Aggregation:
    """A column's contrast aggregation: one member group against all non-members (the AUC in
    [0, 1]; each TPR in percent, a share of the group's documents, not of its samples: its
    one-trial interval is the bootstrap's, not a binomial one over the samples)."""
    return Aggregation(lambda pos, neg, sec: roc_metrics(pos, neg, name, sec.membership.bootstrap),
                       lambda sec: {f"auc_{name}": UNIT, **{f"{p}_{name}": PERCENT for p in FPRS}})


def _report(name: str):
    """The report's membership tables: a signal's AUC, and its TPR at each of FPRS, a table
    each, under the signal's name."""
    tables = {f"auc_{name}": "membership_auc", **{f"{p}_{name}": f"membership_{p}" for p in FPRS}}
    return lambda sec: {metric: Heading(name, table) for metric, table in tables.items()}


def _load(ctx: Context):
    frac = ctx.cfg.score.membership.mink_frac

    def score(rows: list[dict]) -> dict[str, list]:
        found = [signals(r, frac) for r in rows]
        return {COLUMNS[s]: [f[s] for f in found] for s in SIGNALS}

    return score


register(Scorer("membership", tuple(
    Column(COLUMNS[s], pa.float64(), contrast=contrast(s), report=_report(s), table="membership",
           doc=f"{s}: {SIGNAL_DOC[s]}") for s in SIGNALS), _load,
    enabled=lambda sec: sec.membership.enabled))
