"""The report's figures: results.png (rate against duplication, a panel per model), scale.png
(rate against model scale), roc.png (ROC curves of the headline membership signal, averaged
over seeds). Each plotting function returns what it drew (line labels, bands, floors), for the
tests; a figure with nothing to draw says why instead."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import numpy as np

from memlab.report.numbers import FPR_GRID, Group, Stat
from memlab.report.tables import human, key_cell
from memlab.scoring.membership import SIGNAL_DOC
from memlab.strategies import STRATEGIES


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
                        if len({key_cell(g.key.get(a)) for g in groups}) > 1]
        self.combos = list(dict.fromkeys(self._combo(g) for g in groups))
        others = sorted({g.key["strategy"] for g in groups} - set(STRATEGIES))
        self.colours = {s: f"C{i}" for i, s in enumerate([*STRATEGIES, *others])}

    def _combo(self, g: Group) -> tuple:
        return tuple(f"{a}={key_cell(g.key.get(a))}" for a in self.varying)

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
    ticks = [f"{m}\n({human(params[m])} params)" if m in params else m for m in models]
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
    _finish(fig, out, f"membership inference, signal '{signal}' ({SIGNAL_DOC[signal]}): all "
            "members against all non-members, mean over seeds; dotted: chance")
    return drawn
