"""Benchmark: the attacks of 2026 on the GPU study's workload (issue 35 acceptance 2).

Runs sweeps/attacks.yaml (real SmolLM2-135M-Instruct fine-tuned three ways, full, head-only
and LoRA, on 600 members of the built-in corpus seen 1, 4 or 16 times, 300 non-members, 100
population documents; 3 seeds): each trained model attacked greedily and with 100 samples per
prompt (which also draws 2,000 free generations for sample-and-rank), every membership signal
including RMIA, ReCaLL and DC-PDD. Records bench/results/attacks.json, means over seeds:
- greedy_exact_full_dup4: members seen 4 times whose greedy continuation is the suffix (%);
- discoverable_n100_full_dup4: their chance that one of 100 samples is ((n, p)-discoverability,
  Hayes et al. 2024, unbiased from the 100 drawn, %);
- rank_precision_at_100_full: the share of verbatim training text among the 100 free
  generations ranked highest by zlib (Carlini et al. 2021, %);
- ref_auc_lora_dup4, rmia_auc_lora_dup4, recall_auc_lora_dup4, dcpdd_auc_lora_dup4: membership
  AUC of LoRA's members seen 4 times against the non-members, per signal;
- the cost of the attack: the generate and score stages' seconds per trial (each stage's
  manifest compute_s), greedy and n = 100, and their ratio.
Every figure is also kept per strategy and duplication with the non-member floor (`figures`).

    python bench/attacks.py --only seed=0          # one seed (a device call of < 10 min)
    python bench/attacks.py --no-run               # record the finished sweep
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._common import run_part, summaries, sweep_parser, write_result  # noqa: E402

STRATEGIES = ("full", "head", "lora")
SIGNALS = ("ref", "rmia", "recall", "dcpdd", "loss", "zlib", "mink", "minkpp")


def mean(xs: list) -> float | None:
    xs = [x for x in xs if x is not None]
    return round(statistics.mean(xs), 4) if xs else None


def stage_seconds(cfg, stage: str, key: str) -> float | None:
    """A finished stage's compute_s (its manifest: the seconds it took to compute)."""
    from memlab.io.paths import stage_dir
    from memlab.io.shards import MANIFEST

    path = stage_dir(cfg, stage, key) / MANIFEST
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("compute_s")


def trials(study) -> list[dict]:
    """Each finished trial: its arm (greedy / sample100), strategy, seed, summary and the
    seconds of its generate and score stages."""
    out = []
    for t, vals in summaries(study):
        out.append({"arm": t.point["sampling"], "strategy": t.config.train.strategy,
                    "seed": t.config.seed, "key": t.key,
                    "values": {"|".join(map(str, k)): v for k, v in vals.items()},
                    "gen_s": stage_seconds(t.config, "gen", t.keys.gen),
                    "score_s": stage_seconds(t.config, "score", t.keys.score)})
    return out


def figures(rows: list[dict]) -> dict:
    """Means over seeds per arm and strategy: exact and discoverability at 4 and 16 copies and
    the floor, every signal's AUC at 4 and 16 copies, sample-and-rank's precision, the
    stages' seconds."""
    get = lambda r, split, dup, metric: r["values"].get(f"{split}|{dup}|{metric}")  # noqa: E731
    out: dict = {}
    for arm in ("greedy", "sample100"):
        for s in STRATEGIES:
            rs = [r for r in rows if r["arm"] == arm and r["strategy"] == s]
            if not rs:
                continue
            for metric in ("exact_pct", "discoverable_n1_pct", "discoverable_n10_pct",
                           "discoverable_n100_pct", "exact_any_pct", "sim_src_ge_0.8_pct"):
                for dup in (4, 16):
                    out[f"{arm}_{s}_{metric}_dup{dup}"] = mean([get(r, "member", dup, metric)
                                                                for r in rs])
                out[f"{arm}_{s}_{metric}_floor"] = mean([get(r, "nonmember", -1, metric)
                                                         for r in rs])
            for sig in SIGNALS:
                for dup in (4, 16):
                    out[f"{arm}_{s}_auc_{sig}_dup{dup}"] = mean([get(r, "member", dup,
                                                                     f"auc_{sig}") for r in rs])
            for k in (10, 100):
                out[f"{arm}_{s}_rank_precision_at_{k}"] = mean(
                    [get(r, "member", -1, f"rank_precision_at_{k}") for r in rs])
            out[f"{arm}_{s}_gen_s"] = mean([r["gen_s"] for r in rs])
            out[f"{arm}_{s}_score_s"] = mean([r["score_s"] for r in rs])
    return {k: v for k, v in out.items() if v is not None}


def headline(f: dict) -> dict:
    """The figures issue 35 names, and the attack's cost: greedy against n = 100 per trial
    (generate + score seconds, means over every strategy's trials)."""
    cost = {arm: mean([(f.get(f"{arm}_{s}_gen_s") or 0) + (f.get(f"{arm}_{s}_score_s") or 0)
                       for s in STRATEGIES if f"{arm}_{s}_gen_s" in f])
            for arm in ("greedy", "sample100")}
    return {
        "greedy_exact_full_dup4": f.get("greedy_full_exact_pct_dup4"),
        "discoverable_n100_full_dup4": f.get("sample100_full_discoverable_n100_pct_dup4"),
        "rank_precision_at_100_full": f.get("sample100_full_rank_precision_at_100"),
        **{f"{sig}_auc_lora_dup4": f.get(f"greedy_lora_auc_{sig}_dup4")
           for sig in ("ref", "rmia", "recall", "dcpdd")},
        "attack_s_per_trial_greedy": cost["greedy"],
        "attack_s_per_trial_n100": cost["sample100"],
        "attack_cost_n100_over_greedy": (round(cost["sample100"] / cost["greedy"], 2)
                                         if cost["greedy"] and cost["sample100"] else None),
    }


def main() -> int:
    ap = sweep_parser(__doc__, "attacks.yaml", "attacks.json")
    args = ap.parse_args()
    rc, wall = run_part(args, args.set)
    if rc is not None:
        return rc
    from memlab.config.expand import load_study

    study = load_study(args.sweep, args.set)
    rows = trials(study)
    figs = figures(rows)
    write_result(args.out, "attacks.py", headline(figs), wall_s=wall,
                 sweep=Path(args.sweep).name, overrides=args.set, trials=len(rows),
                 seeds=sorted({r["seed"] for r in rows}), figures=figs, per_trial=rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
