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
`score.membership.bootstrap` times, fixed seed). The per-document signals stay in the score
shards, so the worst cases are there to read.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pyarrow as pa

from memlab.scoring.registry import Column, Context, Scorer, register

SIGNALS = ("loss", "zlib", "mink", "minkpp", "ref")
FPRS = {"tpr1": 0.01, "tpr01": 0.001}  # metric prefix -> false-positive rate
SIGNAL_DOC = {
    "loss": "fine-tuned model's loss", "zlib": "loss / zlib bytes",
    "mink": "min-k% token log-prob", "minkpp": "min-k%++", "ref": "loss / base model's loss"}


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
def _auc(pos: np.ndarray, neg: np.ndarray, axis: int = -1) -> np.ndarray:
    """P(member score > non-member score) + P(tie) / 2, along `axis` (rank-sum form)."""
    from scipy.stats import rankdata

    n1, n0 = pos.shape[axis], neg.shape[axis]
    ranks = rankdata(np.concatenate([pos, neg], axis=axis), axis=axis)
    r1 = np.take(ranks, np.arange(n1), axis=axis).sum(axis=axis)
    return (r1 - n1 * (n1 + 1) / 2) / (n1 * n0)


def _tpr_at(pos: np.ndarray, neg: np.ndarray, fpr: float, axis: int = -1) -> np.ndarray:
    """The largest TPR over thresholds t (member if score >= t) with FPR(t) <= fpr: the share
    of members above the (m+1)-th largest non-member score, m = floor(fpr * n0)."""
    n0 = neg.shape[axis]
    m = math.floor(fpr * n0 + 1e-9)
    if m >= n0:
        return np.ones(np.delete(pos.shape, axis))
    cut = np.take(np.sort(neg, axis=axis), n0 - 1 - m, axis=axis)
    return (pos > np.expand_dims(cut, axis)).mean(axis=axis)


def _stats(pos, neg, axis=-1):
    """AUC, then TPR at each of FPRS (in percent), stacked."""
    return np.stack([_auc(pos, neg, axis)] +
                    [100.0 * _tpr_at(pos, neg, f, axis) for f in FPRS.values()])


def roc_metrics(pos, neg, name: str, resamples: int = 1000, seed: int = 0) -> dict[str, float]:
    """auc_<name>, tpr1_<name>, tpr01_<name>, each with _lo and _hi (bootstrap 95% interval;
    none when `resamples` is 0 or a side has fewer than 2 documents)."""
    pos = np.asarray(pos, dtype=np.float64)
    neg = np.asarray(neg, dtype=np.float64)
    pos, neg = pos[~np.isnan(pos)], neg[~np.isnan(neg)]
    if not len(pos) or not len(neg):
        return {}
    names = [f"auc_{name}"] + [f"{p}_{name}" for p in FPRS]
    out = dict(zip(names, _stats(pos, neg).tolist()))
    if resamples and len(pos) > 1 and len(neg) > 1:
        from scipy.stats import bootstrap

        with warnings.catch_warnings():  # a statistic constant over resamples (e.g. AUC 1)
            warnings.simplefilter("ignore")
            ci = bootstrap((pos, neg), _stats, n_resamples=resamples, vectorized=True,
                           paired=False, method="percentile", confidence_level=0.95,
                           rng=np.random.default_rng(seed)).confidence_interval
        for n, lo, hi in zip(names, ci.low, ci.high):
            out[f"{n}_lo"], out[f"{n}_hi"] = float(lo), float(hi)
    return out


def contrast(name: str):
    """A column's contrast aggregation: one member group against all non-members."""
    return lambda pos, neg, sec: roc_metrics(pos, neg, name, sec.membership.bootstrap)


def _report(name: str):
    return lambda sec: {f"auc_{name}": f"AUC {name}", f"tpr1_{name}": f"TPR@1%FPR {name}"}


def _load(ctx: Context):
    frac = ctx.cfg.score.membership.mink_frac

    def score(rows: list[dict]) -> dict[str, list]:
        found = [signals(r, frac) for r in rows]
        return {f"mia_{s}": [f[s] for f in found] for s in SIGNALS}

    return score


register(Scorer("membership", tuple(
    Column(f"mia_{s}", pa.float64(), contrast=contrast(s), report=_report(s), table="membership",
           doc=f"{s}: {SIGNAL_DOC[s]}") for s in SIGNALS), _load))
