"""The report's figures: results.png (rate against duplication, a panel per model), scale.png
(rate against model scale; two models at least), roc.png (ROC curves of the headline membership
signal, averaged over seeds), frontier.png (the privacy-utility frontier: each setting's
held-out perplexity against what it leaks, the Pareto frontier drawn; two settings at least),
dynamics.png (with evaluation points only: members' rate, floor, AUC and held-out perplexity
against the optimizer step, a column per strategy).
Series, lines and points come in the groups' order (numbers.in_order: by trainable
parameters within a model). What they must not do, each seen in a report: hide a series at
the same value as another (series sit side by side at each x), merge the floors of several
strategies into one line (each floor is drawn at its own series' points, hollow, and has its
legend entry), promise a band that is not drawn, cut a title at the figure's edge (titles are
wrapped to the figure's width), draw one model as a scale, or start an axis below what the
data resolves (the ROC's FPR starts at 1 / the non-members). Each plotting function returns
what it drew ({"title": as drawn, "panels": {panel title: lines, bands, floors, points,
legend, axes}}), for the tests; a figure with nothing to draw says why instead (the report's
files are always the same set)."""

from __future__ import annotations

import math
import statistics
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memlab.report.dynamics import Curve, Headline
from memlab.report.numbers import Group, Stat
from memlab.report.tables import human, key_cell
from memlab.scoring.membership import SIGNAL_DOC
from memlab.strategies import STRATEGIES


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _fit(fig, text, title: str) -> str:
    """Wrap `title` (its own line breaks kept) until it is as wide as the figure at most."""
    renderer, width = fig.canvas.get_renderer(), 0.96 * fig.bbox.width
    chars = max(len(line) for line in title.split("\n"))
    while text.get_window_extent(renderer).width > width and chars > 16:
        chars = int(chars * 0.9)
        text.set_text("\n".join(textwrap.fill(line, chars, break_on_hyphens=False)
                                 for line in title.split("\n")))
    return text.get_text()


def _finish(fig, out: Path, title: str) -> str:
    """A figure's title (wrapped to its width), layout and file; the figure closed. Returns
    the title as drawn."""
    drawn = _fit(fig, fig.suptitle(title, fontsize=9), title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    _plt().close(fig)
    return drawn


def _nothing(out: Path, why: str) -> dict:
    """A figure that says why it is empty (the report's files are always the same set)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 2))
    ax.axis("off")
    text = ax.text(0.5, 0.5, why, ha="center", va="center", fontsize=9)
    why = _fit(fig, text, why)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return {"title": why, "panels": {}}


LINESTYLES = ("-", "--", "-.", (0, (5, 1)))
MARKERS = ("o", "s", "^", "D", "v")


class Series:
    """Lines of a figure: a colour per strategy, a line style per value of the other varying
    grid axes; labels name the strategy and those values. Colours go to the strategies the
    report has, in the registry's order (ten of the eleven built-in ones get ten colours)."""

    def __init__(self, groups: list[Group], axis_names: list[str]):
        self.varying = [a for a in axis_names
                        if len({key_cell(g.key.get(a)) for g in groups}) > 1]
        self.combos = list(dict.fromkeys(self._combo(g) for g in groups))
        have = {g.key["strategy"] for g in groups}
        ordered = [s for s in STRATEGIES if s in have] + sorted(have - set(STRATEGIES))
        self.colours = {s: f"C{i}" for i, s in enumerate(ordered)}

    def _combo(self, g: Group) -> tuple:
        return tuple(f"{a}={key_cell(g.key.get(a))}" for a in self.varying)

    def label(self, g: Group, model: bool = False) -> str:
        """The strategy (or model) and the varying axes' values; an axis whose value names
        the strategy (a bundle such as method=dp-lora, of strategy lora) stands for both."""
        head, parts = str(g.key["model"] if model else g.key["strategy"]), list(self._combo(g))
        named = [p for p in parts if not model and head in p.split("=", 1)[1].split("-")]
        if named:
            head = named[0].split("=", 1)[1]
            parts.remove(named[0])
        return ", ".join([head, *parts])

    def style(self, g: Group) -> dict:
        i = self.combos.index(self._combo(g))
        return {"color": self.colours[g.key["strategy"]], "linestyle": LINESTYLES[i % 4],
                "marker": MARKERS[i % 5]}


def models_in_order(groups: list[Group]) -> list[str]:
    """By parameter count (the base model's, as loaded) when every group knows it, else in
    the order of the study."""
    params: dict[str, list[float]] = {}
    for g in sorted(groups, key=lambda g: g.order):
        params.setdefault(g.key["model"], []).append(
            g.train["model_params"].mean if "model_params" in g.train else math.nan)
    if all(not math.isnan(v) for vs in params.values() for v in vs):
        return sorted(params, key=lambda m: statistics.fmean(params[m]))
    return list(params)


DODGE = 0.05  # series side by side: octaves apart on a log2 axis, units on a categorical one


def _draw(ax, lines: list[tuple], log: bool) -> dict:
    """Lines of one panel, each (label, style, [(x, Stat)] of the members, [(x, Stat)] of its
    floor): a line per series with its band (where its stats have an interval), its floor
    dotted with hollow markers at its own points; at each x every series and every floor has
    its own place side by side (DODGE apart), so that one at the same value as another (a
    member rate at 0 and its floor at 0, too) still shows; a legend entry for each line and
    each floor. Returns the panel's description."""
    what: dict = {"lines": [], "bands": [], "floors": {}, "points": {}, "floor_points": {},
                  "legend": []}
    lines = [line for line in lines if line[2]]
    slots = 2 * len(lines) if any(floor for *_, floor in lines) else len(lines)
    for i, (label, style, pts, floor) in enumerate(lines):
        off = (i * slots // len(lines) - (slots - 1) / 2) * DODGE
        xs, stats = [x * 2 ** off if log else x + off for x, _ in pts], [s for _, s in pts]
        ax.plot(xs, [s.mean for s in stats], label=label, markersize=5, **style)
        what["lines"].append(label)
        what["points"][label] = [(x, s.mean) for x, s in zip(xs, stats)]
        if _band(ax, xs, stats, style["color"]):
            what["bands"].append(label)
        if floor:
            fx = [x * 2 ** (off + DODGE) if log else x + off + DODGE for x, _ in floor]
            fy = [s.mean for _, s in floor]
            ax.plot(fx, fy, linestyle=":", linewidth=1.3, marker=style["marker"], markersize=5,
                    fillstyle="none", color=style["color"], label=f"{label}: non-member floor")
            what["floor_points"][label] = list(zip(fx, fy))
    what["legend"] = [t.get_text() for t in ax.legend(fontsize=6).get_texts()] if lines else []
    return what


def _band(ax, xs: list, stats: list[Stat], colour: str, hatch: str | None = None) -> bool:
    pts = [(x, s) for x, s in zip(xs, stats) if s.lo is not None]
    if pts and hatch:  # (a floor's band: hatched, to tell it from its members' band)
        ax.fill_between([x for x, _ in pts], [s.lo for _, s in pts], [s.hi for _, s in pts],
                        facecolor="none", edgecolor=colour, hatch=hatch, alpha=0.4,
                        linewidth=0)
    elif pts:
        ax.fill_between([x for x, _ in pts], [s.lo for _, s in pts], [s.hi for _, s in pts],
                        color=colour, alpha=0.15, linewidth=0)
    return bool(pts)


def _rate_axis(ax, stats: list[Stat], head: str) -> None:
    top = max([s.hi if s.hi is not None else s.mean for s in stats], default=0)
    ax.set_ylim(-0.02 * max(5.0, 1.15 * top), max(5.0, 1.15 * top))  # (0 above the axis)
    ax.set_ylabel(head)


def _band_title(drawn: dict) -> str:
    """What the figure's bands are, only where one is drawn."""
    if any(p["bands"] for p in drawn.values()):
        return ("band: the 95% interval over seeds, or with one seed the trial's own (a "
                "rate's binomial interval, a bootstrap interval)")
    return "no interval to draw: one seed without an interval of its own"


def plot_dup(groups: list[Group], panels: list[tuple[str, str, str]], series: Series,
             out: Path) -> dict:
    """Members against duplication: a row of panels per heading, a panel per model, a line
    per strategy (and other axis value) with its band, and each line's own non-member floor
    (`_draw`). Panels: {"lines", "bands", "floors": {line label: floor drawn}, "points",
    "floor_points", "legend"}."""
    models = models_in_order(groups)
    dups = sorted({d for g in groups for d in g.dups()})
    if not panels or not dups:
        return _nothing(out, "no member rates in the trials' score summaries")
    plt = _plt()
    fig, grid = plt.subplots(len(panels), len(models), figsize=(max(6.0, 4.6 * len(models)),
                             3.8 * len(panels) + 0.6), squeeze=False)
    drawn: dict[str, dict] = {}
    log = min(dups) > 0
    for row, (metric, head, doc) in zip(grid, panels):
        for ax, model in zip(row, models):
            title = f"{head}, {model}"
            lines = []
            for g in (g for g in groups if g.key["model"] == model):
                pts = [(d, s) for d in g.dups() if (s := g.get("member", d, metric))]
                floor = g.get("nonmember", -1, metric)
                lines.append((series.label(g), series.style(g), pts,
                              [(d, floor) for d, _ in pts] if floor else []))
            what = drawn[title] = _draw(ax, lines, log)
            what["floors"] = {label: fl[0][1].mean for label, _, _, fl in lines if fl}
            if log:
                ax.set_xscale("log", base=2)
            ax.set_xticks(dups, [str(d) for d in dups])
            ax.minorticks_off()
            _rate_axis(ax, [s for *_, pts, fl in lines for _, s in pts + fl], head)
            ax.set_xlabel("copies of the document in the training set (dup_count)")
            ax.set_title(f"{title}\n{doc}" if doc else title, fontsize=8)
    return {"title": _finish(fig, out, f"members (lines; {_band_title(drawn)}) against the "
                             "non-member floor (dotted, hollow markers, same colour); series "
                             "side by side at each dup"), "panels": drawn}


def plot_scale(groups: list[Group], panels: list[tuple[str, str, str]], series: Series,
               out: Path) -> dict:
    """The same rates against model scale, with two models or more (one is a point, not a
    scale: the figure says so): a row per heading; panels: members at the highest
    duplication level, and all members; a line per strategy (and other axis value) with its
    band and its non-member floor (`_draw`). Panels as plot_dup's, with a floor per model
    ({line label: [floors]})."""
    models = models_in_order(groups)
    if not panels:
        return _nothing(out, "no member rates in the trials' score summaries")
    if len(models) < 2:
        return _nothing(out, f"one model ({models[0]}): a scale needs two or more, so this "
                        "figure is left empty; results.png has its rates")
    plt = _plt()
    params = {g.key["model"]: g.train["model_params"].mean for g in groups
              if "model_params" in g.train}
    ticks = [f"{m}\n({human(params[m])} params)" if m in params else m for m in models]
    top = max((d for g in groups for d in g.dups()), default=-1)
    levels = ([(top, f"members at dup {top}")] if top >= 0 else []) + [(-1, "all members")]
    fig, grid = plt.subplots(len(panels), len(levels), figsize=(
        max(4.6, 1.6 * len(models)) * len(levels), 3.8 * len(panels) + 0.6), squeeze=False)
    drawn: dict[str, dict] = {}
    for row, (metric, head, _) in zip(grid, panels):
        for ax, (level, name) in zip(row, levels):
            by: dict[str, list[Group]] = {}
            for g in groups:
                by.setdefault(series.label(g), []).append(g)
            lines = []
            for label, members in by.items():
                at = {models.index(g.key["model"]): g for g in members}
                pts = [(x, s) for x in sorted(at) if (s := at[x].get("member", level, metric))]
                floor = [(x, s) for x in sorted(at)
                         if (s := at[x].get("nonmember", -1, metric))]
                lines.append((label, series.style(members[0]), pts, floor))
            what = drawn[f"{head}, {name}"] = _draw(ax, lines, log=False)
            what["floors"] = {label: [s.mean for _, s in fl] for label, _, _, fl in lines if fl}
            ax.set_xticks(range(len(models)), ticks, fontsize=7)
            ax.set_xlim(-0.4, len(models) - 0.6)
            _rate_axis(ax, [s for *_, pts, fl in lines for _, s in pts + fl], head)
            ax.set_xlabel("model")
            ax.set_title(f"{head}, {name}", fontsize=8)
    return {"title": _finish(fig, out, f"against model scale ({_band_title(drawn)}; dotted, "
                             "hollow markers: the non-member floor, same colour)"),
            "panels": drawn}


def _roc_axes(groups: list[Group], curves: dict) -> tuple[float, float]:
    """Where the ROC's axes start: the FPR at the smallest rate the non-members resolve (1 /
    the most of them of any curve drawn), the TPR below one member of the most members."""
    left = min(curves[i][0][0] for i in curves)
    most = max((span[1] for i in curves if (span := groups[i].docs("member"))), default=None)
    return left, min(left, 1 / most if most else 1e-3) / 2


def plot_roc(groups: list[Group], signal: str | None, curves: dict[int, tuple],
             series: Series, out: Path) -> dict:
    """ROC curves on log-log axes, from the smallest false-positive rate the non-members
    resolve (`numbers.roc_curves`): a panel per strategy, a curve per model (and other axis
    value; models by scale), averaged over seeds; the diagonal (chance) dotted. Panels:
    {strategy: {"curves": [curve labels], "xlim": (from, to)}}."""
    strategies = list(dict.fromkeys(groups[i].key["strategy"] for i in sorted(curves)))
    if not strategies:
        return _nothing(out, "no per-document membership scores in the trials' score shards")
    plt = _plt()
    fig, axs = plt.subplots(1, len(strategies), figsize=(4.4 * len(strategies), 4.2),
                            squeeze=False)
    models = models_in_order(groups)
    left, bottom = _roc_axes(groups, curves)
    drawn: dict[str, dict] = {}
    for ax, strategy in zip(axs[0], strategies):
        what = drawn[strategy] = {"curves": [], "xlim": (left, 1.0)}
        for i in sorted(curves, key=lambda i: models.index(groups[i].key["model"])):
            g = groups[i]
            if g.key["strategy"] != strategy:
                continue
            label = series.label(g, model=True)
            fpr, tpr = curves[i]
            ax.plot(fpr, np.clip(tpr, bottom, 1), label=label,  # a colour per model
                    color=f"C{models.index(g.key['model']) % 10}",
                    linestyle=series.style(g)["linestyle"])
            what["curves"].append(label)
        ax.plot([left, 1], [left, 1], linestyle=":", color="grey", linewidth=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(left, 1)
        ax.set_ylim(bottom, 1.05)
        ax.set_xlabel("false positive rate (non-members)")
        ax.set_ylabel("true positive rate (members)")
        ax.set_title(strategy, fontsize=9)
        ax.legend(fontsize=7)
    return {"title": _finish(fig, out, f"membership inference, signal '{signal}' "
                             f"({SIGNAL_DOC[signal]}): all members against all non-members, "
                             f"mean over seeds; dotted: chance; FPR from {100 * left:.1f}% "
                             f"(1 of {round(1 / left)} non-members)"), "panels": drawn}


# ------------------------------------------------------- the privacy-utility frontier
@dataclass(frozen=True)
class Leakage:
    """A y axis of the frontier: what a group leaks (lower is better) and where nothing is."""

    head: str
    axis: str  # (its y label)
    get: Callable[[Group], Stat | None]
    floor: float
    floor_label: str


def leakages(groups: list[Group], threshold: float) -> list[Leakage]:
    """The frontier's two y axes, at the highest duplication level of the groups: members'
    similarity rate at score.headline_threshold minus the non-member floor (points), and the
    membership AUC of the reference-model signal (the loss where no trial has it)."""
    h = Headline.of(groups, threshold)  # (the curves through training draw the same)
    top, sim, signal = h.dup, h.sim, h.auc.removeprefix("auc_")
    at = f"members at dup {top}" if top >= 0 else "all members"
    return [Leakage(f"sim>={threshold:g}_%: {at} minus the non-member floor (points)",
                    f"sim>={threshold:g}_% minus floor (points)",
                    lambda g: g.minus_floor(sim, top), 0.0,
                    "floor: members at the non-members' rate (0 points)"),
            Leakage(f"membership AUC ({signal}): {at} against the non-members",
                    f"membership AUC ({signal})",
                    lambda g: g.get("member", top, f"auc_{signal}"), 0.5, "chance (AUC 0.5)")]


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """The non-dominated points (lower x and lower y are better: no other point is as low in
    both and lower in one), by x: the indices of `points`."""
    keep = [i for i, p in enumerate(points)
            if not any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in points)]
    return sorted(keep, key=lambda i: points[i])


def _err(s: Stat) -> list[list[float]] | None:
    """An error bar's (below, above) of a Stat's interval; None: it has none."""
    if s.lo is None:
        return None
    return [[max(0.0, s.mean - s.lo)], [max(0.0, s.hi - s.mean)]]


CROWDED = 6  # a frontier panel with more points names them in its legend, not beside each


def _frontier_panel(ax, groups: list[Group], leak: Leakage, series: Series) -> dict:
    """One model's groups at (held-out perplexity, leakage), each with its error bars where
    its Stats have an interval and its label; the Pareto frontier a step line through the
    non-dominated points (ringed); the floor dotted. Returns the panel's description."""
    what: dict = {"points": {}, "xerr": {}, "yerr": {}, "frontier": [], "floor": leak.floor,
                  "missing": []}
    pts = []
    for g in groups:
        x, y = g.get("nonmember", -1, "ppl"), leak.get(g)
        if x is None or y is None:
            what["missing"].append(series.label(g))
            continue
        label, style = series.label(g), series.style(g)
        ax.errorbar(x.mean, y.mean, xerr=_err(x), yerr=_err(y), color=style["color"],
                    marker=style["marker"], linestyle="none", markersize=6, capsize=3,
                    elinewidth=1, zorder=3, label=label if len(groups) > CROWDED else None)
        what["points"][label] = (x.mean, y.mean)
        what["xerr"].update({label: (x.lo, x.hi)} if x.lo is not None else {})
        what["yerr"].update({label: (y.lo, y.hi)} if y.lo is not None else {})
        pts.append(label)
    front = [pts[i] for i in pareto([what["points"][p] for p in pts])]
    what["frontier"] = front
    if front:
        xs, ys = zip(*(what["points"][p] for p in front))
        ax.step(xs, ys, where="post", color="black", linewidth=1.2, alpha=0.7, zorder=2,
                label="Pareto frontier (ringed: on it)")
        ax.plot(xs, ys, linestyle="none", marker="o", markersize=13, fillstyle="none",
                color="black", markeredgewidth=0.8, zorder=2)
    ax.axhline(leak.floor, linestyle=":", color="grey", linewidth=1, label=leak.floor_label)
    xs = [v for p in pts for v in (what["points"][p][0], *what["xerr"].get(p, ()))]
    if xs and min(xs) > 0 and max(xs) / min(xs) > 10:
        ax.set_xscale("log")
    ax.margins(0.12)
    lo, hi = (np.log(ax.get_xlim()) if ax.get_xscale() == "log" else ax.get_xlim())
    # each label on the side of its point away from the nearer edge; with more points than
    # CROWDED, only the frontier's (the others: in the legend, by colour and marker)
    for p in (front if len(groups) > CROWDED else pts):
        x = what["points"][p][0]
        right = ((np.log(x) if ax.get_xscale() == "log" else x) - lo) / (hi - lo) > 0.6
        ax.annotate(p, what["points"][p], xytext=(-6 if right else 6, 5),
                    textcoords="offset points", ha="right" if right else "left", fontsize=6,
                    clip_on=True)
    what["legend"] = [t.get_text() for t in ax.legend(
        fontsize=6, ncol=2 if len(groups) > CROWDED else 1).get_texts()]
    return what


def plot_frontier(groups: list[Group], series: Series, out: Path, threshold: float) -> dict:
    """The privacy-utility frontier: a panel per model (columns; by scale) and leakage
    (rows, `leakages`), a point per group (strategy and the other varying axes) at its
    held-out perplexity (x) and leakage (y), with its interval over seeds in both where known
    (`_frontier_panel`). With fewer than two groups in every model there is nothing to
    compare: the figure says so. Panels: {panel title: {"points": {label: (x, y)}, "xerr",
    "yerr": {label: (lo, hi)}, "frontier": [labels, by x], "floor", "missing", "legend"}}."""
    known = [g for g in groups if g.get("nonmember", -1, "ppl")]
    if not known:
        return _nothing(out, "no held-out perplexity in the trials' score summaries")
    models = models_in_order(known)
    if max(sum(g.key["model"] == m for g in known) for m in models) < 2:
        what = (f"one setting ({series.label(known[0])} on {known[0].key['model']})"
                if len(known) == 1
                else "one setting per model")
        return _nothing(out, f"{what}: a frontier compares two or more, so this figure is "
                        "left empty; the tables have its numbers")
    plt = _plt()
    rows = leakages(known, threshold)
    fig, grid = plt.subplots(len(rows), len(models), figsize=(max(6.4, 5.6 * len(models)),
                             4.4 * len(rows) + 0.6), squeeze=False)
    drawn: dict[str, dict] = {}
    for row, leak in zip(grid, rows):
        for ax, model in zip(row, models):
            title = f"{leak.head}, {model}"
            drawn[title] = _frontier_panel(ax, [g for g in known if g.key["model"] == model],
                                           leak, series)
            ax.set_xlabel("held-out perplexity (non-members; lower is better)")
            ax.set_ylabel(leak.axis, fontsize=8)
            ax.set_title(textwrap.fill(title, 64), fontsize=8)
    bars = ("bars: the 95% interval over seeds, or with one seed the trial's own interval, "
            "where known" if any(p["xerr"] or p["yerr"] for p in drawn.values())
            else "no interval to draw: one seed without an interval of its own")
    return {"title": _finish(fig, out, "privacy-utility frontier: each setting's mean over "
                             f"seeds ({bars}); line: the Pareto frontier (lower perplexity "
                             "and lower leakage are better); dotted: the floor"),
            "panels": drawn}


# ------------------------------------------------------------ through training
def _dynamics_rows(h: Headline) -> list[tuple]:
    """The figure's rows: (y label, a curve's Stats drawn, its floor's, a dotted reference
    line, whether the best-utility step is ringed)."""
    at = f"members at dup {h.dup}" if h.dup >= 0 else "all members"
    return [(f"{h.sim} (%), {at}", lambda c: c.stats("member", h.dup, h.sim),
             lambda c: c.floor(h.sim), None, False),
            (f"membership {h.auc}, {at}", lambda c: c.stats("member", h.dup, h.auc),
             None, 0.5, False),
            ("held-out perplexity (non-members)", lambda c: c.floor("ppl"), None, None, True)]


def _dynamics_panel(ax, lines: list[tuple], row: tuple, h: Headline) -> dict:
    """One strategy's curves in one row: each line with its band, its floor dotted with its
    own band; the onset step (row 0) a vertical dashed line, the best-utility step (the
    perplexity row) ringed. Returns the panel's description."""
    head, members, floor, ref, ring = row
    what: dict = {"lines": [], "bands": [], "points": {}, "floor_points": {},
                  "floor_bands": [], "onset": {}, "best": {}}
    for label, style, c in lines:
        pts = members(c)
        if not pts:
            continue
        xs, stats = [s for s, _ in pts], [st for _, st in pts]
        ax.plot(xs, [st.mean for st in stats], label=label, markersize=4, **style)
        what["lines"].append(label)
        what["points"][label] = [(x, st.mean) for x, st in pts]
        if _band(ax, xs, stats, style["color"]):
            what["bands"].append(label)
        fl = floor(c) if floor else []
        if fl:
            fx, fs = [s for s, _ in fl], [st for _, st in fl]
            ax.plot(fx, [st.mean for st in fs], linestyle=":", marker=style["marker"],
                    fillstyle="none", markersize=4, color=style["color"],
                    label=f"{label}: non-member floor")
            what["floor_points"][label] = [(x, st.mean) for x, st in fl]
            if _band(ax, fx, fs, style["color"], hatch="///"):
                what["floor_bands"].append(label)
        if floor and (onset := c.onset(h)) >= 0:
            ax.axvline(onset, color=style["color"], linestyle="--", linewidth=0.8)
            what["onset"][label] = onset
        if ring and (i := c.best()) is not None:
            ax.plot([c.steps[i]], [c.at[i].get("nonmember", -1, "ppl").mean], marker="o",
                    markersize=11, fillstyle="none", color=style["color"])
            what["best"][label] = c.steps[i]
    if ref is not None:
        ax.axhline(ref, linestyle=":", color="grey", linewidth=1, label=f"chance ({ref:g})")
    ax.set_ylabel(head, fontsize=7)
    what["legend"] = [t.get_text() for t in ax.legend(fontsize=6).get_texts()]
    return what


def plot_dynamics(curves: list[Curve], h: Headline, series: Series, out: Path) -> dict:
    """Memorization through training: a column per strategy, rows: members' similarity rate
    at the headline threshold with the non-member floor (dotted) and both bands, the
    onset step dashed; the membership AUC (chance dotted); the held-out perplexity, its
    lowest ringed (the best-utility checkpoint); a line per group (the other axes, and the
    model where there are several) against the optimizer step. Panels: {"<strategy>: <row>":
    {"lines", "bands", "points", "floor_points", "floor_bands", "onset", "best", "legend"}}."""
    strategies = list(dict.fromkeys(c.group.key["strategy"] for c in curves))
    models = {c.group.key["model"] for c in curves}
    plt = _plt()
    rows = _dynamics_rows(h)
    fig, grid = plt.subplots(len(rows), len(strategies), figsize=(
        max(6.0, 4.6 * len(strategies)), 3.2 * len(rows) + 0.6), squeeze=False, sharex="col")
    drawn: dict[str, dict] = {}
    for col, strategy in enumerate(strategies):
        lines = [(series.label(c.group) + (f", {c.group.key['model']}" if len(models) > 1
                                           else ""), series.style(c.group), c)
                 for c in curves if c.group.key["strategy"] == strategy]
        for r, row in enumerate(rows):
            ax = grid[r][col]
            drawn[f"{strategy}: {row[0]}"] = _dynamics_panel(ax, lines, row, h)
            ax.set_title(f"{strategy}: {row[0]}", fontsize=8)
        grid[-1][col].set_xlabel("optimizer step")
    bands = any(p["bands"] or p["floor_bands"] for p in drawn.values())
    return {"title": _finish(fig, out, "through training: each group's mean over seeds at "
                             "every evaluated step (the last: the final model); "
                             + ("band: the 95% interval over seeds, or with one seed the "
                                "trial's own interval" if bands else
                                "no interval to draw: one seed without an interval of its own")
                             + "; dotted: the non-member floor (hatched: its band); dashed: "
                             "onset (members' interval above the floor's); ringed: lowest "
                             "held-out perplexity"),
            "panels": drawn}
