"""Report stage: the sweep's results as a paper would print them, over seeds.

Trials that differ only by seed are one group: (strategy, model, the other grid axes). Every
reported metric of a group, at each duplication level, is the mean over its seeds with a 95%
interval and n, the number of seeds: the Student-t interval of the mean when n >= 2; with one
seed, the trial's own bootstrap interval where its score summary has one (`<m>_lo`, `<m>_hi`).

Tables (printed, and in results.md, results.html; every metric machine-readable in results.csv,
one row per group and duplication level):
- extraction and plagiarism: the scorer registry's columns (each registered column's `report`
  headings), members at each duplication level next to the non-member floor (`floor_*`);
- membership inference: AUC and TPR at 1% FPR of each signal, members of each level against
  all non-members;
- utility: held-out perplexity (fine-tuned and base model), ROUGE-L, BLEU and reading ease of
  the non-member generations, and the training figures, one row per group;
- canary exposure, when the trials inserted canaries.

Figures: results.png (rate against duplication, a panel per model), scale.png (rate against
model scale), roc.png (ROC curves of the headline membership signal, averaged over seeds).
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tabulate import tabulate

from memlab.config.expand import Study
from memlab.config.labels import model_label
from memlab.config.schema import ScoreSection
from memlab.io.paths import stage_dir, sweep_root
from memlab.io.shards import read_summary
from memlab.scoring import suite
from memlab.strategies import STRATEGIES

SHOWN_ELSEWHERE = ("train.strategy", "seed", "model.name", "model.source")  # grid axes
LAID_OUT_HERE = ("membership", "utility", "canary")  # registry tables this module lays out
TITLES = {  # the registry's tables, by the `table` of their registered columns
    "extraction": "Extraction: members at each duplication level against the non-member floor "
                  "(% of samples)",
    "plagiarism": "Plagiarism typing of the generations against the whole fine-tuning corpus "
                  "(% of samples; METRICS.md section 2)",
}
SIGNALS = {  # membership signals, in the order they are shown
    "loss": "loss of the fine-tuned model",
    "zlib": "loss / zlib bytes",
    "mink": "min-k% token log-prob",
    "minkpp": "min-k%++",
    "ref": "loss relative to the base model",
}
UTILITY = (  # (heading, summary metric of the non-members, decimals)
    ("heldout_ppl", "ppl", 2), ("base_ppl", "base_ppl", 2),
    ("rougeL", "rougeL", 1), ("bleu", "bleu", 1), ("flesch", "flesch", 1))
TRAIN = {"trainable_params": "trainable_params", "train_s": "train_time_s",
         "total_params": "total_params"}  # group figure -> result.json train field
FIGURES = ("results.png", "scale.png", "roc.png")
FILES = ("results.csv", "results.md", "results.html", *FIGURES)
FPR_GRID = np.logspace(-3, 0, 61)  # where ROC curves of several seeds are averaged
PREAMBLE = ("Each cell: mean [95% interval] over seeds: the Student-t interval of the mean when "
            "n >= 2; with one seed, that trial's bootstrap interval (none where it has none). "
            "n: the seeds a row averages (the fewest of its cells, where they differ).")


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


def headings(secs: list[ScoreSection]) -> dict[str, list[tuple[str, str, str]]]:
    """table -> [(summary metric, heading, legend text)] of the registered columns of every
    score section given (the trials may differ in thresholds or plugins), in first-seen
    order."""
    out: dict[str, list[tuple[str, str, str]]] = {}
    for sec in secs:
        for c in suite.columns(sec):
            for metric, head in (c.report(sec) if c.report else {}).items():
                entry = (metric, head, c.doc.format(t=f"{sec.headline_threshold:g}"))
                if entry not in out.setdefault(c.table, []):
                    out[c.table].append(entry)
    return out


# ---------------------------------------------------------------- aggregation over seeds
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


def over_seeds(values: list[float], bootstrap: tuple = (None, None)) -> Stat | None:
    """The mean of `values` (one per seed) with its Student-t 95% interval; with one value,
    the interval given (the trial's bootstrap interval) when both its bounds are known."""
    if not values:
        return None
    if len(values) == 1:
        lo, hi = bootstrap
        return Stat(tuple(values), lo, hi) if lo is not None and hi is not None else \
            Stat(tuple(values))
    from scipy.stats import t

    mean = statistics.fmean(values)
    half = t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return Stat(tuple(values), mean - half, mean + half)


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
        return sorted({d for s, d, _ in self.stats if s == split and d >= 0})


def _values(rows: list[dict]) -> dict[tuple[str, int, str], float]:
    return {(r["split"], int(r["dup_count"]), r["metric"]): float(r["value"]) for r in rows
            if r["value"] is not None and not math.isnan(r["value"])}


def aggregate(records: list[tuple[dict, list[dict]]], axis_names: list[str]) -> list[Group]:
    """Group finished trials that differ only by seed. `records`: (result.json, score summary
    rows) per trial, in study order; every summary metric becomes a Stat over the seeds (the
    `<m>_lo` / `<m>_hi` bounds of a metric `<m>` are its one-seed interval, not metrics)."""
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
            stats[(split, dup, metric)] = over_seeds([v[(split, dup, metric)] for v in have],
                                                     bounds)
        train = {name: over_seeds([float(r["train"][src]) for _, _, r, _ in trials
                                   if r.get("train", {}).get(src) is not None])
                 for name, src in TRAIN.items()}
        groups.append(Group(key=trials[0][1], seeds=[r.get("seed") for _, _, r, _ in trials],
                            trial_keys=[r["key"] for _, _, r, _ in trials], stats=stats,
                            train={k: s for k, s in train.items() if s is not None},
                            order=trials[0][0]))
    rank = {s: i for i, s in enumerate(STRATEGIES)}
    groups.sort(key=lambda g: (str(g.key["model"]), rank.get(g.key["strategy"], len(rank)),
                               *(str(g.key[a]) for a in axis_names)))
    return groups


# ---------------------------------------------------------------- tables
@dataclass(frozen=True)
class Metric:
    name: str  # CSV column stem
    head: str  # heading of the printed tables
    get: Callable[[Group, int | None], Stat | None]
    digits: int = 1


@dataclass
class Table:
    title: str
    legend: str
    keys: list[str]  # key columns: strategy, model, axes, and "dup" / "repeats" (the level)
    metrics: list[Metric]
    rows: list[tuple[Group, int | None]]  # (group, level)
    extra: dict[str, Callable[[Group, int | None], str]] = field(default_factory=dict)


def _at(split: str, metric: str, dup: int | None = None) -> Callable:
    """A metric of a row's group: at the row's level, or at `dup` (-1: the whole split)."""
    return lambda g, d: g.get(split, d if dup is None else dup, metric)


def registry_tables(groups: list[Group], heads: dict[str, list[tuple[str, str, str]]],
                    keys: list[str]) -> list[Table]:
    """The registry's tables (extraction first): members at each duplication level next to
    the non-member floor."""
    rows = [(g, d) for g in groups for d in g.dups()]
    out = []
    for name, cols in heads.items():
        if name in LAID_OUT_HERE:
            continue
        members = [Metric(h, h, _at("member", m)) for m, h, _ in cols]
        floors = [Metric(f"floor_{h}", f"floor_{h}", _at("nonmember", m, -1)) for m, h, _ in cols]
        docs = "; ".join(f"{h}: {doc}" for _, h, doc in cols if doc)
        legend = ((docs + ".\n") if docs else "") + (
            "Members at each dup (copies in the training set); floor_*: the same on "
            "non-members (never trained on).")
        out.append(Table(TITLES.get(name, name), legend, keys + ["dup"], members + floors, rows))
    return out


def membership_signals(groups: list[Group]) -> list[str]:
    return [s for s in SIGNALS if any(k[2] == f"auc_{s}" for g in groups for k in g.stats)]


def membership_tables(groups: list[Group], keys: list[str]) -> list[Table]:
    """AUC, and TPR at 1% FPR, of each membership signal: members of each duplication level
    against all non-members."""
    signals = membership_signals(groups)
    if not signals:
        return []
    rows = [(g, d) for g in groups for d in g.dups()]
    legend = ("Signals: " + "; ".join(f"{s}: {SIGNALS[s]}" for s in signals) + ". Members of "
              "each dup against all non-members (higher score = more member-like).")
    return [
        Table("Membership inference: AUC", legend + " AUC 0.5 = chance.", keys + ["dup"],
              [Metric(f"auc_{s}", s, _at("member", f"auc_{s}"), 2) for s in signals], rows),
        Table("Membership inference: TPR at 1% FPR (%)",
              legend + " The % of members found at the score that flags 1% of the "
              "non-members (chance: 1%).", keys + ["dup"],
              [Metric(f"tpr1_{s}", s, _at("member", f"tpr1_{s}")) for s in signals], rows),
    ]


def _human(n: float) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.1f}{unit}"
    return str(int(n))


def _train(name: str, show: Callable[[float], str]) -> Callable[[Group, int | None], str]:
    return lambda g, d: show(g.train[name].mean) if name in g.train else "-"


def utility_table(groups: list[Group], keys: list[str]) -> Table:
    """A row per group: what fine-tuning costs the model on held-out text, and its training."""
    return Table(
        "Utility: the fine-tuned model on non-members (never trained on), and its training",
        "heldout_ppl: perplexity of the fine-tuned model on the non-members; base_ppl: the base "
        "model's on the same documents; of the non-member generations: rougeL (ROUGE-L F1 x "
        "100) and bleu (sentence BLEU, 0-100) against the true suffix, flesch (Flesch reading "
        "ease); trainable_params, train_s: training (mean over seeds).",
        keys, [Metric(h, h, _at("nonmember", m, -1), digits) for h, m, digits in UTILITY],
        [(g, None) for g in groups],
        {"trainable_params": _train("trainable_params", _human),
         "train_s": _train("train_s", lambda v: f"{v:.0f}")})


def _canary(metric: str, pick: Callable, spec: str) -> Callable[[Group, int | None], str]:
    """A canary figure over the seeds (`pick` of the values, e.g. max), formatted by `spec`."""
    def cell(g: Group, d: int | None) -> str:
        s = g.get("canary", d, metric)
        return "-" if s is None else format(pick(s.values), spec)
    return cell


def _range(g: Group, d: int | None) -> str:
    """The lowest and highest canary's exposure over the seeds."""
    lo, hi = g.get("canary", d, "exposure_min"), g.get("canary", d, "exposure_max")
    return "-" if lo is None or hi is None else f"{min(lo.values):.1f}-{max(hi.values):.1f}"


def canary_table(groups: list[Group], keys: list[str]) -> Table | None:
    rows = [(g, k) for g in groups for k in g.dups("canary")]
    if not rows:
        return None
    return Table(
        "Canary exposure (bits)",
        "exposure: mean over the canaries of each repeat count (copies in the training "
        "stream; 0: never inserted, the control); canaries: how many (per seed); range: "
        "lowest and highest canary over the seeds; cap: the most the estimator can show, "
        "log2(alternatives + 1).",
        keys + ["repeats"], [Metric("exposure", "exposure", _at("canary", "exposure"))], rows,
        {"canaries": _canary("canaries", statistics.fmean, ".0f"),
         "range": _range,
         "cap": _canary("exposure_cap", max, ".1f")})


def _key_cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, list):  # a grid axis over a list (e.g. score.plugins): short names
        return ",".join(Path(str(x)).name for x in v) or "-"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _key(g: Group, d: int | None, k: str):
    return d if k in ("dup", "repeats") else g.key.get(k)


def fmt(s: Stat | None, digits: int = 1) -> str:
    """`0.93 [0.85, 0.99]`: the mean and its interval; `-`: no value."""
    if s is None:
        return "-"
    out = f"{s.mean:.{digits}f}"
    return out if s.lo is None else f"{out} [{s.lo:.{digits}f}, {s.hi:.{digits}f}]"


def layout(table: Table, hide: list[str]) -> tuple[list[str], list[list[str]], str]:
    """Headers, cells and legend of a table as printed: key columns but those in `hide`, n,
    the metrics that have a value somewhere (the others are named in the legend), extras."""
    shown = [m for m in table.metrics if any(m.get(g, d) is not None for g, d in table.rows)]
    keys = [k for k in table.keys if k not in hide]
    head = keys + ["n"] + [m.head for m in shown] + list(table.extra)
    body = []
    for g, d in table.rows:
        stats = [m.get(g, d) for m in shown]
        n = min((s.n for s in stats if s is not None), default=None)
        body.append([_key_cell(_key(g, d, k)) for k in keys] + [str(n) if n else "-"]
                    + [fmt(s, m.digits) for s, m in zip(stats, shown)]
                    + [cell(g, d) for cell in table.extra.values()])
    missing = [m.head for m in table.metrics if m not in shown]
    legend = table.legend + (f"\nNo trial has: {', '.join(missing)}." if missing else "")
    return head, body, legend


def _text(table: Table, hide: list[str]) -> str:
    head, body, legend = layout(table, hide)
    left = [k for k in table.keys if k not in ("dup", "repeats")]
    return (f"{table.title}\n"
            + tabulate(body, headers=head, disable_numparse=True,
                       colalign=["left" if h in left else "right" for h in head])
            + f"\n{legend}")


# ---------------------------------------------------------------- results.csv
def _stat_columns(name: str, s: Stat | None) -> dict:
    return {f"{name}_mean": s.mean if s else None, f"{name}_lo": s.lo if s else None,
            f"{name}_hi": s.hi if s else None, f"{name}_n": s.n if s else 0}


def csv_rows(groups: list[Group], keys: list[str], per_dup: list[Metric],
             per_group: list[Metric]) -> list[dict]:
    """A row per group and member duplication level: every metric as `<name>_mean`, `_lo`,
    `_hi`, `_n`; the group's own figures (utility, training, canaries by repeat count
    `_r<k>`) on each of its rows."""
    rows = []
    for g in groups:
        own = {"seeds": " ".join(str(s) for s in g.seeds), "trial_keys": " ".join(g.trial_keys)}
        for m in per_group:
            own.update(_stat_columns(m.name, m.get(g, None)))
        own.update({k: g.train[k].mean if k in g.train else None for k in TRAIN})
        for k in g.dups("canary"):
            own.update(_stat_columns(f"exposure_r{k}", g.get("canary", k, "exposure")))
            for metric, pick in (("canaries", statistics.fmean), ("exposure_min", min),
                                 ("exposure_max", max), ("exposure_cap", max)):
                s = g.get("canary", k, metric)
                own[f"{metric}_r{k}"] = pick(s.values) if s else None
        for d in g.dups():
            row = {**{k: g.key.get(k) for k in keys}, "dup": d}
            for m in per_dup:
                row.update(_stat_columns(m.name, m.get(g, d)))
            rows.append({**row, **own})
    return rows


def _write_csv(rows: list[dict], path: Path) -> None:
    columns = list(dict.fromkeys(c for r in rows for c in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, columns)
        w.writeheader()
        w.writerows(rows)


# ---------------------------------------------------------------- figures
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(fig, out: Path, title: str) -> None:
    """A figure's title, layout and file; the figure closed."""
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    _plt().close(fig)


def _nothing(out: Path, why: str) -> dict:
    """A figure that says why it is empty (the report's files are always the same set)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, why, ha="center", va="center", fontsize=9)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return {}


LINESTYLES = ("-", "--", "-.", (0, (5, 1)))
MARKERS = ("o", "s", "^", "D", "v")


class Series:
    """Lines of a figure: a colour per strategy, a line style per value of the other varying
    grid axes; labels name the strategy and those values."""

    def __init__(self, groups: list[Group], axis_names: list[str]):
        self.varying = [a for a in axis_names
                        if len({_key_cell(g.key.get(a)) for g in groups}) > 1]
        self.combos = list(dict.fromkeys(self._combo(g) for g in groups))
        others = sorted({g.key["strategy"] for g in groups} - set(STRATEGIES))
        self.colours = {s: f"C{i}" for i, s in enumerate([*STRATEGIES, *others])}

    def _combo(self, g: Group) -> tuple:
        return tuple(f"{a}={_key_cell(g.key.get(a))}" for a in self.varying)

    def label(self, g: Group, model: bool = False) -> str:
        return ", ".join([str(g.key["model"] if model else g.key["strategy"]),
                          *self._combo(g)])

    def style(self, g: Group) -> dict:
        i = self.combos.index(self._combo(g))
        return {"color": self.colours[g.key["strategy"]], "linestyle": LINESTYLES[i % 4],
                "marker": MARKERS[i % 5]}


def models_in_order(groups: list[Group]) -> list[str]:
    """By parameter count when every group knows it, else in the order of the study."""
    params: dict[str, list[float]] = {}
    for g in sorted(groups, key=lambda g: g.order):
        params.setdefault(g.key["model"], []).append(
            g.train["total_params"].mean if "total_params" in g.train else math.nan)
    if all(not math.isnan(v) for vs in params.values() for v in vs):
        return sorted(params, key=lambda m: statistics.fmean(params[m]))
    return list(params)


def _band(ax, xs: list, stats: list[Stat], colour: str) -> bool:
    pts = [(x, s) for x, s in zip(xs, stats) if s.lo is not None]
    if pts:
        ax.fill_between([x for x, _ in pts], [s.lo for _, s in pts], [s.hi for _, s in pts],
                        color=colour, alpha=0.15, linewidth=0)
    return bool(pts)


def _rate_axis(ax, stats: list[Stat], head: str) -> None:
    top = max([s.hi if s.hi is not None else s.mean for s in stats], default=0)
    ax.set_ylim(0, max(5.0, 1.15 * top))
    ax.set_ylabel(head)


def plot_dup(groups: list[Group], panels: list[tuple[str, str, str]], series: Series,
             out: Path) -> dict[str, dict]:
    """Members against duplication: a row of panels per heading, a panel per model, a line
    per strategy (and other axis value) with its band over the seeds, and each line's own
    non-member floor dotted in its colour. Returns {panel title: {"lines": [line labels],
    "bands": [labels of the lines with a band], "floors": {line label: floor drawn}}}."""
    models = models_in_order(groups)
    dups = sorted({d for g in groups for d in g.dups()})
    if not panels or not dups:
        return _nothing(out, "no member rates in the trials' score summaries")
    plt = _plt()
    fig, grid = plt.subplots(len(panels), len(models), figsize=(max(6.0, 4.6 * len(models)),
                             3.8 * len(panels) + 0.4), squeeze=False)
    drawn: dict[str, dict] = {}
    for row, (metric, head, doc) in zip(grid, panels):
        for ax, model in zip(row, models):
            title = f"{head}, {model}"
            what = drawn[title] = {"lines": [], "bands": [], "floors": {}}
            seen: list[Stat] = []
            for g in (g for g in groups if g.key["model"] == model):
                pts = [(d, g.get("member", d, metric)) for d in g.dups()]
                pts = [(d, s) for d, s in pts if s is not None]
                if not pts:
                    continue
                label, style = series.label(g), series.style(g)
                xs, stats = [d for d, _ in pts], [s for _, s in pts]
                ax.plot(xs, [s.mean for s in stats], label=label, **style)
                what["lines"].append(label)
                if _band(ax, xs, stats, style["color"]):
                    what["bands"].append(label)
                floor = g.get("nonmember", -1, metric)
                if floor is not None:
                    ax.axhline(floor.mean, linestyle=":", linewidth=1.3, color=style["color"])
                    what["floors"][label] = floor.mean
                    seen.append(floor)
                seen += stats
            if dups and min(dups) > 0:
                ax.set_xscale("log", base=2)
            ax.set_xticks(dups, [str(d) for d in dups])
            ax.minorticks_off()
            _rate_axis(ax, seen, head)
            ax.set_xlabel("copies of the document in the training set (dup_count)")
            ax.set_title(f"{title}\n{doc}" if doc else title, fontsize=8)
            if len(what["lines"]) > 1:
                ax.legend(fontsize=7)
    _finish(fig, out, "members (lines; band: 95% interval over seeds)\nagainst the non-member "
            "floor (dotted, same colour)")
    return drawn


def plot_scale(groups: list[Group], panels: list[tuple[str, str, str]], series: Series,
               out: Path) -> dict[str, dict]:
    """The same rates against model scale: a row per heading; panels: members at the highest
    duplication level, and all members; a line per strategy (and other axis value) with its
    band and its non-member floor dotted. Returns what plot_dup returns, with a floor per
    model ({line label: [floors]})."""
    models = models_in_order(groups)
    if not panels:
        return _nothing(out, "no member rates in the trials' score summaries")
    plt = _plt()
    params = {g.key["model"]: g.train["total_params"].mean for g in groups
              if "total_params" in g.train}
    ticks = [f"{m}\n({_human(params[m])} params)" if m in params else m for m in models]
    top = max((d for g in groups for d in g.dups()), default=-1)
    levels = ([(top, f"members at dup {top}")] if top >= 0 else []) + [(-1, "all members")]
    fig, grid = plt.subplots(len(panels), len(levels), figsize=(
        max(4.6, 1.6 * len(models)) * len(levels), 3.8 * len(panels)), squeeze=False)
    drawn: dict[str, dict] = {}
    for row, (metric, head, _) in zip(grid, panels):
        for ax, (level, name) in zip(row, levels):
            title = f"{head}, {name}"
            what = drawn[title] = {"lines": [], "bands": [], "floors": {}}
            lines: dict[str, list[Group]] = {}
            for g in groups:
                lines.setdefault(series.label(g), []).append(g)
            seen: list[Stat] = []
            for label, members in lines.items():
                at = {models.index(g.key["model"]): g for g in members}
                pts = [(x, at[x].get("member", level, metric)) for x in sorted(at)]
                pts = [(x, s) for x, s in pts if s is not None]
                if not pts:
                    continue
                style = series.style(members[0])
                xs, stats = [x for x, _ in pts], [s for _, s in pts]
                ax.plot(xs, [s.mean for s in stats], label=label, **style)
                what["lines"].append(label)
                if _band(ax, xs, stats, style["color"]):
                    what["bands"].append(label)
                floors = [(x, at[x].get("nonmember", -1, metric)) for x in sorted(at)]
                floors = [(x, s) for x, s in floors if s is not None]
                if floors:
                    ax.plot([x for x, _ in floors], [s.mean for _, s in floors], linestyle=":",
                            linewidth=1.3, marker="_", markersize=14, color=style["color"])
                    what["floors"][label] = [s.mean for _, s in floors]
                seen += stats + [s for _, s in floors]
            ax.set_xticks(range(len(models)), ticks, fontsize=7)
            ax.set_xlim(-0.3, len(models) - 0.7)
            _rate_axis(ax, seen, head)
            ax.set_xlabel("model")
            ax.set_title(title, fontsize=8)
            if len(what["lines"]) > 1:
                ax.legend(fontsize=7)
    _finish(fig, out, "against model scale (band: 95% interval over seeds;\ndotted: the "
            "non-member floor, same colour)")
    return drawn


def roc(member, nonmember) -> tuple[np.ndarray, np.ndarray]:
    """FPR and TPR of every score threshold (higher = more member-like), from (0, 0) to
    (1, 1); tied scores move together."""
    scores = np.concatenate([member, nonmember]).astype(float)
    is_member = np.r_[np.ones(len(member)), np.zeros(len(nonmember))]
    order = np.argsort(-scores, kind="stable")
    scores, is_member = scores[order], is_member[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]  # each tie's last row
    tp, fp = np.cumsum(is_member)[last], np.cumsum(1 - is_member)[last]
    return np.r_[0.0, fp / len(nonmember)], np.r_[0.0, tp / len(member)]


def tpr_at(grid: np.ndarray, fpr: np.ndarray, tpr: np.ndarray) -> np.ndarray:
    """The TPR of the curve at each FPR of `grid` (the best threshold whose FPR is not
    above it)."""
    return tpr[np.searchsorted(fpr, grid, side="right") - 1]


def _doc_scores(score_dir: Path):
    """One row per document (sample_idx 0) of a trial's score shards: split and membership
    scores (None: no shards)."""
    import pandas as pd
    import pyarrow.parquet as pq

    frames = []
    for part in sorted(Path(score_dir).glob("part-*.parquet")):
        names = pq.read_schema(part).names
        cols = [c for c in ("split", "sample_idx", *(f"mia_{s}" for s in SIGNALS))
                if c in names]
        frames.append(pq.read_table(part, columns=cols).to_pandas())
    if not frames:
        return None
    df = pd.concat(frames, ignore_index=True)
    return df[df.sample_idx == 0] if "sample_idx" in df else df


def roc_curves(groups: list[Group], score_dirs: dict[str, Path]
               ) -> tuple[str | None, dict[int, np.ndarray]]:
    """The headline signal (`ref` where a trial has it, else `loss`) and, per group (by its
    index), the TPR on FPR_GRID averaged over its seeds: all members against all
    non-members."""
    scores = {k: _doc_scores(score_dirs[k]) for g in groups for k in g.trial_keys
              if k in score_dirs}

    def has(s: str) -> bool:
        return any(df is not None and f"mia_{s}" in df and df[f"mia_{s}"].notna().any()
                   for df in scores.values())

    signal = "ref" if has("ref") else "loss" if has("loss") else None
    if signal is None:
        return None, {}
    col, curves = f"mia_{signal}", {}
    for i, g in enumerate(groups):
        tprs = []
        for k in g.trial_keys:
            df = scores.get(k)
            if df is None or col not in df:
                continue
            df = df[df[col].notna()]
            m = df[df.split == "member"][col].to_numpy()
            nm = df[df.split == "nonmember"][col].to_numpy()
            if len(m) and len(nm):
                tprs.append(tpr_at(FPR_GRID, *roc(m, nm)))
        if tprs:
            curves[i] = np.mean(tprs, axis=0)
    return signal, curves


def plot_roc(groups: list[Group], signal: str | None, curves: dict[int, np.ndarray],
             series: Series, out: Path) -> dict[str, list[str]]:
    """ROC curves on log-log axes: a panel per strategy, a curve per model (and other axis
    value; models by scale), averaged over seeds; the diagonal (chance) dotted. Returns {panel
    title: [curve labels]}."""
    strategies = list(dict.fromkeys(groups[i].key["strategy"] for i in sorted(curves)))
    if not strategies:
        return _nothing(out, "no per-document membership scores in the trials' score shards")
    plt = _plt()
    fig, axs = plt.subplots(1, len(strategies), figsize=(4.4 * len(strategies), 4.2),
                            squeeze=False)
    models = models_in_order(groups)
    drawn: dict[str, list[str]] = {}
    for ax, strategy in zip(axs[0], strategies):
        drawn[strategy] = []
        for i in sorted(curves, key=lambda i: models.index(groups[i].key["model"])):
            g = groups[i]
            if g.key["strategy"] != strategy:
                continue
            label = series.label(g, model=True)
            ax.plot(FPR_GRID, np.clip(curves[i], 1e-3, 1), label=label,  # a colour per model
                    color=f"C{models.index(g.key['model']) % 10}",
                    linestyle=series.style(g)["linestyle"])
            drawn[strategy].append(label)
        ax.plot([1e-3, 1], [1e-3, 1], linestyle=":", color="grey", linewidth=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(1e-3, 1)
        ax.set_ylim(1e-3, 1.05)
        ax.set_xlabel("false positive rate (non-members)")
        ax.set_ylabel("true positive rate (members)")
        ax.set_title(strategy, fontsize=9)
        ax.legend(fontsize=7)
    _finish(fig, out, f"membership inference, signal '{signal}' ({SIGNALS[signal]}): all "
            "members against all non-members, mean over seeds; dotted: chance")
    return drawn


# ---------------------------------------------------------------- the report
@dataclass
class Report:
    text: str  # what `memlab report` prints
    tables: list[Table]
    figures: dict[str, dict]  # file name -> what its plotting function drew
    groups: list[Group]


def _html(title: str, intro: list[str], tables: list[Table], hide: list[str],
          root: Path) -> str:
    parts = [f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
             "</title><style>body{font-family:sans-serif;max-width:80em;margin:2em auto}"
             "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;"
             "padding:2px 6px;text-align:right}.legend{color:#444;font-size:90%}"
             "img{max-width:100%}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             *(f"<p>{html.escape(line)}</p>" for line in intro)]
    for t in tables:
        head, body, legend = layout(t, hide)
        parts += [f"<h2>{html.escape(t.title)}</h2>",
                  tabulate(body, headers=head, tablefmt="html", disable_numparse=True),
                  f"<p class=\"legend\">{html.escape(legend).replace(chr(10), '<br>')}</p>"]
    for name in FIGURES:
        data = base64.b64encode((root / name).read_bytes()).decode()
        parts += [f"<h2>{name}</h2>",
                  f"<img alt=\"{name}\" src=\"data:image/png;base64,{data}\">"]
    return "\n".join(parts + ["</body></html>\n"])


def render(name: str, root: Path, groups: list[Group], axis_names: list[str],
           heads: dict[str, list[tuple[str, str, str]]], signal: str | None = None,
           curves: dict[int, np.ndarray] | None = None) -> Report:
    """Tables, figures and files (FILES, under `root`) of aggregated groups."""
    keys = ["strategy", "model", *axis_names]
    # the printed tables leave out key columns that are the same on every row (in the title)
    hide = [k for k in keys[1:] if len({_key_cell(g.key.get(k)) for g in groups}) == 1]
    extraction = registry_tables(groups, heads, keys)
    membership = membership_tables(groups, keys)
    utility = utility_table(groups, keys)
    canary = canary_table(groups, keys)
    tables = [t for t in (*extraction, *membership, utility, canary) if t and t.rows]

    root.mkdir(parents=True, exist_ok=True)
    signals = membership_signals(groups)
    hidden = [Metric(f"tpr01_{s}", s, _at("member", f"tpr01_{s}")) for s in signals]
    _write_csv(csv_rows(groups, keys, [m for t in extraction + membership for m in t.metrics]
                        + hidden, utility.metrics), root / "results.csv")
    series = Series(groups, axis_names)
    first = next((cols for n, cols in heads.items() if n not in LAID_OUT_HERE), [])
    figures = {"results.png": plot_dup(groups, first, series, root / "results.png"),
               "scale.png": plot_scale(groups, first, series, root / "scale.png"),
               "roc.png": plot_roc(groups, signal, curves or {}, series, root / "roc.png")}

    fixed = "; ".join(f"{k} {_key_cell(groups[0].key.get(k))}" for k in hide)
    seeds = ", ".join(str(s) for s in sorted({s for g in groups for s in g.seeds}))
    title = f"Results of sweep '{name}'"
    intro = [f"{fixed + '; ' if fixed else ''}seeds {seeds}", PREAMBLE]
    md = [f"# {title}", "", *(f"{line}\n" for line in intro)]
    for t in tables:
        head, body, legend = layout(t, hide)
        md += [f"## {t.title}", "", tabulate(body, headers=head, tablefmt="github",
                                             disable_numparse=True), "",
               legend.replace("\n", "  \n"), ""]
    md += ["## Figures", "", *(f"![{f}]({f})\n" for f in FIGURES)]
    (root / "results.md").write_text("\n".join(md))
    (root / "results.html").write_text(_html(title, intro, tables, hide, root))
    text = (f"\n{title} ({intro[0]}; {root}/results.csv, .md, .html, .png; scale.png, "
            f"roc.png)\n{PREAMBLE}\n\n" + "\n\n".join(_text(t, hide) for t in tables))
    return Report(text, tables, figures, groups)


def load_records(study: Study) -> list[tuple[dict, list[dict]]]:
    """(result.json, score summary rows) of every finished trial, in study order."""
    records, seen = [], set()
    for t in study.trials:
        path = sweep_root(t.config) / t.key / "result.json"
        if t.key in seen or not path.is_file():
            continue
        seen.add(t.key)
        summary = read_summary(stage_dir(t.config, "score", t.key)).to_pylist()
        records.append((json.loads(path.read_text()), summary))
    return records


def build_report(study: Study) -> Report | None:
    """The report of a study's finished trials (None: none finished)."""
    groups = aggregate(load_records(study), axes(study))
    if not groups:
        return None
    score_dirs = {t.key: stage_dir(t.config, "score", t.key) for t in study.trials}
    signal, curves = roc_curves(groups, score_dirs)
    return render(study.name, sweep_root(study.base), groups, axes(study),
                  headings([t.config.score for t in study.trials]), signal, curves)


def write_report(study: Study) -> str:
    report = build_report(study)
    return report.text if report else f"no finished trials under {sweep_root(study.base)}"
