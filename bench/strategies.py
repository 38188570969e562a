"""Benchmark: every fine-tuning strategy under one attack suite on a GPU (issue 33).

Runs sweeps/strategies.yaml with the GPU study's workload (sweeps/gpu-1.yaml: real
SmolLM2-135M-Instruct, 600 members of the built-in corpus seen 1, 4 or 16 times, 300 held out,
50 + 50 token attack) and three seeds: every strategy SmolLM2 allows (full, head, LoRA, DoRA,
IA3, LoHa, LoKr, VeRA, prefix and prompt tuning) plus DP-LoRA and DP-head at epsilon 8. Records
bench/results/strategies.json: per method, the members' similarity rate (>= 0.8) at 16 copies
minus the non-member floor, the reference-model membership AUC at 4 copies, held-out
perplexity; DP-LoRA's spent and target epsilon and its AUC at 16 copies next to LoRA's.

    python bench/strategies.py --only seed=0       # one seed (a device call of < 10 min)
    python bench/strategies.py --no-run            # record the finished sweep
    python bench/strategies.py --figure bench/results/strategies.png   # its frontier, table
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._common import run_part, summaries, sweep_parser, write_result  # noqa: E402

GPU = ["data.num_members=600", "data.num_nonmembers=300", "data.dup_factor=1",
       "data.shard_rows=150", "train.batch_size=32", "train.seq_len=128",
       "attack.prefix_tokens=50", "attack.suffix_tokens=50", "attack.max_new_tokens=50",
       "attack.batch_size=512", "attack.actors=3", "attack.actor_cpus=1",
       "attack.actor_gpus=0.06", "resources.gpu_mem_gb=80", "sweep.max_concurrent_trials=3",
       "grid.seed=[0, 1, 2]",
       *(f"resources.{s}={{cpu: 1, gpu: 0.15}}" for s in (
           "full", "head", "lora", "dora", "ia3", "loha", "lokr", "vera", "prefix", "prompt"))]


def rows(study) -> list[dict]:
    """Each finished trial: its method (the grid's label), seed, summary and train figures."""
    from memlab.io.paths import sweep_root

    out = []
    for t, vals in summaries(study):
        result = json.loads((sweep_root(t.config) / t.key / "result.json").read_text())
        out.append({"method": t.point["method"], "seed": t.config.seed, "key": t.key,
                    "values": {"|".join(map(str, k)): v for k, v in vals.items()},
                    "train": result["train"],
                    "dp": {k: result["metrics"].get(k) for k in (
                        "dp_epsilon_spent", "dp_noise_multiplier")}})
    return out


def mean(xs: list) -> float | None:
    xs = [x for x in xs if x is not None]
    return round(sum(xs) / len(xs), 4) if xs else None


def figures(trials: list[dict]) -> dict:
    """Per method (its label, `-` as `_`), means over seeds: sim08_dup16_minus_floor,
    mia_auc_ref_dup4 / _dup16, heldout_ppl, trainable_params."""
    get = lambda t, split, dup, metric: t["values"].get(f"{split}|{dup}|{metric}")  # noqa: E731
    out: dict = {}
    for m in dict.fromkeys(t["method"] for t in trials):
        ts, key = [t for t in trials if t["method"] == m], m.replace("-", "_")
        out[f"{key}_sim08_dup16_minus_floor"] = mean(
            [get(t, "member", 16, "sim_src_ge_0.8_pct") - get(t, "nonmember", -1,
                                                               "sim_src_ge_0.8_pct")
             for t in ts])
        out[f"{key}_mia_auc_ref_dup4"] = mean([get(t, "member", 4, "auc_ref") for t in ts])
        out[f"{key}_mia_auc_ref_dup16"] = mean([get(t, "member", 16, "auc_ref") for t in ts])
        out[f"{key}_heldout_ppl"] = mean([get(t, "nonmember", -1, "ppl") for t in ts])
        out[f"{key}_trainable_params"] = mean([t["train"]["trainable_params"] for t in ts])
    dp = [t for t in trials if t["method"] == "dp-lora"]
    out["dp_lora_epsilon_spent"] = mean([t["dp"]["dp_epsilon_spent"] for t in dp])
    out["dp_lora_epsilon_target"] = 8.0
    return out


def headline(figs: dict) -> dict:
    """The figures issue 33 names: per method the three, DP-LoRA's epsilons and its AUC at 16
    copies next to LoRA's."""
    named = ("_sim08_dup16_minus_floor", "_mia_auc_ref_dup4", "_heldout_ppl")
    keep = [k for k in figs if k.endswith(named)] + [
        "dp_lora_epsilon_spent", "dp_lora_epsilon_target", "dp_lora_mia_auc_ref_dup16",
        "lora_mia_auc_ref_dup16"]
    return {k: figs.get(k) for k in keep}


def draw(record: dict, study, png: Path) -> str:
    """The privacy-utility frontier of a record (the report's figure, memlab/report/figures.py,
    over the record's trials: their score summaries and training figures) and its table as
    markdown: per method, mean over the record's seeds [95% interval where there are two or
    more]. The study gives each method's strategy and model."""
    from memlab.config.labels import model_label
    from memlab.report.figures import Series, plot_frontier
    from memlab.report.numbers import aggregate

    of = {t.point["method"]: t.config for t in study.trials}
    records = []
    for t in record["per_trial"]:
        cfg = of[t["method"]]
        rows = [{"split": k.split("|")[0], "dup_count": int(k.split("|")[1]),
                 "metric": k.split("|")[2], "value": v} for k, v in t["values"].items()]
        records.append(({"strategy": cfg.train.strategy, "model": model_label(cfg),
                         "point": {"method": t["method"]}, "seed": t["seed"], "key": t["key"],
                         "train": t["train"]}, rows))
    groups = aggregate(records, ["method"])
    plot_frontier(groups, Series(groups, ["method"]), png, 0.8)

    def cell(stat, fmt: str) -> str:
        if stat is None:
            return "-"
        if stat.lo is None or stat.n < 2:
            return format(stat.mean, fmt)
        return f"{stat.mean:{fmt}} [{stat.lo:{fmt}}, {stat.hi:{fmt}}]"

    lines = ["| method | trainable params | sim>=0.8 % minus floor, 16 copies | "
             "MIA AUC (ref), 4 copies | MIA AUC (ref), 16 copies | held-out ppl |",
             "|---|---:|---:|---:|---:|---:|"]
    for g in groups:
        n = g.train.get("trainable_params")
        lines.append(f"| {g.key['method']} | {n.mean:,.0f} | "
                     f"{cell(g.minus_floor('sim_src_ge_0.8_pct', 16), '.2f')} | "
                     f"{cell(g.get('member', 4, 'auc_ref'), '.3f')} | "
                     f"{cell(g.get('member', 16, 'auc_ref'), '.3f')} | "
                     f"{cell(g.get('nonmember', -1, 'ppl'), '.1f')} |")
    return "\n".join(lines)


def main() -> int:
    ap = sweep_parser(__doc__, "strategies.yaml", "strategies.json")
    ap.add_argument("--figure", metavar="PNG", help="draw the frontier of the record --out "
                    "(and print its table as markdown): nothing runs")
    args = ap.parse_args()
    sets = GPU + args.set
    if args.figure:
        from memlab.config.expand import load_study

        record = json.loads(Path(args.out).read_text())
        print(draw(record, load_study(args.sweep, record["overrides"]), Path(args.figure)))
        return 0
    rc, wall = run_part(args, sets)
    if rc is not None:
        return rc
    from memlab.config.expand import load_study

    trials = rows(load_study(args.sweep, sets))
    figs = figures(trials)
    write_result(args.out, "strategies.py", headline(figs), sweep=Path(args.sweep).name,
                 overrides=sets, trials=len(trials), seeds=sorted({t["seed"] for t in trials}),
                 wall_s=wall, figures=figs,
                 per_trial=trials)
    return 0


if __name__ == "__main__":
    sys.exit(main())
