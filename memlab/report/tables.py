"""The report's tables, printed (and in results.md, results.html) and in results.csv:
- extraction and plagiarism: the scorer registry's tables (each registered column's `report`
  headings), members at each duplication level next to the non-member floor (`floor_*`);
- membership inference: AUC and TPR at 1% FPR of each signal the registry's membership
  scorer reports (its headings' own tables), members of each level against all non-members;
- utility: held-out perplexity (fine-tuned and base model, from the score stage) and the
  registry's utility columns on the non-members, and the training figures (with DP
  fine-tuning in some trial: the epsilon spent / its target, the noise multiplier), one row per
  group;
- canary exposure, when the trials inserted canaries;
- sample-and-rank's precision at k, when the trials drew its generations (attack.rank).
Every row says how many documents it is over (`members`: of its duplication level,
`nonmembers`), and a TPR at a false-positive rate below 1 / the non-members is shown as not
resolved (`n/r`; left empty in results.csv, whose `smallest_fpr_%` says the rate they do
resolve): with 24 non-members, "TPR at 1% FPR" is the TPR at no false positive at all.
Every metric is machine-readable in results.csv, one row per group and duplication level.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tabulate import tabulate

from memlab.config.schema import ScoreSection
from memlab.report.dynamics import Curve, Headline
from memlab.report.numbers import TRAIN, Group, Stat
from memlab.scoring import suite
from memlab.scoring.membership import FPRS
from memlab.scoring.registry import Heading

TITLES = {  # the registry's tables, by the `table` of their registered headings
    "extraction": "Extraction: members at each duplication level against the non-member floor "
                  "(% of samples)",
    "plagiarism": "Plagiarism typing of the generations against the whole fine-tuning corpus "
                  "(% of samples; METRICS.md section 2)",
    "membership_auc": "Membership inference: AUC",
    "membership_tpr1": "Membership inference: TPR at 1% FPR (%)",
}
CSV_ONLY = ("membership_tpr01",)  # registry tables written to results.csv, not printed
# registry tables this module lays out itself (the others: members next to the floor)
LAID_OUT_HERE = ("membership_auc", "membership_tpr1", *CSV_ONLY, "utility", "canary")
PERPLEXITY = (  # (heading, summary metric of the non-members): the score stage's, not a scorer's
    ("heldout_ppl", "ppl"), ("base_ppl", "base_ppl"))

Heads = dict[str, list[tuple[str, str, str]]]  # table -> [(summary metric, heading, doc)]


def headings(secs: list[ScoreSection], groups: Sequence[Group] = ()) -> Heads:
    """table -> [(summary metric, heading, legend text)] of the registered columns of every
    score section given (the trials may differ in thresholds or plugins), in first-seen
    order; the columns' per-document headings (`per_doc`: several samples per prompt) after
    their own, only where some of `groups` has the metric, so that a study of one
    sample per prompt keeps its tables and results.csv columns."""
    out: Heads = {}

    def add(metric: str, head, table: str, doc: str) -> None:
        table, text = (head.table, head.text) if isinstance(head, Heading) else (table, head)
        if (metric, text, doc) not in out.setdefault(table, []):
            out[table].append((metric, text, doc))

    for sec in secs:
        t = f"{sec.headline_threshold:g}"
        for c in suite.columns(sec):
            for metric, head in (c.report(sec) if c.report else {}).items():
                add(metric, head, c.table, c.doc.format(t=t))
        for c in suite.columns(sec):
            p = c.per_doc
            for metric, head in (p.report(sec) if p and p.report else {}).items():
                if any(k[2] == metric for g in groups for k in g.stats):
                    add(metric, head, p.table, p.doc.format(t=t))
    return out


@dataclass(frozen=True)
class Metric:
    name: str  # CSV column stem
    head: str  # heading of the printed tables
    get: Callable[[Group, int | None], Stat | None]
    digits: int = 1
    fpr: float | None = None  # a TPR's false-positive rate: resolved by 1 / fpr non-members


@dataclass
class Table:
    title: str
    legend: str
    keys: list[str]  # key columns: strategy, model, axes, and "dup" / "repeats" (the level)
    metrics: list[Metric]
    rows: list[tuple[Group, int | None]]  # (group, level)
    extra: dict[str, Callable[[Group, int | None], str]] = field(default_factory=dict)
    docs: tuple[str, ...] = ()  # splits whose documents each row shows (DOCS), after n


@dataclass
class Listing:
    """A table of rows as they are, not of groups (the most leaked documents): cells already
    formatted; `left`: the columns aligned left."""

    title: str
    legend: str
    head: list[str]
    body: list[list[str]]
    left: tuple[str, ...] = ()


DOCS = {"member": "members", "nonmember": "nonmembers"}  # split -> its column of documents


def _span(g: Group, split: str, level: int | None) -> tuple[int, int] | None:
    return g.docs(split, level if split == "member" and level is not None else -1)


def docs_cell(g: Group, split: str, level: int | None) -> str:
    """The documents of a row: members at its level (None: all), or all non-members; `8-9`
    where seeds differ, `-` where not known."""
    span = _span(g, split, level)
    if span is None:
        return "-"
    return str(span[0]) if span[0] == span[1] else f"{span[0]}-{span[1]}"


def resolved(g: Group, fpr: float) -> bool:
    """Whether a group's non-members (of its seed with the fewest) resolve a false-positive
    rate: the membership scorer's reading (`members_flagged`) allows floor(fpr x non-members)
    of them above its threshold; 0 of them makes the TPR the TPR at no false positive, not at
    that rate. Unknown counts: yes (shown as before)."""
    span = g.docs("nonmember")
    return span is None or math.floor(fpr * span[0] + 1e-9) >= 1


def _unresolved_note(table: Table, shown: list[Metric]) -> str:
    """The legend's line on the TPRs shown `n/r`, with the rate the non-members resolve."""
    fprs = sorted({m.fpr for m in shown if m.fpr and any(
        not resolved(g, m.fpr) for g, _ in table.rows)})
    if not fprs:
        return ""
    counts = [g.docs("nonmember")[0] for g, _ in table.rows
              if any(not resolved(g, f) for f in fprs)]  # (the rows shown n/r)
    lo, hi = min(counts), max(counts)
    n = str(lo) if lo == hi else f"{lo}-{hi}"
    smallest = f"{100 / lo:.1f}%" if lo == hi else f"{100 / hi:.1f}-{100 / lo:.1f}%"
    return (f"n/r: not resolved. With {n} non-members the smallest false-positive rate above 0 "
            f"is {smallest} (one non-member): a TPR at "
            f"{' or '.join(f'{100 * f:g}%' for f in fprs)} FPR would be the TPR at no false "
            f"positive; it needs at least "
            f"{' or '.join(str(math.ceil(1 / f - 1e-9)) for f in fprs)} non-members.")


def _docs_note(table: Table, docs: list[str], shown: list[Metric]) -> str:
    """The legend's line on the documents columns: what they count, and what one document
    moves a member rate (and a floor, where the table has floors) by, at the fewest."""
    if not docs:
        return ""
    fewest = {s: min(span[0] for g, d in table.rows if (span := _span(g, s, d)) is not None)
              for s in docs}
    floors = any(m.name.startswith("floor_") for m in shown)
    moves = [f"a {'member rate' if s == 'member' else 'floor'} by {100 / fewest[s]:.1f} "
             f"points (1 of {fewest[s]})" for s in docs
             if s == "member" or floors] if "member" in docs else []
    return (f"{' and '.join(DOCS[s] for s in docs)}: the documents each row is over"
            + (" (members: of its dup)" if "member" in docs else "")
            + ", the fewest-most over the seeds where they differ"
            + (f"; one document moves {' and '.join(moves)}." if moves else "."))


def at(split: str, metric: str, dup: int | None = None) -> Callable:
    """A metric of a row's group: at the row's level, or at `dup` (-1: the whole split)."""
    return lambda g, d: g.get(split, d if dup is None else dup, metric)


def registry_tables(groups: list[Group], heads: Heads, keys: list[str]) -> list[Table]:
    """The registry's tables (extraction first): members at each duplication level next to
    the non-member floor."""
    rows = [(g, d) for g in groups for d in g.dups()]
    out = []
    for name, cols in heads.items():
        if name in LAID_OUT_HERE:
            continue
        members = [Metric(h, h, at("member", m)) for m, h, _ in cols]
        floors = [Metric(f"floor_{h}", f"floor_{h}", at("nonmember", m, -1)) for m, h, _ in cols]
        by_doc: dict[str, list[str]] = {}  # (headings that share a legend text: one entry)
        for _, h, doc in cols:
            by_doc.setdefault(doc, []).append(h)
        docs = "; ".join(f"{', '.join(hs)}: {doc}" for doc, hs in by_doc.items() if doc)
        legend = ((docs + ".\n") if docs else "") + (
            "Members at each dup (copies in the training set); floor_*: the same on "
            "non-members (never trained on).")
        out.append(Table(TITLES.get(name, name), legend, keys + ["dup"], members + floors, rows,
                         docs=("member", "nonmember")))
    return out


def signals(groups: list[Group], heads: Heads, table: str = "membership_auc"
            ) -> list[tuple[str, str, str]]:
    """The headings of a membership table (the registry's, one per signal) of the signals
    that some trial has an AUC of."""
    have = {h for m, h, _ in heads.get("membership_auc", [])
            if any(k[2] == m for g in groups for k in g.stats)}
    return [entry for entry in heads.get(table, []) if entry[1] in have]


def membership_tables(groups: list[Group], heads: Heads, keys: list[str]) -> list[Table]:
    """AUC, and TPR at 1% FPR, of each membership signal: members of each duplication level
    against all non-members."""
    auc = signals(groups, heads)
    if not auc:
        return []
    rows = [(g, d) for g in groups for d in g.dups()]
    legend = ("Signals: " + "; ".join(doc for _, _, doc in auc) + ". Members of each dup "
              "against all non-members (higher score = more member-like).")
    tpr = signals(groups, heads, "membership_tpr1")
    both = ("member", "nonmember")
    return [
        Table(TITLES["membership_auc"], legend + " AUC 0.5 = chance.", keys + ["dup"],
              [Metric(m, h, at("member", m), 2) for m, h, _ in auc], rows, docs=both),
        Table(TITLES["membership_tpr1"],
              legend + " The % of members found at the score that flags 1% of the "
              "non-members (chance: 1%).", keys + ["dup"],
              [tpr_metric(m, h) for m, h, _ in tpr], rows, docs=both),
    ]


def tpr_metric(metric: str, head: str) -> Metric:
    """A TPR of the membership scorer (`tpr1_loss`: at FPRS["tpr1"]), with its rate."""
    return Metric(metric, head, at("member", metric), fpr=FPRS[metric.split("_")[0]])


def human(n: float) -> str:
    """A count, short: 1.2M, 350.0k."""
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.1f}{unit}"
    return str(int(n))


def _train(name: str, show: Callable[[float], str]) -> Callable[[Group, int | None], str]:
    return lambda g, d: show(g.train[name].mean) if name in g.train else "-"


def _dp_eps(g: Group, d: int | None) -> str:
    """`spent / target` of a DP group's epsilon (mean over its seeds); `-`: no DP."""
    if "dp_eps" not in g.train:
        return "-"
    return f"{g.train['dp_eps'].mean:.2f} / {g.train['dp_eps_target'].mean:g}"


DP_LEGEND = (
    "\ndp_eps: the epsilon of (epsilon, delta)-DP that Opacus's accountant (PRV) counts after "
    "training / the target train.dp.epsilon, at delta train.dp.delta, for one sequence of the "
    "training stream (a member of k copies is protected as a group of k); noise: the noise "
    "multiplier (Gaussian noise std / train.dp.max_grad_norm); -: trained without DP.")


def utility_table(groups: list[Group], heads: Heads, keys: list[str]) -> Table:
    """A row per group: what fine-tuning costs the model on held-out text (the perplexities,
    and the registry's utility columns on the non-member generations), and its training; with
    DP fine-tuning in some group, its privacy (dp_eps, noise)."""
    cols = heads.get("utility", [])
    docs = ", ".join(dict.fromkeys(doc for _, _, doc in cols if doc))
    dp = any("dp_eps" in g.train for g in groups)
    return Table(
        "Utility: the fine-tuned model on non-members (never trained on), and its training",
        "heldout_ppl: perplexity of the fine-tuned model on the non-members; base_ppl: the base "
        "model's on the same documents; "
        + (f"of the non-member generations: {docs}; " if docs else "")
        + "trainable_params (the parameters the strategy trains; LoRA: its adapters), "
        "train_s: training (mean over seeds)." + (DP_LEGEND if dp else ""),
        keys, [Metric(h, h, at("nonmember", m, -1), 2) for h, m in PERPLEXITY]
        + [Metric(h, h, at("nonmember", m, -1)) for m, h, _ in cols],
        [(g, None) for g in groups],
        {"trainable_params": _train("trainable_params", human),
         "train_s": _train("train_s", lambda v: f"{v:.0f}"),
         **({"dp_eps": _dp_eps, "noise": _train("noise", lambda v: f"{v:.2f}")} if dp else {})},
        docs=("nonmember",))


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
        keys + ["repeats"], [Metric("exposure", "exposure", at("canary", "exposure"))], rows,
        {"canaries": _canary("canaries", statistics.fmean, ".0f"),
         "range": _range,
         "cap": _canary("exposure_cap", max, ".1f")})


RANK = "rank_precision_at_"  # sample-and-rank's precision metrics (memlab/scoring/rank.py)


def _rank_order(metric: str) -> tuple:
    """The headline (rank_precision_at_<k>) first, then by signal; each by k."""
    k, _, signal = metric[len(RANK):].partition("_")
    return (signal != "", signal, int(k))


def rank_table(groups: list[Group], keys: list[str]) -> Table | None:
    """Sample-and-rank (attack.rank): precision at k of each group's trials, where some
    trial has it (none: no table, and results.csv keeps its columns)."""
    rows = [(g, None) for g in groups if g.get("member", -1, "rank_unique") is not None]
    if not rows:
        return None
    found = sorted({k[2] for g, _ in rows for k in g.stats
                    if k[:2] == ("member", -1) and k[2].startswith(RANK)}, key=_rank_order)
    heads = [("rank_unique", "distinct"), ("rank_verbatim_pct", "verbatim_%")] + \
        [(m, "p@" + m[len(RANK):]) for m in found]
    return Table(
        "Sample-and-rank (Carlini et al. 2021): the fine-tuned model's free generations "
        "ranked by a membership signal",
        "distinct: generations after duplicates and empty ones are dropped (of "
        "attack.rank.samples drawn); verbatim_%: of them, the share that is verbatim training "
        "text (a run of words longer than score.plagiarism.verbatim_chars shared with a member, "
        "by the plagiarism index): a random ranking's precision; p@<k>: precision at k, the "
        "share (%) of the k highest-ranked that are verbatim, by score.rank.headline; "
        "p@<k>_<signal>: by that signal.",
        keys, [Metric(m, h, at("member", m, -1)) for m, h in heads], rows)


# ---------------------------------------------------------------- as printed
def key_cell(v) -> str:
    """A key column's value as printed."""
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


def cell(m: Metric, g: Group, d: int | None) -> str:
    """A metric's cell: `fmt`, or `n/r` for a TPR its non-members do not resolve."""
    s = m.get(g, d)
    return "n/r" if s is not None and m.fpr and not resolved(g, m.fpr) else fmt(s, m.digits)


def layout(table: Table | Listing, hide: list[str]
           ) -> tuple[list[str], list[list[str]], str]:
    """Headers, cells and legend of a table as printed: key columns but those in `hide`, n,
    the documents (where known), the metrics that have a value somewhere (the others are
    named in the legend), extras. A Listing as it is."""
    if isinstance(table, Listing):
        return table.head, table.body, table.legend
    shown = [m for m in table.metrics if any(m.get(g, d) is not None for g, d in table.rows)]
    keys = [k for k in table.keys if k not in hide]
    docs = [s for s in table.docs if any(g.docs(s) for g, _ in table.rows)]
    head = keys + ["n"] + [DOCS[s] for s in docs] + [m.head for m in shown] + list(table.extra)
    body = []
    for g, d in table.rows:
        stats = [m.get(g, d) for m in shown]
        n = min((s.n for s in stats if s is not None), default=None)
        body.append([key_cell(_key(g, d, k)) for k in keys] + [str(n) if n else "-"]
                    + [docs_cell(g, s, d) for s in docs]
                    + [cell(m, g, d) for m in shown]
                    + [extra(g, d) for extra in table.extra.values()])
    missing = [m.head for m in table.metrics if m not in shown]
    notes = [_docs_note(table, docs, shown), _unresolved_note(table, shown),
             f"No trial has: {', '.join(missing)}." if missing else ""]
    return head, body, "\n".join([table.legend, *(n for n in notes if n)])


def text(table: Table | Listing, hide: list[str]) -> str:
    """The table as `memlab report` prints it: title, columns, legend."""
    head, body, legend = layout(table, hide)
    left = list(table.left) if isinstance(table, Listing) else \
        [k for k in table.keys if k not in ("dup", "repeats")]
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
    """A row per group and member duplication level: its documents (`members` of the level,
    `nonmembers`: the fewest over the seeds) and the smallest false-positive rate those
    resolve (`smallest_fpr_%`); every metric as `<name>_mean`, `_lo`, `_hi`, `_n` (a TPR at
    a rate they do not resolve: empty, n 0); the group's own figures (utility, training,
    canaries by repeat count `_r<k>`) on each of its rows."""
    rows = []
    for g in groups:
        nonmembers = (g.docs("nonmember") or (None,))[0]
        own = {"seeds": " ".join(str(s) for s in g.seeds), "trial_keys": " ".join(g.trial_keys),
               "nonmembers": nonmembers,
               "smallest_fpr_%": 100 / nonmembers if nonmembers else None}
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
            row = {**{k: g.key.get(k) for k in keys}, "dup": d,
                   "members": (g.docs("member", d) or (None,))[0]}
            for m in per_dup:
                unresolved = m.fpr is not None and not resolved(g, m.fpr)
                row.update(_stat_columns(m.name, None if unresolved else m.get(g, d)))
            rows.append({**row, **own})
    return rows


def csv_only(groups: list[Group], heads: Heads) -> list[Metric]:
    """The registry's metrics that go to results.csv but to no printed table (TPR at 0.1% FPR
    of each signal the membership tables show)."""
    return [tpr_metric(m, h) for t in CSV_ONLY for m, h, _ in signals(groups, heads, t)]


def write_csv(rows: list[dict], path: Path) -> None:
    columns = list(dict.fromkeys(c for r in rows for c in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, columns)
        w.writeheader()
        w.writerows(rows)


# ---------------------------------------------------------------- through training
def _at(curves: dict[int, Curve], pick: Callable[[Curve], int | None],
        get: Callable[[Group], Stat | None]) -> Callable[[Group, int | None], Stat | None]:
    """A dynamics cell: `get` of the group at the step `pick` chooses of its curve."""
    def cell(g: Group, d: int | None) -> Stat | None:
        c = curves[id(g)]
        i = pick(c)
        return None if i is None else get(c.at[i])
    return cell


def dynamics_table(curves: list[Curve], h: Headline, keys: list[str]) -> Table | None:
    """A row per group with evaluation points: its onset step, its best-utility checkpoint
    (the lowest held-out perplexity) and, there and at the final model, members' similarity
    rate minus the floor, the membership AUC and the held-out perplexity. None: no points."""
    if not curves:
        return None
    by = {id(c.group): c for c in curves}
    at = f"members at dup {h.dup}" if h.dup >= 0 else "all members"
    sig = h.auc.removeprefix("auc_")
    best, final = Curve.best, lambda c: len(c.steps) - 1
    metrics = []
    for name, get, digits in (("sim_minus_floor", lambda g: g.minus_floor(h.sim, h.dup), 1),
                              (f"auc_{sig}", lambda g: g.get("member", h.dup, h.auc), 2),
                              ("heldout_ppl", lambda g: g.get("nonmember", -1, "ppl"), 2)):
        metrics += [Metric(f"{name}_best", f"{name} @best", _at(by, best, get), digits),
                    Metric(f"{name}_final", f"{name} @final", _at(by, final, get), digits)]
    return Table(
        "Through training: onset of memorization and the best-utility checkpoint",
        f"points: the evaluated steps (train.eval_at / eval_every; the last: the final model); "
        f"onset: the first step where {h.sim} of {at} has its interval above the "
        "non-member floor's (-1: none has); best: the step of the lowest held-out "
        f"perplexity (ppl of the non-members); sim_minus_floor: {h.sim} of {at} minus the "
        "floor (points); "
        f"auc_{sig}: membership AUC of {at} against the non-members; @best: at the best "
        "step, @final: the final model; stopped: the step at which each seed's "
        "train.stop_when fired, and its rule (-: never; the later points were not "
        "evaluated); dynamics.csv and dynamics.png: every step.",
        keys, metrics, [(c.group, None) for c in curves],
        {"points": lambda g, d: str(len(by[id(g)].steps)),
         "onset": lambda g, d: str(by[id(g)].onset(h)),
         "best": lambda g, d: _best_step(by[id(g)]),
         "stopped": lambda g, d: by[id(g)].stops()})


def _best_step(c: Curve) -> str:
    i = c.best()
    return "-" if i is None else str(c.steps[i])


def dynamics_rows(curves: list[Curve], h: Headline, keys: list[str]) -> list[dict]:
    """dynamics.csv: a row per group and step (`final`: the final model's), with the group's
    onset and best steps, and the members' rate, the floor, their difference, the AUC and
    the held-out perplexity at that step, each `_mean`, `_lo`, `_hi`, `_n`."""
    rows = []
    for c in curves:
        i = c.best()
        own = {**{k: c.group.key.get(k) for k in keys},
               "seeds": " ".join(str(s) for s in c.group.seeds),
               "onset_step": c.onset(h), "best_step": None if i is None else c.steps[i]}
        for j, (step, g) in enumerate(zip(c.steps, c.at)):
            row = {**own, "step": step, "final": j == len(c.steps) - 1}
            for name, s in (("sim_member", g.get("member", h.dup, h.sim)),
                            ("sim_floor", g.get("nonmember", -1, h.sim)),
                            ("sim_minus_floor", g.minus_floor(h.sim, h.dup)),
                            (h.auc, g.get("member", h.dup, h.auc)),
                            ("heldout_ppl", g.get("nonmember", -1, "ppl"))):
                row.update(_stat_columns(name, s))
            rows.append(row)
    return rows
