"""The scorers of a study: memlab's own (exact extraction, relaxed similarity, plagiarism
typing, membership signals, utility; each registering itself on import), the opt-in calibrated
membership signals the study turns on, then the study's plugins, always in this order (the
score shards' column order does not depend on which module a process imported first). An
opt-in signal that is off has no column at all: the score shards of studies that do not use it
keep their columns and stay valid."""

from __future__ import annotations

from memlab.config.digests import content_key
from memlab.config.schema import CALIBRATED, ScoreSection
from memlab.scoring import (  # noqa: F401  (they register)
    calibrated,
    exact,
    membership,
    plagiarism,
    rank,
    similarity,
    utility,
)
from memlab.scoring.registry import SCORERS, Column, Scale, Scorer, load_plugins

BUILTIN = ("exact_extracted", "token_match_frac", "lcs_tokens", "similarity", "plagiarism",
           "membership", "rougeL", "bleu", "flesch")


def scorers(sec: ScoreSection) -> list[Scorer]:
    opted = (n for n in CALIBRATED if SCORERS[n].enabled(sec))
    return [SCORERS[n] for n in (*BUILTIN, *opted, *load_plugins(sec.plugins))]


def columns(sec: ScoreSection) -> list[Column]:
    return [c for s in scorers(sec) for c in s.columns]


def fingerprint(sec: ScoreSection) -> str:
    """Which columns the scorers make: score shards made by another set are stale."""
    return content_key([(c.name, str(c.type)) for c in columns(sec)])


def scales(sec: ScoreSection) -> dict[str, Scale]:
    """Summary metric -> its Scale, as the scorers' aggregations declare them, and
    sample-and-rank's (a metric not here is unbounded: perplexity, exposure, a plugin's plain
    function)."""
    return {**{m: s for c in columns(sec) for m, s in c.scales(sec).items()},
            **rank.scales(sec)}  # (sample-and-rank's figures: no scorer's columns)
