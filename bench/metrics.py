"""Cost of the membership, canary and utility signals: a trial's generate + score time with
them and without them, on one GPU.

One LoRA trial of the study (default sweeps/gpu-1.yaml: SmolLM2-135M, 600 members and 300
non-members of the built-in corpus, 50 + 50 token attack, batch 512, three generation and
scoring actors) is trained once; then its stages run as a trial runs them (the generate,
base and score stages through the runner: Ray Data actor pools, each stage starting its actors
and loading its models), alternately in two arms over the same trained model:
- with: as memlab ships by default, plus `--canaries` canaries per repeat count (1, 4, 16
  copies, and as many never-inserted controls), each ranked among attack.canary_alternatives
  (1000) random secrets: the per-token statistics of min-k% / min-k%++ in the generation pass,
  the canaries' exposure, the base model's pass over every document (counted whole here,
  though a sweep shares it between every trial of a model and dataset), the membership scorer
  with its bootstrap intervals, the utility scorers;
- without: score.membership.enabled and score.utility off, no canaries (the generation pass
  still computes its per-token statistics: measured in-process on the H200, each generation
  shard's attack took the same 0.2-0.3 s per 150 documents with and without them).
A warm-up of each arm first (compiled kernels cached), then `--reps` of each; the medians give
`metrics_overhead_frac` = with / without - 1, the base pass counted as a trial pays for it: its
time divided by the trials of the sweep that share it (same base model and dataset: all 9 of
gpu-1). `metrics_overhead_frac_unshared` counts it whole, as if a trial were alone.

    python bench/metrics.py            # on a GPU host, writes bench/results/metrics.json
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import ROOT, write_result  # noqa: E402


def run_arm(cfg, base: str, data: Path, train: Path, out: Path, threads: int) -> dict:
    """The generate, base and score stages of one trial, as run_trial runs them; seconds."""
    from memlab.stages.runner import run_stage
    from memlab.stages.work import TrialContext

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    ctx = TrialContext(cfg, {"data": data, "train": train, "gen": out / "gen",
                             "base": out / "base", "score": out / "score"},
                       base_model=base, keys={"trial": "bench"}, threads=threads)
    run_stage(ctx, "gen")
    t1 = time.perf_counter()
    if ctx.has("base"):
        run_stage(ctx, "base")
    t2 = time.perf_counter()
    score = run_stage(ctx, "score")
    t3 = time.perf_counter()
    return {"gen_s": t1 - t0, "base_s": t2 - t1, "score_s": t3 - t2, "total_s": t3 - t0,
            "score_columns": len(score.manifest["columns"])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", default=str(ROOT / "sweeps" / "gpu-1.yaml"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--canaries", type=int, default=4, help="canaries per repeat count")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "metrics.json"))
    ap.add_argument("--dry-run", action="store_true",
                    help="check the bench on any machine (CPU too); records nothing")
    args = ap.parse_args()

    import torch

    from memlab.components.data import read_dataset
    from memlab.components.models import prepare_base_model, torch_threads
    from memlab.config.expand import load_study
    from memlab.stages.data import build_dataset
    from memlab.stages.runner import run_stage
    from memlab.stages.work import TrialContext
    from memlab.sweep.run import _init_ray

    if not torch.cuda.is_available() and not args.dry_run:
        print("bench/metrics.py measures the GPU path: no CUDA device here", file=sys.stderr)
        return 2
    work = Path(args.work or tempfile.mkdtemp(prefix="memlab-bench-metrics-"))
    study = load_study(args.sweep, args.set)
    study_trial = next(t for t in study.trials if t.config.train.strategy == "lora")
    cfg = study_trial.config
    with_cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data))
    with_cfg.data.canaries = dataclasses.replace(cfg.data.canaries, count=args.canaries)
    without = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data))
    without.data.canaries = dataclasses.replace(cfg.data.canaries, count=0)
    without.score = dataclasses.replace(cfg.score, utility=False, membership=dataclasses.replace(
        cfg.score.membership, enabled=False))
    arms = {"without": (without, work / "data-without"), "with": (with_cfg, work / "data-with")}
    for c, d in arms.values():
        build_dataset(c.data, d)
    texts = [r["text"] for r in read_dataset(work / "data-with")]
    base = prepare_base_model(cfg.model, texts)["path"]
    t0 = time.perf_counter()
    run_stage(TrialContext(with_cfg, {"data": work / "data-with", "train": work / "train"},
                           base_model=base), "train")
    train_s = time.perf_counter() - t0
    _init_ray()
    threads = torch_threads(cfg)
    runs: dict[str, list[dict]] = {"with": [], "without": []}
    for rep in ["warmup"] + list(range(args.reps)):
        for name, (c, data) in arms.items():
            r = run_arm(c, base, data, work / "train", work / f"{name}-{rep}", threads)
            print(f"[bench] {name} {rep}: " + ", ".join(f"{k} {v:.2f}" for k, v in r.items()),
                  flush=True)
            if rep != "warmup":
                runs[name].append(r)
    med = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0] if k.endswith("_s")}
           for name, rs in runs.items()}
    sharing = sum(t.keys.base == study_trial.keys.base for t in study.trials)
    per_trial = med["with"]["total_s"] - med["with"]["base_s"] * (1 - 1 / sharing)
    frac = per_trial / med["without"]["total_s"] - 1
    unshared = med["with"]["total_s"] / med["without"]["total_s"] - 1
    if args.dry_run:
        print(f"[bench] dry run: overhead {frac:.3f} ({unshared:.3f} unshared); medians {med}")
        return 0
    headline = {"metrics_overhead_frac": round(frac, 4),
                "metrics_overhead_frac_unshared": round(unshared, 4),
                "base_pass_shared_by": sharing,
                "with_s": round(med["with"]["total_s"], 2),
                "without_s": round(med["without"]["total_s"], 2),
                "gen_with_s": round(med["with"]["gen_s"], 2),
                "gen_without_s": round(med["without"]["gen_s"], 2),
                "base_pass_s": round(med["with"]["base_s"], 2),
                "score_with_s": round(med["with"]["score_s"], 2),
                "score_without_s": round(med["without"]["score_s"], 2)}
    write_result(args.out, "metrics.py", headline, sweep=Path(args.sweep).name,
                 overrides=args.set, reps=args.reps, canaries_per_repeat=args.canaries,
                 actors=cfg.attack.actors,
                 canary_alternatives=with_cfg.attack.canary_alternatives,
                 bootstrap=with_cfg.score.membership.bootstrap,
                 documents=with_cfg.data.num_members + with_cfg.data.num_nonmembers,
                 train_s=round(train_s, 1), runs=runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
