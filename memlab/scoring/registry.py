"""The scorer registry: every score column, how it is computed, aggregated and reported.

A registered scorer is, with no other edit anywhere:
- one or more columns of the score shards (name and Arrow type, in registration order);
- summary metrics per (split, dup_count) group (each column's `aggregate`), and per member
  group against all non-members (`contrast`, one value per document: membership inference),
  which are the trial's MLflow metrics;
- columns of the sweep's report (each column's `report`: summary metric -> heading, in the
  column's `table`, or a `Heading` naming its own table), members at each duplication level
  next to the non-member floor; the report lays out some tables itself (membership, utility:
  memlab/report/tables.py), reading their headings and docs from here all the same;
- with attack.samples_per_prompt > 1, summary metrics of each group's documents, each over
  all of its samples (each column's `per_doc`: discoverability, a document at its most severe
  plagiarism label, its best similarity), with report headings and a legend of their own that
  the report shows only where some trial has them: a study of one sample per prompt keeps
  every metric, table and results.csv column it had;
- what values each summary metric takes (`Scale`: its range, and whether it is a share of the
  group's samples or documents), declared by the aggregation that computes it
  (`Aggregation.scales`): the
  report's intervals stay inside a bounded metric's range (memlab/report/intervals.py). A
  metric no aggregation declares (a plugin's plain function, perplexity, exposure) is
  unbounded.

A per-sample scorer is a plain function of generation columns, registered with `@scorer`.
A scorer that loads something once (an embedding model, a corpus index) is registered with
`register(Scorer(...))`: `prepare(cfg, data_dir)` runs once per score stage (files shared by
every trial of the dataset) and `load(ctx)` once per Ray Data actor, returning the function
that turns a batch of generation rows into columns.

Plugins (`score.plugins`: Python files or modules) register scorers the same way; they are
imported wherever scores are computed or reported (`load_plugins`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from memlab.config.schema import ScoreSection, StudyConfig

Aggregate = Callable[[Any, ScoreSection], dict[str, float]]  # (pandas Series, section)
# (a member group's values, all non-members' values, section), one value per document
Contrast = Callable[[Any, Any, ScoreSection], dict[str, float]]
Report = Callable[[ScoreSection], dict[str, "str | Heading"]]


@dataclass(frozen=True)
class Scale:
    """What values a summary metric takes: its range (None: unbounded on that side) and whether
    it is a share of its group's samples in percent (k of n: a proportion, whose one-trial
    interval is a binomial one; a mean of fractions, as match_%, is bounded but not a share);
    `of`: the summary metric that counts what the share is of (`samples`: the group's
    samples; `docs`: its documents, for a share of documents over their samples)."""

    lo: float | None = None
    hi: float | None = None
    share: bool = False
    of: str = "samples"

    @property
    def bounded(self) -> bool:
        return self.lo is not None and self.hi is not None


UNBOUNDED = Scale()
PERCENT = Scale(0.0, 100.0)  # a mean of fractions (or of 0-100 scores), in percent
SHARE = Scale(0.0, 100.0, share=True)  # the share of a group's samples, in percent
DOC_SHARE = Scale(0.0, 100.0, share=True, of="docs")  # the share of a group's documents
UNIT = Scale(0.0, 1.0)  # a probability, an AUC
COSINE = Scale(-1.0, 1.0)


@dataclass(frozen=True)
class Aggregation:
    """A column's aggregation (or contrast) with the scale of each summary metric it gives:
    `scales(section)` -> metric -> Scale, named as `fn` names them."""

    fn: Callable[..., dict[str, float]]
    scales: Callable[[ScoreSection], dict[str, Scale]]

    def __call__(self, *args) -> dict[str, float]:
        return self.fn(*args)


def scales_of(fn: Callable | None, sec: ScoreSection) -> dict[str, Scale]:
    """The scales an aggregation or contrast declares (a plain function: none, unbounded)."""
    return fn.scales(sec) if isinstance(fn, Aggregation) else {}


@dataclass(frozen=True)
class Heading:
    """A report heading of a summary metric that goes to a table of its own, not its column's
    (a membership signal's AUC and its TPR at each false-positive rate: a table each)."""

    text: str
    table: str


@dataclass(frozen=True)
class PerDoc:
    """A column's summary metrics over documents, each document over all of its samples (a
    group with attack.samples_per_prompt > 1; with one sample per document it is not
    computed: the per-sample `aggregate` says the same). `aggregate(values, doc_ids, section)`
    gets the group's values and each one's document (pandas Series, aligned); `report`:
    summary metric -> heading, in `table`, shown where some trial has it; `doc`: its legend."""

    aggregate: Aggregation
    report: Report | None = None
    doc: str = ""
    table: str = "extraction"


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    aggregate: Aggregate | None = None  # summary metrics of one group's values
    report: Report | None = None  # summary metric -> report heading (None: not reported)
    doc: str = ""  # what a report heading means (the report's legend); {t}: headline threshold
    table: str = "extraction"  # which report table the headings go to
    contrast: Contrast | None = None  # summary metrics of a member group against non-members
    per_doc: PerDoc | None = None  # summary metrics of documents over their samples (n > 1)

    def scales(self, sec: ScoreSection) -> dict[str, Scale]:
        """Summary metric -> its Scale, of the column's aggregation, contrast and per_doc."""
        return {**scales_of(self.aggregate, sec), **scales_of(self.contrast, sec),
                **(scales_of(self.per_doc.aggregate, sec) if self.per_doc else {})}


@dataclass(frozen=True)
class Context:
    """What a scorer's `load` gets: the trial's config and what its `prepare` returned."""

    cfg: StudyConfig
    prepared: dict


@dataclass(frozen=True)
class Scorer:
    name: str
    columns: tuple[Column, ...]
    load: Callable[[Context], Callable[[list[dict]], dict[str, list]]]
    prepare: Callable[[StudyConfig, Path], dict] | None = None
    enabled: Callable[[ScoreSection], bool] = lambda sec: True


SCORERS: dict[str, Scorer] = {}


def register(s: Scorer) -> Scorer:
    taken = {c.name for other in SCORERS.values() for c in other.columns}
    if s.name in SCORERS or taken & {c.name for c in s.columns}:
        raise ValueError(f"scorer {s.name!r} (or one of its columns) is registered twice")
    SCORERS[s.name] = s
    return s


def scorer(name: str, type: pa.DataType, *, inputs: Sequence[str] = ("gen_ids", "suffix_ids"),
           aggregate: Aggregate | None = None, report: dict | Report | None = None,
           doc: str = "", table: str = "extraction",
           enabled: Callable[[ScoreSection], bool] = lambda sec: True,
           per_doc: PerDoc | None = None):
    """Register a per-sample scorer: `fn(*row[c] for c in inputs) -> value` of one generation
    row (columns of memlab.io.shards.GENERATION_SCHEMA); `enabled(score section)` says whether
    a study computes it (else its column is null)."""

    def wrap(fn: Callable) -> Callable:
        def load(ctx: Context):
            return lambda rows: {name: [fn(*(r[c] for c in inputs)) for r in rows]}

        rep = (lambda sec, d=report: d) if isinstance(report, dict) else report
        register(Scorer(name, (Column(name, type, aggregate, rep, doc, table,
                                      per_doc=per_doc),), load, enabled=enabled))
        return fn

    return wrap


# ---------------------------------------------------------------- aggregations of a group
def percent(metric: str, share: bool = False) -> Aggregation:
    """100 x the mean, in percent: the share of true values (`share`: a column of booleans, k
    of n samples) or a mean fraction (bounded, not a share)."""
    return Aggregation(lambda x, sec: {metric: 100.0 * float(x.astype(float).mean())},
                       lambda sec: {metric: SHARE if share else PERCENT})


def mean(metric: str, scale: Scale = UNBOUNDED) -> Aggregation:
    """The mean; `scale`: the range of the column's values (the mean's too)."""
    return Aggregation(lambda x, sec: {metric: float(x.astype(float).mean())},
                       lambda sec: {metric: scale})


def _at_least_names(fmt: str, sec: ScoreSection) -> list[tuple[float, str]]:
    return [(t, fmt.format(t=f"{t:g}")) for t in sec.sim_thresholds]


def percent_at_least(fmt: str) -> Aggregation:
    """The share of values >= each of score.sim_thresholds; `fmt` names it from {t}."""
    return Aggregation(
        lambda x, sec: {name: 100.0 * float((x >= t).mean())
                        for t, name in _at_least_names(fmt, sec)},
        lambda sec: {name: SHARE for _, name in _at_least_names(fmt, sec)})


def combined(*aggs: Aggregate) -> Aggregation:
    """Several aggregations of one column."""
    return Aggregation(lambda x, sec: {k: v for a in aggs for k, v in a(x, sec).items()},
                       lambda sec: {k: v for a in aggs for k, v in scales_of(a, sec).items()})


def label_percents(labels: Sequence[str], none: str, any_metric: str) -> Aggregation:
    """The share of each label, and of every label but `none`."""
    def agg(x, sec):
        out = {f"{lab}_pct": 100.0 * float((x == lab).mean()) for lab in labels}
        out[any_metric] = 100.0 * float((x != none).mean())
        return out
    return Aggregation(agg, lambda sec: {m: SHARE for m in
                                         [*(f"{lab}_pct" for lab in labels), any_metric]})


# ---------------------------------------------------------------- over each document's samples
def most_severe(labels: Sequence[str], none: str, any_metric: str) -> Aggregation:
    """Per document its most severe label over its samples (`labels` most severe first, then
    `none`): the share of documents at each label (`<label>_docs_pct`) and at any but `none`,
    and, over the documents at a label, the mean count of their samples at it
    (`<label>_docs_count_mean`; no document at it: not given)."""
    rank = {lab: i for i, lab in enumerate((*labels, none))}

    def agg(x, doc, sec):
        d = doc.to_numpy()
        r = x.map(rank)
        best = r.groupby(d).min()
        at_best = (r == r.groupby(d).transform("min")).groupby(d).sum()
        out = {}
        for i, lab in enumerate(labels):
            out[f"{lab}_docs_pct"] = 100.0 * float((best == i).mean())
            if (best == i).any():
                out[f"{lab}_docs_count_mean"] = float(at_best[best == i].mean())
        out[any_metric] = 100.0 * float((best < len(labels)).mean())
        return out

    return Aggregation(agg, lambda sec: {
        **{f"{lab}_docs_pct": DOC_SHARE for lab in labels}, any_metric: DOC_SHARE,
        **{f"{lab}_docs_count_mean": UNBOUNDED for lab in labels}})


def best_of_doc(metric: str, fmt: str, scale: Scale) -> Aggregation:
    """Per document the highest value over its samples: their mean (`metric`, of `scale`) and
    the share of documents whose best is >= each of score.sim_thresholds (`fmt` names it)."""
    def agg(x, doc, sec):
        best = x.astype(float).groupby(doc.to_numpy()).max()
        return {metric: float(best.mean()),
                **{name: 100.0 * float((best >= t).mean())
                   for t, name in _at_least_names(fmt, sec)}}

    return Aggregation(agg, lambda sec: {
        metric: scale, **{name: DOC_SHARE for _, name in _at_least_names(fmt, sec)}})


# ---------------------------------------------------------------- plugins
def load_plugins(plugins: Sequence[str]) -> list[str]:
    """Import each plugin once per process (a `.py` file by path, else a module by name);
    return the names of the scorers they registered, in plugin order."""
    from memlab import plugins as loader

    return loader.load("score.plugins", plugins, lambda: SCORERS)
