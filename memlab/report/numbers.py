"""The report's numbers: finished trials that differ only by seed as one group, (strategy,
model, the other grid axes). Every metric of a group, at each duplication level, is the mean
over its seeds with a 95% interval and n, the number of seeds: over n >= 2 seeds, an interval
inside the metric's range where the scorer registry declares one (rates, AUC; the method is
score.intervals.over_seeds), else the Student-t interval of the mean; with one seed, the
trial's own bootstrap interval where its score summary has one (`<m>_lo`, `<m>_hi`), else for
a share of samples its binomial interval (memlab/report/intervals.py). Next to the metrics,
what they are over: the documents of each row (`docs`: members at each duplication level, all
members, the non-members; one member of 8 moves a rate by 12.5 points) and the base model's
parameters as loaded (`model_params`). And the ROC curves of the headline membership signal,
read off by the membership scorer's own reading, averaged over seeds, from the smallest
false-positive rate the non-members resolve.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memlab.components.models import checkpoint_params
from memlab.config.expand import Study
from memlab.config.labels import model_label
from memlab.io.paths import stage_dir, sweep_root
from memlab.io.shards import read_manifest, read_summary
from memlab.report import intervals as ci
from memlab.report.intervals import Intervals
from memlab.scoring.membership import COLUMNS, tpr_at_fpr
from memlab.scoring.registry import UNBOUNDED, Scale
from memlab.strategies import STRATEGIES

SHOWN_ELSEWHERE = ("train.strategy", "seed", "model.name", "model.source")  # grid axes
TRAIN = {"trainable_params": "trainable_params", "train_s": "train_time_s",
         # the model while it trains (LoRA's adapters, head-only's untied head included):
         # not the model's size, which is model_params (the base model as loaded)
         "params_in_training": "total_params",
         "model_params": "model_params",
         # DP fine-tuning (train.dp): the epsilon spent, its target, the noise multiplier
         "dp_eps": "dp_epsilon_spent", "dp_eps_target": "dp_epsilon_target",
         "noise": "dp_noise_multiplier"}  # group figure -> result.json train field
FPR_GRID = np.logspace(-3, 0, 61)  # where ROC curves of several seeds are averaged (from the
# smallest false-positive rate their non-members resolve, 1 / their count)
HEADLINE = ("ref", "loss")  # the ROC figure's signal: the first that some trial has


def axes(study: Study) -> list[str]:
    """The grid axes that tell rows apart besides strategy, model, dup and seed. An axis that
    takes one value per model (a bundle axis choosing the model, as in sweeps/paper.yaml) is
    the model column under another name: left out."""
    out = []
    for k in study.grid:
        if k in SHOWN_ELSEWHERE:
            continue
        per_model: dict[str, set[str]] = {}
        for t in study.trials:
            per_model.setdefault(model_label(t.config), set()).add(repr(t.point.get(k)))
        if len(per_model) > 1 and all(len(v) == 1 for v in per_model.values()):
            continue
        out.append(k)
    return out


@dataclass(frozen=True)
class Stat:
    """One metric of a group of trials: a value per seed and a 95% interval (None: none)."""

    values: tuple[float, ...]
    lo: float | None = None
    hi: float | None = None

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)


def over_seeds(values: list[float], bootstrap: tuple = (None, None), scale: Scale = UNBOUNDED,
               samples: float | None = None, how: Intervals | None = None) -> Stat | None:
    """The mean of `values` (one per seed) of a metric of `scale` with its 95% interval
    (intervals.over_seeds; `samples`: the fewest samples a value is over, None: not known);
    with one value, the interval given (the trial's bootstrap interval) when both its bounds
    are known, else for a share of samples its binomial interval (intervals.one_share)."""
    if not values:
        return None
    settings = (how or Intervals()).settings
    if len(values) == 1:
        lo, hi = bootstrap
        if lo is not None and hi is not None:
            return Stat(tuple(values), lo, hi)
        if scale.share and samples:
            return Stat(tuple(values), *ci.one_share(values[0], samples, settings.one_seed))
        return Stat(tuple(values))
    return Stat(tuple(values), *ci.over_seeds(values, scale, samples, settings))


@dataclass
class Group:
    """The trials of one (strategy, model, other grid axes) setting, one per seed."""

    key: dict  # strategy, model and each other grid axis -> its value
    seeds: list
    trial_keys: list[str]
    stats: dict[tuple[str, int, str], Stat]  # (split, dup_count, metric) -> over the seeds
    train: dict[str, Stat]  # TRAIN's figures over the seeds
    order: int = 0  # where its first trial is in the study

    def get(self, split: str, dup: int, metric: str) -> Stat | None:
        return self.stats.get((split, dup, metric))

    def dups(self, split: str = "member") -> list[int]:
        """The split's levels (members: duplication counts; canaries: repeat counts)."""
        return sorted({d for s, d, m in self.stats if s == split and d >= 0 and m != "docs"})

    def minus_floor(self, metric: str, dup: int) -> Stat | None:
        """Members at `dup` minus the non-member floor (in the metric's units: points of a
        rate), over the seeds: each seed's own difference, with its Student-t interval, where
        both are known for every seed; else the difference of the two means, no interval."""
        member, floor = self.get("member", dup, metric), self.get("nonmember", -1, metric)
        if member is None or floor is None:
            return None
        if member.n == floor.n == len(self.seeds):
            return over_seeds([m - f for m, f in zip(member.values, floor.values)])
        return Stat((member.mean - floor.mean,))

    def docs(self, split: str, dup: int = -1) -> tuple[int, int] | None:
        """The fewest and the most documents of a row over the seeds (members at `dup`, -1:
        all of the split); None: not known (a trial scored without its shards kept)."""
        s = self.get(split, dup, "docs")
        return None if s is None else (int(min(s.values)), int(max(s.values)))


def _values(rows: list[dict]) -> dict[tuple[str, int, str], float]:
    return {(r["split"], int(r["dup_count"]), r["metric"]): float(r["value"]) for r in rows
            if r["value"] is not None and not math.isnan(r["value"])}


def aggregate(records: list[tuple[dict, list[dict]]], axis_names: list[str],
              how: Intervals | None = None) -> list[Group]:
    """Group finished trials that differ only by seed. `records`: (result.json, score summary
    rows) per trial, in study order; every summary metric becomes a Stat over the seeds (the
    `<m>_lo` / `<m>_hi` bounds of a metric `<m>` are its one-seed interval, not metrics), its
    interval by `how` (None: the default settings and memlab's own scorers' scales) over the
    samples of its row (its summary's `samples`; a share of documents, over its `docs`; a
    share of samples where a prompt has several, over its `docs` too: a document's samples are
    not independent, so the interval is the conservative one)."""
    how = how or Intervals.of()
    by: dict[str, list] = {}
    for i, (res, rows) in enumerate(records):
        key = {"strategy": res["strategy"], "model": res["model"],
               **{a: res.get("point", {}).get(a) for a in axis_names}}
        by.setdefault(json.dumps(key, sort_keys=True, default=str), []).append(
            (i, key, res, _values(rows)))
    groups = []
    for trials in by.values():
        trials.sort(key=lambda x: x[2].get("seed", 0))
        names = list(dict.fromkeys(n for *_, v in trials for n in v))
        stats = {}
        for split, dup, metric in names:
            if metric.endswith(("_lo", "_hi")) and (split, dup, metric[:-3]) in names:
                continue
            have = [v for *_, v in trials if (split, dup, metric) in v]
            bounds = (have[0].get((split, dup, f"{metric}_lo")),
                      have[0].get((split, dup, f"{metric}_hi")))
            of = how.scale(metric).of  # (a share of samples or of documents)
            samples = [v.get((split, dup, of)) for v in have]
            if of == "samples":  # several samples of one prompt are not independent: over
                docs = [v.get((split, dup, "docs")) for v in have]  # its documents then
                samples = [d if None not in (n, d) and d < n else n
                           for n, d in zip(samples, docs)]
            stats[(split, dup, metric)] = over_seeds(
                [v[(split, dup, metric)] for v in have], bounds, how.scale(metric),
                None if None in samples else min(samples), how)
        train = {name: over_seeds([float(r["train"][src]) for _, _, r, _ in trials
                                   if r.get("train", {}).get(src) is not None])
                 for name, src in TRAIN.items()}
        groups.append(Group(key=trials[0][1], seeds=[r.get("seed") for _, _, r, _ in trials],
                            trial_keys=[r["key"] for _, _, r, _ in trials], stats=stats,
                            train={k: s for k, s in train.items() if s is not None},
                            order=trials[0][0]))
    return in_order(groups, axis_names)


def in_order(groups: list[Group], axis_names: list[str]) -> list[Group]:
    """The report's order, in every table and figure: models as they are, and within a model
    by trainable parameters (the mean over seeds, fewest first: the adapters before full
    fine-tuning); ties, and groups without a count after those with one, in the
    registry's order (STRATEGIES; a study's own strategy after them), then by the other axes
    (unset first, as DP off before DP on; numbers by value: 8 before 16)."""
    rank = {s: i for i, s in enumerate(STRATEGIES)}

    def value(v) -> tuple:
        if v is None:
            return (0, 0.0, "")
        if isinstance(v, int | float) and not isinstance(v, bool):
            return (1, float(v), "")
        return (2, 0.0, str(v))

    def key(g: Group) -> tuple:
        n = g.train.get("trainable_params")
        return (str(g.key["model"]), n is None, 0.0 if n is None else n.mean,
                rank.get(g.key["strategy"], len(rank)), str(g.key["strategy"]),
                *(value(g.key[a]) for a in axis_names))

    return sorted(groups, key=key)


def doc_counts(score_dir: Path) -> list[dict]:
    """Summary rows (metric `docs`) of the documents a trial's score shards hold: members at
    each duplication level and all, the non-members; counted from the shards, so trials scored
    before the summary had them get them too."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = sorted(Path(score_dir).glob("part-*.parquet"))
    if not parts:
        return []
    t = pa.concat_tables([pq.read_table(p, columns=["doc_id", "split", "dup_count"])
                          for p in parts]).to_pandas().drop_duplicates("doc_id")
    rows = [("member", int(d), n) for d, n in
            t[t.split == "member"].groupby("dup_count").size().items()]
    rows += [(s, -1, int((t.split == s).sum())) for s in ("member", "nonmember")]
    return [{"split": s, "dup_count": d, "metric": "docs", "value": float(n)}
            for s, d, n in rows if n]


def load_records(study: Study) -> list[tuple[dict, list[dict]]]:
    """(result.json, score summary rows) of every finished trial, in study order; with the
    documents of each row (`doc_counts`) and the base model's parameters as loaded, from its
    checkpoint (`model_params`: one count, the same for every strategy, where the training's
    `total_params` counts LoRA's adapters and an untied head too)."""
    records, seen = [], set()
    for t in study.trials:
        path = sweep_root(t.config) / t.key / "result.json"
        if t.key in seen or not path.is_file():
            continue
        seen.add(t.key)
        score = stage_dir(t.config, "score", t.key)
        summary = read_summary(score).to_pylist()
        if not any(r["metric"] == "docs" for r in summary):
            summary += doc_counts(score)
        res = json.loads(path.read_text())
        train = read_manifest(stage_dir(t.config, "train", t.keys.train)) or {}
        if train.get("base_model"):
            res.setdefault("train", {})["model_params"] = checkpoint_params(train["base_model"])
        records.append((res, summary))
    return records


# ---------------------------------------------------------------- ROC curves
def _doc_scores(score_dir: Path):
    """One row per document (sample_idx 0) of a trial's score shards: split and the headline
    candidates' membership scores (None: no shards)."""
    import pandas as pd
    import pyarrow.parquet as pq

    frames = []
    for part in sorted(Path(score_dir).glob("part-*.parquet")):
        names = pq.read_schema(part).names
        cols = [c for c in ("split", "sample_idx", *(COLUMNS[s] for s in HEADLINE))
                if c in names]
        frames.append(pq.read_table(part, columns=cols).to_pandas())
    if not frames:
        return None
    df = pd.concat(frames, ignore_index=True)
    return df[df.sample_idx == 0] if "sample_idx" in df else df


def roc_curves(groups: list[Group], score_dirs: dict[str, Path]
               ) -> tuple[str | None, dict[int, tuple[np.ndarray, np.ndarray]]]:
    """The headline signal (the first of HEADLINE that a trial has) and, per group (by its
    index), its ROC curve (FPR, TPR), all members against all non-members, averaged over its
    seeds: from 1 / the non-members (the smallest false-positive rate above 0 they resolve;
    of the seed with the fewest) along FPR_GRID to 1."""
    scores = {k: _doc_scores(score_dirs[k]) for g in groups for k in g.trial_keys
              if k in score_dirs}

    def has(s: str) -> bool:
        return any(df is not None and COLUMNS[s] in df and df[COLUMNS[s]].notna().any()
                   for df in scores.values())

    signal = next((s for s in HEADLINE if has(s)), None)
    if signal is None:
        return None, {}
    col, curves = COLUMNS[signal], {}
    for i, g in enumerate(groups):
        pairs = []
        for k in g.trial_keys:
            df = scores.get(k)
            if df is None or col not in df:
                continue
            df = df[df[col].notna()]
            m = df[df.split == "member"][col].to_numpy()
            nm = df[df.split == "nonmember"][col].to_numpy()
            if len(m) and len(nm):
                pairs.append((m, nm))
        if pairs:
            start = 1 / min(len(nm) for _, nm in pairs)
            fpr = np.r_[start, FPR_GRID[FPR_GRID > start * (1 + 1e-9)]]
            curves[i] = (fpr, np.mean([tpr_at_fpr(m, nm, fpr) for m, nm in pairs], axis=0))
    return signal, curves
