"""Membership signals calibrated by known non-member text (METRICS.md section 7): RMIA, ReCaLL
and DC-PDD, each opt-in (score.membership.<name>.enabled) and each needing the population
split (data.num_population): held-out documents of the same source, disjoint from the members
and from the non-members that are scored, never trained on.

Each is one score column (`mia_<name>`, per sample, its document's value), oriented like the
signals of memlab/scoring/membership.py (higher = more likely a member) and reported the same
way: AUC, TPR at 1% and 0.1% FPR, bootstrap intervals, per member group against all non-members.
The window of every signal is the one the others read: a document's first train.seq_len tokens,
every token but the first scored.

- rmia (Zarifzadeh, Liu, Shokri, "Low-Cost High-Power Membership Inference Attacks", ICML
  2024), offline, the base model as the reference model: LR(x) = p(x | fine-tuned) /
  p(x | reference); score(x) = the share of population texts z with LR(x) / LR(z) > gamma.
  p(x | model) is the per-token geometric-mean probability exp(-NLL) of the window (documents
  of different lengths compare); p(x | reference) = ((1 + a) p(x | base) + (1 - a)) / 2, the
  paper's offline scaling (a = score.membership.rmia.offline_a; 1: the base model itself).
  Inputs: the generate stage's NLL of each population document under the fine-tuned model
  (`population-<shard>` side files), the base stage's under the base model.
- recall (Xie et al., "ReCaLL: Membership Inference via Relative Conditional
  Log-Likelihoods", EMNLP 2024): LL(x | P) / LL(x), LL the mean log-likelihood of the window
  under the fine-tuned model, P a prefix of score.membership.recall.shots population
  documents (their windows, in split order), read but not scored. Conditioning a member on
  non-member text lowers its log-likelihood more than a non-member's: the ratio of two negative
  numbers grows. Input: the generate stage's extra pass (`recall-<shard>` side files).
- dcpdd (Zhang et al., "Pretraining Data Detection for Large Language Models: A
  Divergence-based Calibration Method", EMNLP 2024): per token x_i of the window, after its
  first occurrence only, alpha_i = min(p_i log(1 / f(x_i)), a), p_i the fine-tuned model's
  probability of the token, f the token frequency distribution, a = score.membership.dcpdd.cap;
  the score is the mean alpha. memlab has no pretraining corpus, so f comes from the base
  model's side of the population split (score.membership.dcpdd.frequency): `base` (default),
  the base model's mean next-token distribution over the population documents' windows;
  `counts`, their tokens counted, Laplace-smoothed (the paper's estimator, on a small corpus).
  The generation rows hold the ids of the prompt and the reference suffix: DC-PDD reads the
  window's tokens among them (all of it where seq_len = prefix_tokens + suffix_tokens, as in
  the demo; otherwise the window's first prefix + suffix tokens). Input: the base stage's
  `freq-<shard>.npz`.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from memlab.config.schema import CALIBRATED
from memlab.scoring.membership import _report, contrast
from memlab.scoring.registry import Column, Context, Scorer, register

DOC = {
    "rmia": "RMIA: share of the population its target / base likelihood ratio beats",
    "recall": "ReCaLL: log-likelihood after a non-member prefix / without",
    "dcpdd": "DC-PDD: token probabilities calibrated by the base model's token frequencies",
}
COLUMNS = {s: f"mia_{s}" for s in CALIBRATED}


# ------------------------------------------------------------------ RMIA
def log_ratio(nll, base_nll, a: float = 1.0) -> np.ndarray:
    """log LR = log p(x | target) - log p(x | reference), p = exp(-mean NLL) and the reference
    ((1 + a) p_base + (1 - a)) / 2 (a = 1: p_base)."""
    nll, base_nll = np.asarray(nll, dtype=np.float64), np.asarray(base_nll, dtype=np.float64)
    if a == 1.0:
        return base_nll - nll
    return -nll - np.log(((1 + a) * np.exp(-base_nll) + (1 - a)) / 2)


def rmia_scores(llr_x, llr_population, gamma: float) -> np.ndarray:
    """Of each log LR of `llr_x`: the share of the population's log LRs z with
    LR(x) / LR(z) > gamma, that is llr_z < llr_x - log gamma (counted over the population
    sorted once: O((n + m) log m))."""
    pop = np.sort(np.asarray(llr_population, dtype=np.float64))
    x = np.asarray(llr_x, dtype=np.float64)
    if not len(pop):
        return np.full(len(x), math.nan)
    return np.searchsorted(pop, x - math.log(gamma), side="left") / len(pop)


# ------------------------------------------------------------------ ReCaLL
def recall_score(prefixed_nll, doc_nll) -> float:
    """LL(x | P) / LL(x) of mean NLLs (each LL = -NLL: the signs cancel)."""
    if prefixed_nll is None or not doc_nll:
        return math.nan
    return prefixed_nll / doc_nll


# ------------------------------------------------------------------ DC-PDD
def log_frequencies(freq: dict, which: str) -> np.ndarray:
    """log f of every token id from a base stage's summed frequencies (`base`: the mean of
    the base model's next-token distributions; `counts`: (1 + count) / (total + vocabulary))."""
    if which == "base":
        f = freq["base"] / max(1, int(freq["positions"]))
        return np.log(np.maximum(f, np.finfo(np.float64).tiny))
    c = np.asarray(freq["counts"], dtype=np.float64)
    return np.log((1 + c) / (c.sum() + len(c)))


def dcpdd_score(ids, token_logp, log_freq: np.ndarray, cap: float) -> float:
    """DC-PDD of one window: `ids` its token ids from the first, `token_logp` log p of each
    token after the first (the two aligned from there; the shorter one bounds it)."""
    n = min(len(ids) - 1, len(token_logp))
    seen: set[int] = set()
    alpha = []
    for t, lp in zip(ids[1:n + 1], token_logp[:n]):
        if t in seen:
            continue
        seen.add(t)
        alpha.append(min(math.exp(lp) * -log_freq[t], cap))
    return float(np.mean(alpha)) if alpha else math.nan


# ------------------------------------------------------------------ the scorers
def _rmia(ctx: Context):
    s = ctx.cfg.score.membership.rmia

    def score(rows: list[dict]) -> dict[str, list]:
        pop = rows[0].get("population") if rows else None
        x = log_ratio([r["doc_nll"] for r in rows],
                      [math.nan if r["base_nll"] is None else r["base_nll"] for r in rows],
                      s.offline_a)
        if not pop or not len(pop["nll"]):
            return {COLUMNS["rmia"]: [math.nan] * len(rows)}
        z = log_ratio(pop["nll"], pop["base_nll"], s.offline_a)
        got = rmia_scores(x, z[~np.isnan(z)], s.gamma)
        got[np.isnan(x)] = math.nan
        return {COLUMNS["rmia"]: got.tolist()}

    return score


def _recall(ctx: Context):
    def score(rows: list[dict]) -> dict[str, list]:
        return {COLUMNS["recall"]: [recall_score(r.get("prefixed_nll"), r["doc_nll"])
                                    for r in rows]}

    return score


def _dcpdd(ctx: Context):
    s = ctx.cfg.score.membership.dcpdd

    def score(rows: list[dict]) -> dict[str, list]:
        freq = rows[0].get("token_freq") if rows else None
        if freq is None:
            return {COLUMNS["dcpdd"]: [math.nan] * len(rows)}
        logf = log_frequencies(freq, s.frequency)
        return {COLUMNS["dcpdd"]: [dcpdd_score(list(r["prompt_ids"]) + list(r["suffix_ids"]),
                                               r["token_logp"], logf, s.cap) for r in rows]}

    return score


for _name, _load in (("rmia", _rmia), ("recall", _recall), ("dcpdd", _dcpdd)):
    register(Scorer(
        _name, (Column(COLUMNS[_name], pa.float64(), contrast=contrast(_name),
                       report=_report(_name), table="membership",
                       doc=f"{_name}: {DOC[_name]}"),), _load,
        enabled=lambda sec, n=_name: sec.membership.enabled and getattr(sec.membership,
                                                                        n).enabled))
