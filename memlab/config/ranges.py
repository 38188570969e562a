"""The range of every numeric setting (checked by `memlab validate`, `plan`, `run` and `submit`
before anything starts; memlab/config/expand.py reports a value out of range as one line naming
its key). Every float must also be finite. A numeric field of the schema without a rule here
fails tests/unit/test_config_ranges.py, so a new field cannot skip its range."""

from __future__ import annotations

import fnmatch
import math
from typing import Any

INF = math.inf

# dotted key (fnmatch pattern) -> (low, low included, high, high included); lists: each item
RANGES: dict[str, tuple[float, bool, float, bool]] = {
    "seed": (0, True, INF, False),
    "sweep.max_concurrent_trials": (0, True, INF, False),
    "sweep.max_failures": (-1, True, INF, False),  # (-1: Ray retries without end)
    "data.num_docs": (1, True, INF, False),
    "data.min_words": (0, True, INF, False),
    "data.num_members": (1, True, INF, False),
    "data.num_nonmembers": (1, True, INF, False),
    "data.dup_factor": (1, True, INF, False),
    "data.dup_mix": (1, True, INF, False),
    "data.seed": (0, True, INF, False),
    "data.shard_rows": (1, True, INF, False),
    "data.canaries.count": (0, True, INF, False),
    "data.canaries.length": (1, True, INF, False),
    "data.canaries.repeats": (1, True, INF, False),
    "model.tiny.*": (1, True, INF, False),
    "train.epochs": (1, True, INF, False),
    "train.max_steps": (0, True, INF, False),
    "train.batch_size": (1, True, INF, False),
    "train.seq_len": (2, True, INF, False),
    "train.warmup_steps": (0, True, INF, False),
    "train.weight_decay": (0, True, INF, False),
    "train.threads": (0, True, INF, False),
    "train.log_every": (1, True, INF, False),
    "train.checkpoint_every": (0, True, INF, False),
    "train.micro_batch": (0, True, INF, False),
    "train.compile_min_tokens": (0, True, INF, False),
    "train.*.lr": (0, False, INF, False),
    "train.full.zero_stage": (0, True, 3, True),
    "train.lora.r": (1, True, INF, False),
    "train.lora.alpha": (0, False, INF, False),
    "train.lora.dropout": (0, True, 1, False),
    "attack.prefix_tokens": (1, True, INF, False),
    "attack.suffix_tokens": (1, True, INF, False),
    "attack.max_new_tokens": (1, True, INF, False),
    "attack.samples_per_prompt": (1, True, INF, False),
    "attack.temperature": (0, False, INF, False),
    "attack.top_k": (0, True, INF, False),
    "attack.top_p": (0, False, 1, True),
    "attack.batch_size": (1, True, INF, False),
    "attack.canary_alternatives": (1, True, INF, False),
    "attack.actors": (1, True, INF, False),
    "attack.warm_models": (1, True, INF, False),
    "attack.actor_cpus": (0, True, INF, False),
    "attack.actor_gpus": (0, True, INF, False),
    "score.sim_thresholds": (-1, True, 1, True),
    "score.headline_threshold": (-1, True, 1, True),
    "score.corpus_block": (1, True, INF, False),
    "score.corpus_ann_above": (0, True, INF, False),
    "score.corpus_ann_candidates": (1, True, INF, False),
    "score.corpus_ann_breadth": (1, True, INF, False),
    "score.plagiarism.n_candidates": (1, True, INF, False),
    "score.plagiarism.bm25_k1": (0, True, INF, False),
    "score.plagiarism.bm25_b": (0, True, 1, True),
    "score.plagiarism.min_sentence_words": (0, True, INF, False),
    "score.plagiarism.seed_cosine": (0, True, 1, True),
    "score.plagiarism.seed_dice": (0, True, 1, True),
    "score.plagiarism.max_gap": (0, True, INF, False),
    "score.plagiarism.fragment_cosine": (0, True, 1, True),
    "score.plagiarism.min_case_chars": (0, True, INF, False),
    "score.plagiarism.verbatim_chars": (1, True, INF, False),
    "score.plagiarism.idea_max_gap": (0, True, INF, False),
    "score.plagiarism.idea_ratio": (0, False, INF, False),
    # (a cross-encoder judge's scores are logits: any finite threshold)
    "score.plagiarism.paraphrase_high": (-INF, False, INF, False),
    "score.plagiarism.semantic.seed": (-1, True, 1, True),
    "score.plagiarism.semantic.fragment": (-1, True, 1, True),
    "score.plagiarism.semantic.idea_cover": (-1, True, 1, True),
    "score.plagiarism.semantic.idea_related": (-1, True, 1, True),
    "score.plagiarism.semantic.idea_max_sentences": (1, True, INF, False),
    "score.plagiarism.semantic.idea_ratio": (0, False, INF, False),
    "score.plagiarism.semantic.dense_candidates": (0, True, INF, False),
    "score.plagiarism.semantic.dense_breadth": (1, True, INF, False),
    "score.membership.mink_frac": (0, False, 1, True),
    "score.membership.bootstrap": (0, True, INF, False),
    "resources.*.cpu": (0, True, INF, False),
    "resources.*.gpu": (0, True, INF, False),
    "resources.*.workers": (1, True, INF, False),
    "resources.share_margin": (1, True, INF, False),
    "resources.gpu_mem_gb": (0, False, INF, False),
    "tracking.retry_s": (0, True, INF, False),
    "tracking.system_metrics_s": (0.1, True, 3600, True),
}


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def rule(key: str) -> tuple[float, bool, float, bool] | None:
    for pattern, r in RANGES.items():
        if fnmatch.fnmatchcase(key, pattern):
            return r
    return None


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
    r = rule(key)
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
