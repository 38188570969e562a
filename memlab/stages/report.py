"""Report stage: the sweep's results tables (a row per trial and duplication count), printed,
written as CSV and Markdown next to the runs, and drawn as a plot.

The columns come from the scorer registry (each registered column's `report` headings),
read from each trial's score summary (SUMMARY_SCHEMA): members at each duplication level next
to the non-member floor (`floor_*`), then the trial's held-out perplexity and training figures.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tabulate import tabulate

from memlab.config.expand import Study
from memlab.config.schema import STRATEGIES, ScoreSection
from memlab.io.paths import stage_dir, sweep_root
from memlab.scoring import suite
from memlab.stages.score import read_summary

KEYS = ["strategy", "model", "dup", "seed"]
TRIAL = ["heldout_ppl", "trainable_params", "train_s", "trial_key"]
SHOWN_ELSEWHERE = ("train.strategy", "seed", "model.name", "model.source")  # grid axes
TITLES = {  # tables after the first, by the `table` of their registered columns
    "plagiarism": "Plagiarism typing of the generations against the whole fine-tuning corpus "
                  "(% of samples; METRICS.md section 2)",
}


def axes(study: Study) -> list[str]:
    """The grid axes that tell rows apart besides strategy, model, dup and seed."""
    return [k for k in study.grid if k not in SHOWN_ELSEWHERE]


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


def _human(n: float) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.1f}{unit}"
    return str(int(n))


def collect(study: Study) -> list[dict]:
    """A row per finished trial and member duplication level: every reported metric of its
    members at that level (`<heading>`) and of the non-members (`floor_<heading>`)."""
    rows = []
    for t in study.trials:
        path = sweep_root(t.config) / t.key / "result.json"
        if not path.is_file():
            continue
        res = json.loads(path.read_text())
        values = {(r["split"], r["dup_count"], r["metric"]): r["value"] for r in
                  read_summary(stage_dir(t.config, "score", t.key)).to_pylist()}
        dups = sorted({d for s, d, _ in values if s == "member" and d >= 0})
        for d in dups:
            row = {"strategy": res["strategy"], "model": res["model"], "dup": d,
                   "seed": res["seed"], **{k: res["point"].get(k) for k in axes(study)},
                   "heldout_ppl": values.get(("nonmember", -1, "ppl")),
                   "trainable_params": res["train"]["trainable_params"],
                   "train_s": res["train"]["train_time_s"], "trial_key": res["key"]}
            for cols in headings([t.config.score]).values():
                for metric, head, _ in cols:
                    row[head] = values.get(("member", d, metric))
                    row[f"floor_{head}"] = values.get(("nonmember", -1, metric))
            rows.append(row)
    order = {s: i for i, s in enumerate(STRATEGIES)}
    rows.sort(key=lambda r: (r["model"], order.get(r["strategy"], 9),
                             *(str(r[k]) for k in axes(study)), r["dup"], r["seed"]))
    return rows


def _cell(col: str, v) -> str:
    if v is None:
        return "-"
    if isinstance(v, list):  # a grid axis over a list (e.g. score.plugins): short names
        return ",".join(Path(x).name for x in v) or "-"
    if col == "trainable_params":
        return _human(v)
    if col == "heldout_ppl":
        return f"{v:.2f}"
    if col == "train_s":
        return f"{v:.0f}"
    return f"{v:.1f}" if isinstance(v, float) else str(v)


def _columns(table: list[tuple[str, str, str]]) -> list[str]:
    heads = [h for _, h, _ in table]
    return heads + [f"floor_{h}" for h in heads]


def plot(rows: list[dict], out: Path, panels: list[tuple[str, str, str]],
         keys: list[str]) -> None:
    """One panel per heading of the first table: members against duplication, one line per
    trial setting (strategy and every other key column that varies), the non-member floor
    dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    varying = [k for k in keys if k != "dup" and len({_cell(k, r[k]) for r in rows}) > 1]
    lines: dict[tuple, list[dict]] = {}
    for r in rows:
        lines.setdefault(tuple(_cell(k, r[k]) for k in varying), []).append(r)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.8), squeeze=False)
    dups = sorted({r["dup"] for r in rows})
    for ax, (_, col, doc) in zip(axes[0], panels):
        floor = f"floor_{col}"
        for label, sel in lines.items():
            sel = [r for r in sel if r.get(col) is not None]
            if not sel:
                continue
            ax.plot([r["dup"] for r in sel], [r[col] for r in sel], marker="o",
                    label=", ".join(label) or None)
            if sel[0].get(floor) is not None:
                ax.axhline(sel[0][floor], linestyle=":", linewidth=1,
                           color=ax.lines[-1].get_color())
        ax.set_xscale("log", base=2)
        ax.set_xticks(dups, [str(d) for d in dups])
        ax.minorticks_off()
        top = max([v for r in rows for v in (r.get(col), r.get(floor)) if v is not None],
                  default=0)
        ax.set_ylim(0, max(5.0, 1.15 * top))
        ax.set_xlabel("copies of the document in the training set (dup_count)")
        ax.set_ylabel(col)
        ax.set_title(f"{doc or col}\n(dotted: non-member floor)", fontsize=8)
        if len(lines) > 1:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def write_report(study: Study) -> str:
    rows = collect(study)
    root = sweep_root(study.base)
    if not rows:
        return f"no finished trials under {root}"
    tables = headings([t.config.score for t in study.trials])
    keys = KEYS[:2] + axes(study) + KEYS[2:]
    # the printed tables leave out columns that are the same on every row (said in the title)
    same = [c for c in ("model", "seed") if len({r[c] for r in rows}) == 1]

    def table(cols: list[str]) -> str:
        shown = [c for c in cols if c not in same]
        return tabulate([[_cell(c, r.get(c)) for c in shown] for r in rows], headers=shown,
                        disable_numparse=True,
                        colalign=["right" if c in ("dup", "seed") or c not in keys + ["trial_key"]
                                  else "left" for c in shown])

    names = list(tables)
    first = tables[names[0]]
    legend = ("; ".join(f"{head}: {doc}" for _, head, doc in first if doc) + ".\nMembers at "
              "each dup (copies in the training set); floor_*: the same on non-members "
              "(never trained on).")
    text = table(keys + _columns(first) + TRIAL) + "\n" + legend
    for name in names[1:]:
        text += f"\n\n{TITLES.get(name, name)}\n" + table(keys + _columns(tables[name]))
    columns = keys + [c for n in names for c in _columns(tables[n])] + TRIAL
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "results.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        w.writerows([[r.get(c) for c in columns] for r in rows])
    md = tabulate([[_cell(c, r.get(c)) for c in columns] for r in rows], headers=columns,
                  tablefmt="github", disable_numparse=True)
    (root / "results.md").write_text(md + "\n")
    plot(rows, root / "results.png", first, keys)
    fixed = ", ".join(f"{c} {rows[0][c]}" for c in same)
    return (f"\nResults of sweep '{study.name}' ({fixed}; {root}/results.csv, .md, .png)\n"
            f"{text}")
