"""Benchmark: the recorded GPU study (sweeps/gpu-1.yaml) with 95% confidence intervals over seeds.

Runs `memlab run sweeps/gpu-1.yaml` (real SmolLM2-135M-Instruct weights, full / head-only /
LoRA x members seen 1 / 4 / 16 times x 3 seeds, on the built-in corpus), times it, then reads
every trial's summary and writes, per strategy and duplication level, the mean over seeds of
each rate with a 95% Student-t interval, members next to the non-member floor. Writes
bench/results/study_gpu.json, a plot (study_gpu.png) and a Markdown table (study_gpu.md).

    python bench/study_gpu.py                      # run the sweep, then record
    python bench/study_gpu.py --no-run             # record a finished sweep again
    python bench/study_gpu.py --set data.num_members=30 --set data.num_nonmembers=15 \\
        --out small/study_gpu.json                 # a small dry run (e.g. on CPU)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._common import run_sweep, summaries, write_result  # noqa: E402

RATES = {  # summary metric -> what it is (METRICS.md sections 1-3), all % of samples
    "exact_pct": "exact extraction",
    "sim_src_ge_0.8_pct": "embedding similarity to the true suffix >= 0.8",
    "verbatim_pct": "verbatim plagiarism",
    "paraphrase_pct": "paraphrase plagiarism",
    "idea_pct": "idea plagiarism",
    "plagiarism_any_pct": "any plagiarism type",
}


def ci95(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of the 95% Student-t interval (0 for a single value)."""
    import numpy as np
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float(x.mean()), 0.0
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return float(x.mean()), float(half)


def per_trial(study) -> list[dict]:
    """Each finished trial's rates: members per duplication level, and the floor."""
    out = []
    for t, vals in summaries(study):
        dups = sorted({d for s, d, _ in vals if s == "member" and d >= 0})
        out.append({"strategy": t.config.train.strategy, "seed": t.config.seed, "key": t.key,
                    "member": {d: {m: vals.get(("member", d, m)) for m in RATES} for d in dups},
                    "floor": {m: vals.get(("nonmember", -1, m)) for m in RATES},
                    "heldout_ppl": vals.get(("nonmember", -1, "ppl"))})
    return out


def aggregate(trials: list[dict]) -> dict:
    """strategy -> {dup -> metric -> {mean, ci95, minus_floor_mean, minus_floor_ci95, seeds}},
    floor -> metric -> ..."""
    out: dict = {}
    for s in sorted({t["strategy"] for t in trials}):
        ts = [t for t in trials if t["strategy"] == s]
        entry: dict = {"floor": {}, "member": {}}
        for m in RATES:
            mean, half = ci95([t["floor"][m] for t in ts])
            entry["floor"][m] = {"mean": mean, "ci95": half,
                                 "seeds": [t["floor"][m] for t in ts]}
        for d in sorted({d for t in ts for d in t["member"]}):
            entry["member"][d] = {}
            for m in RATES:
                vals = [t["member"][d][m] for t in ts]
                diff = [t["member"][d][m] - t["floor"][m] for t in ts]
                mean, half = ci95(vals)
                dmean, dhalf = ci95(diff)
                entry["member"][d][m] = {"mean": mean, "ci95": half, "seeds": vals,
                                         "minus_floor_mean": dmean, "minus_floor_ci95": dhalf}
        entry["heldout_ppl"] = ci95([t["heldout_ppl"] for t in ts])
        out[s] = entry
    return out


def markdown(agg: dict) -> str:
    from tabulate import tabulate

    rows = []
    for s, e in agg.items():
        for d, ms in e["member"].items():
            rows.append([s, d, *(f"{ms[m]['mean']:.1f} ± {ms[m]['ci95']:.1f}" for m in RATES)])
        rows.append([s, "floor", *(f"{e['floor'][m]['mean']:.1f} ± {e['floor'][m]['ci95']:.1f}"
                                   for m in RATES)])
    heads = ["strategy", "copies", "exact_%", "sim>=0.8_%", "verbatim_%", "paraphrase_%",
             "idea_%", "any_%"]
    return tabulate(rows, headers=heads, tablefmt="github", disable_numparse=True)


def plot(agg: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = ["exact_pct", "sim_src_ge_0.8_pct", "plagiarism_any_pct"]
    fig, axes = plt.subplots(1, len(panels), figsize=(13, 3.9))
    colors = {"full": "tab:red", "head": "tab:blue", "lora": "tab:green"}
    for ax, m in zip(axes, panels):
        for s, e in agg.items():
            dups = list(e["member"])
            ys = [e["member"][d][m]["mean"] for d in dups]
            errs = [e["member"][d][m]["ci95"] for d in dups]
            c = colors.get(s)
            ax.errorbar(dups, ys, yerr=errs, marker="o", capsize=3, color=c, label=s)
            f = e["floor"][m]
            ax.axhline(f["mean"], color=c, ls=":", lw=1)
            ax.axhspan(f["mean"] - f["ci95"], f["mean"] + f["ci95"], color=c, alpha=0.08)
        ax.set_xscale("log", base=2)
        ax.set_xticks(dups, [str(d) for d in dups])
        ax.set_xlabel("copies of the member in the training set")
        ax.set_title(RATES[m], fontsize=9)
        top = max(max(v[m]["mean"] + v[m]["ci95"] for v in e["member"].values())
                  for e in agg.values())
        ax.set_ylim(-0.5, max(5.0, 1.15 * top))
    axes[0].set_ylabel("% of samples (mean of 3 seeds, 95% CI)")
    axes[0].legend(title="dotted: non-member floor", fontsize=8, title_fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", default=str(ROOT / "sweeps" / "gpu-1.yaml"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--no-run", action="store_true", help="only record a finished sweep")
    ap.add_argument("--replot", action="store_true",
                    help="only draw the plot again from the record at --out")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "study_gpu.json"))
    args = ap.parse_args()

    if args.replot:  # the recorded means and intervals, drawn again (no sweep, no record)
        agg = json.loads(Path(args.out).read_text())["aggregate"]
        for e in agg.values():
            e["member"] = {int(d): v for d, v in e["member"].items()}
        plot(agg, Path(args.out).with_suffix(".png"))
        return 0

    from memlab.config.expand import load_study

    study = load_study(args.sweep, args.set)
    wall = None
    if not args.no_run:
        rc, wall = run_sweep(args.sweep, args.set)
        if rc != 0:
            return rc
    trials = per_trial(study)
    agg = aggregate(trials)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot(agg, out.with_suffix(".png"))
    table = markdown(agg)
    out.with_suffix(".md").write_text(table + "\n")
    print(table)
    top = max(d for e in agg.values() for d in e["member"])
    headline = {"wall_s": round(wall, 1) if wall is not None else None}
    for s in ("full", "lora", "head"):
        if s in agg:
            headline[f"{s}_sim08_dup{top}_minus_floor"] = round(
                agg[s]["member"][top]["sim_src_ge_0.8_pct"]["minus_floor_mean"], 2)
    headline["nonmember_any_plagiarism_floor_max"] = round(
        max(t["floor"]["plagiarism_any_pct"] for t in trials), 2)
    write_result(out, "study_gpu.py", headline, sweep=Path(args.sweep).name, overrides=args.set,
                 trials=len(trials), rates=RATES, aggregate=agg, per_trial=trials,
                 table_md=table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
