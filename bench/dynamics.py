"""Benchmark: memorization through training on a GPU (issue 34 part 5).

Runs sweeps/dynamics.yaml, the GPU study's workload (sweeps/gpu-1.yaml: real
SmolLM2-135M-Instruct, 600 members of the built-in corpus seen 1, 4 or 16 times, 300 held out,
50 + 50 token attack; full, head and LoRA, seeds 0, 1, 2) over 3 epochs, each trial evaluated at
every sixth of its training (train.eval_at: 6 points, the final model the last). Records
bench/results/dynamics.json: the evaluated steps (`checkpoints`), each strategy's onset step
(the first step whose members' similarity rate at 16 copies lies above the non-member floor,
the report's memlab/report/dynamics.py; -1: never), full fine-tuning's rate minus the floor at
the final model and at its best-utility checkpoint (lowest held-out perplexity), and the cost
of one checkpoint's evaluation next to a trial's training.

    python bench/dynamics.py --only seed=0         # one seed
    python bench/dynamics.py --no-run              # record the finished sweep
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._common import run_part, sweep_parser, write_result  # noqa: E402

SIM = "sim_src_ge_0.8_pct"
STRATEGIES = ("full", "head", "lora")


def headline(records: list[tuple[dict, list[dict]]], points: dict) -> dict:
    """The figures issue 34 part 5 names, from the study's records (numbers.load_records:
    result.json and score summary rows per trial) and their evaluation points
    (dynamics.load_points: trial key -> {step: rows}), as the report reads them."""
    from memlab.report.dynamics import Headline, curves_of
    from memlab.report.numbers import aggregate

    groups = aggregate(records, [])
    curves = curves_of(records, points, groups, [])
    h = Headline.of(groups, 0.8)
    by = {c.group.key["strategy"]: c for c in curves}
    out: dict = {"checkpoints": max((len(c.steps) for c in curves), default=0)}
    for s in STRATEGIES:
        out[f"{s}_onset_step"] = by[s].onset(h) if s in by else -1

    def rounded(stat) -> float | None:
        return None if stat is None else round(stat.mean, 4)

    full = by.get("full")
    final = next((g for g in groups if g.key["strategy"] == "full"), None)
    out["full_sim08_dup16_minus_floor_final"] = rounded(
        final.minus_floor(SIM, 16) if final else None)
    best = full.best() if full else None
    out["full_sim08_dup16_minus_floor_at_best_ppl"] = rounded(
        full.at[best].minus_floor(SIM, 16) if best is not None else None)
    out["full_best_ppl_step"] = full.steps[best] if best is not None else None
    return out


def timings(study) -> dict:
    """A trial's training (result.json train.train_time_s, mean over trials) and one
    checkpoint's evaluation: the median, over trials, of the seconds between consecutive
    evaluated points' score manifests (the points run one after another once training ends:
    each gap is one point's own stages, generate to score). The gen and score manifests
    record no timings of their own."""
    from memlab.io.paths import stage_dir, sweep_root
    from memlab.io.shards import MANIFEST

    train, gaps = [], []
    for t in study.trials:
        path = sweep_root(t.config) / t.key / "result.json"
        if not path.is_file():
            continue
        res = json.loads(path.read_text())
        if (s := res.get("train", {}).get("train_time_s")) is not None:
            train.append(float(s))
        done = sorted((int(cp["step"]), m.stat().st_mtime)
                      for cp in res.get("checkpoints", [])
                      if (m := stage_dir(t.config, "score", cp["keys"]["score"]) / MANIFEST)
                      .is_file())
        gaps += [b - a for (_, a), (_, b) in zip(done, done[1:])]
    return {"eval_s_per_checkpoint": round(statistics.median(gaps), 1) if gaps else None,
            "train_s_per_trial": round(statistics.mean(train), 1) if train else None}


def main() -> int:
    ap = sweep_parser(__doc__, "dynamics.yaml", "dynamics.json")
    args = ap.parse_args()
    rc, wall = run_part(args, args.set)
    if rc is not None:
        return rc
    from memlab.config.expand import load_study
    from memlab.report.dynamics import load_points
    from memlab.report.numbers import load_records

    study = load_study(args.sweep, args.set)
    records = load_records(study)
    if len(records) < len({t.key for t in study.trials}):
        raise SystemExit("the sweep did not finish: some trial has no result.json")
    points = load_points(study)
    head = headline(records, points)
    head["wall_s"] = None if wall is None else round(wall, 1)
    head |= timings(study)
    write_result(args.out, "dynamics.py", head, sweep=Path(args.sweep).name,
                 overrides=args.set, trials=len(records),
                 seeds=sorted({r["seed"] for r, _ in records}),
                 steps={k: sorted(v) for k, v in points.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
