"""Report stage: one results table for the sweep (a row per trial and duplication count),
printed, written as CSV and Markdown next to the runs, and drawn as a plot."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from memlab.cli import format_table
from memlab.config.expand import Study
from memlab.config.schema import STRATEGIES

COLUMNS = ["strategy", "model", "dup", "seed", "exact_%", "match_%", "sim>=T_%",
           "floor_exact_%", "floor_match_%", "floor_sim>=T_%", "heldout_ppl",
           "trainable_params", "train_s", "trial_key"]
# plagiarism typing against the whole corpus (a second printed table)
PLAG = ["verbatim_%", "paraphrase_%", "idea_%", "any_%", "floor_verbatim_%",
        "floor_paraphrase_%", "floor_idea_%", "floor_any_%"]
NUMERIC = {"exact_%", "match_%", "sim>=T_%", "floor_exact_%", "floor_match_%",
           "floor_sim>=T_%", "heldout_ppl", "trainable_params", "train_s", "dup", "seed", *PLAG}


def _human(n: float) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.1f}{unit}"
    return str(int(n))


def collect(study: Study) -> tuple[list[dict], float]:
    """Rows of the results table from the trials' result.json files."""
    thr = study.base.score.headline_threshold
    rows = []
    root = Path(study.base.sweep.runs_root).expanduser() / study.name
    for t in study.trials:
        path = root / t.key / "result.json"
        if not path.is_file():
            continue
        res = json.loads(path.read_text())
        m = res["metrics"]
        dups = sorted(int(k.rsplit("dup", 1)[1]) for k in m
                      if k.startswith("exact_pct/member/dup"))
        for d in dups:
            rows.append({
                "strategy": res["strategy"], "model": res["model"], "dup": d,
                "seed": res["seed"],
                "exact_%": m[f"exact_pct/member/dup{d}"],
                "match_%": 100 * m[f"token_match_frac/member/dup{d}"],
                "sim>=T_%": m[f"sim_src_ge_{thr:g}_pct/member/dup{d}"],
                "floor_exact_%": m["exact_pct/nonmember"],
                "floor_match_%": 100 * m["token_match_frac/nonmember"],
                "floor_sim>=T_%": m[f"sim_src_ge_{thr:g}_pct/nonmember"],
                "heldout_ppl": m["heldout_ppl"],
                "trainable_params": m["trainable_params"],
                "train_s": m["train_time_s"],
                "trial_key": res["key"],
            })
            for lab in ("verbatim", "paraphrase", "idea", "any"):
                key = "plagiarism_any_pct" if lab == "any" else f"{lab}_pct"
                rows[-1][f"{lab}_%"] = m.get(f"{key}/member/dup{d}")
                rows[-1][f"floor_{lab}_%"] = m.get(f"{key}/nonmember")
    order = {s: i for i, s in enumerate(STRATEGIES)}
    rows.sort(key=lambda r: (r["model"], order.get(r["strategy"], 9), r["dup"], r["seed"]))
    return rows, thr


def _cell(col: str, v) -> str:
    if col == "trainable_params":
        return _human(v)
    if col == "heldout_ppl":
        return f"{v:.2f}"
    if col == "train_s":
        return f"{v:.0f}"
    if v is None:
        return "-"
    return f"{v:.1f}" if isinstance(v, float) else str(v)


def plot(rows: list[dict], out: Path, thr: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("exact_%", "floor_exact_%", "exact extraction"),
              ("match_%", "floor_match_%", "suffix tokens matched"),
              ("sim>=T_%", "floor_sim>=T_%", f"similarity to suffix >= {thr:g}"))
    fig, axes = plt.subplots(1, len(panels), figsize=(13, 3.8))
    dups = sorted({r["dup"] for r in rows})
    for ax, (col, floor, title) in zip(axes, panels):
        for strat in dict.fromkeys(r["strategy"] for r in rows):
            sel = [r for r in rows if r["strategy"] == strat]
            ax.plot([r["dup"] for r in sel], [r[col] for r in sel], marker="o", label=strat)
            ax.axhline(sel[0][floor], linestyle=":", linewidth=1,
                       color=ax.lines[-1].get_color())
        ax.set_xscale("log", base=2)
        ax.set_xticks(dups, [str(d) for d in dups])
        ax.minorticks_off()
        ax.set_ylim(0, max(5.0, 1.15 * max(max(r[col], r[floor]) for r in rows)))
        ax.set_xlabel("copies of the document in the training set (dup_count)")
        ax.set_ylabel("% (member samples)")
        ax.set_title(f"{title} (dotted: non-member floor)", fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def write_report(study: Study) -> str:
    rows, thr = collect(study)
    root = Path(study.base.sweep.runs_root).expanduser() / study.name
    if not rows:
        return f"no finished trials under {root}"
    name = lambda c: c.replace("T_", f"{thr:g}_")  # noqa: E731
    # the printed table leaves out columns that are the same on every row (said in the title)
    same = [c for c in ("model", "seed") if len({r[c] for r in rows}) == 1]
    has_plag = any(r["any_%"] is not None for r in rows)
    columns = COLUMNS + (PLAG if has_plag else [])

    def table(cols: list[str]) -> str:
        shown = [c for c in cols if c not in same]
        return format_table([name(c) for c in shown],
                            [[_cell(c, r[c]) for c in shown] for r in rows],
                            "".join("r" if c in NUMERIC else "l" for c in shown))

    legend = (f"exact_%: samples whose suffix came back token for token; match_%: suffix "
              f"tokens reproduced at their position; sim>={thr:g}_%: samples with embedding "
              f"similarity >= {thr:g} to the true suffix.\nMembers at each dup (copies in the "
              "training set); floor_*: the same on non-members (never trained on).")
    text = table(COLUMNS) + "\n" + legend
    if has_plag:
        text += ("\n\nPlagiarism typing of the generations against the whole fine-tuning corpus "
                 "(% of samples; METRICS.md section 2)\n"
                 + table(["strategy", "model", "dup", "seed", *PLAG]))
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "results.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([name(c) for c in columns])
        w.writerows([[r[c] for c in columns] for r in rows])
    md = ["| " + " | ".join(name(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    md += ["| " + " | ".join(_cell(c, r[c]) for c in columns) + " |" for r in rows]
    (root / "results.md").write_text("\n".join(md) + "\n")
    plot(rows, root / "results.png", thr)
    fixed = ", ".join(f"{c} {rows[0][c]}" for c in same)
    return (f"\nResults of sweep '{study.name}' ({fixed}; {root}/results.csv, .md, .png)\n"
            f"{text}")
