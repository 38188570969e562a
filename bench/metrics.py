"""Cost of the membership, canary and utility signals: a trial's generate + score time with
them and without them (an ablation on one GPU, in this process).

One LoRA trial of the study (default sweeps/gpu-1.yaml: SmolLM2-135M, 600 members and 300
non-members of the built-in corpus, 50 + 50 token attack, batch 512) is trained once; then its
generate and score stages run, shard by shard, through the stages' own actor classes
(GenerateShards, BaseShards, ScoreShards and the summary) called here without Ray (the Ray
Data scheduling around them is the same with or without the signals), alternately:
- with: as memlab ships (the per-token statistics of min-k% / min-k%++ in the generation
  pass, the base model's pass over every document, `--canaries` canaries per repeat count
  (1, 4, 16 copies, plus the never-inserted controls) each ranked among
  attack.canary_alternatives secrets, the membership and utility scorers, the bootstrap
  intervals);
- without: the same trial with all of that taken out (the generation pass computes only the
  target tokens' log-probabilities, as before; no base pass; no canaries; the membership and
  utility scorers disabled). The per-document zlib length (one detokenization per document)
  stays in both.
Each variant runs `--reps` times after a warm-up of each (CUDA graphs, compiled kernels, the
embedder); the medians give `metrics_overhead_frac` = with / without - 1.

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

NEW_SCORERS = ("membership", "rougeL", "bleu", "flesch")


def _run_actor(actor, src_dir: Path, out_dir: Path) -> float:
    """Every shard of src_dir through one stage actor; seconds."""
    jobs = sorted(src_dir.glob("part-*.parquet"))
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    actor({"src": [str(p) for p in jobs], "dst": [str(out_dir / p.name) for p in jobs]})
    return time.perf_counter() - t0


def _ce_only(logits, targets):
    """The generation pass before the signals: the targets' log-probabilities only."""
    import torch

    b, t, v = logits.shape
    lp = -torch.nn.functional.cross_entropy(logits.reshape(b * t, v), targets.reshape(b * t),
                                            reduction="none").view(b, t)
    return lp, torch.zeros_like(lp)


class Variant:
    """One arm of the ablation: its config, dataset and the stage actors (loaded once)."""

    def __init__(self, name: str, cfg, base: str, data: Path, train: Path, work: Path):
        from memlab.scoring import suite
        from memlab.stages.base import BaseShards
        from memlab.stages.generate import GenerateShards

        self.name, self.cfg, self.base, self.data, self.work = name, cfg, base, data, work
        self.with_signals = name == "with"
        self.gen = GenerateShards(cfg, str(train), threads=4)
        self.base_actor = BaseShards(cfg, base, threads=4) if self.with_signals else None
        self.prepared = {s.name: s.prepare(cfg, data) for s in suite.scorers(cfg.score)
                         if s.prepare is not None and s.enabled(cfg.score)}
        self.score_actor = None

    def once(self, tag: str) -> dict:
        import memlab.engine.engine as eng
        from memlab.io.shards import read_shards
        from memlab.stages.base import base_nll
        from memlab.stages.score import ScoreShards, read_canaries, summarize

        out = self.work / f"{self.name}-{tag}"
        shutil.rmtree(out, ignore_errors=True)
        real = eng.token_stats
        if not self.with_signals:
            eng.token_stats = _ce_only
        try:
            gen_s = _run_actor(self.gen, self.data, out / "gen")
        finally:
            eng.token_stats = real
        base_s = 0.0
        if self.base_actor is not None:
            base_s = _run_actor(self.base_actor, self.data, out / "base")
        t0 = time.perf_counter()
        if self.score_actor is None:  # (its scorers' models load once, outside the timing)
            self.score_actor = ScoreShards(
                self.cfg, "bench", self.prepared,
                base_nll(out / "base") if self.with_signals else {}, threads=4)
            t0 = time.perf_counter()
        elif self.with_signals:
            self.score_actor.base = base_nll(out / "base")
        _run_actor(self.score_actor, out / "gen", out / "score")
        summary = summarize(read_shards(out / "score"), self.cfg, read_canaries(out / "gen"))
        score_s = time.perf_counter() - t0
        return {"gen_s": gen_s, "base_s": base_s, "score_s": score_s,
                "total_s": gen_s + base_s + score_s, "summary_rows": summary.num_rows}


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

    from memlab.components.data import build_dataset
    from memlab.components.models import prepare_base_model
    from memlab.config.expand import load_study
    from memlab.scoring import suite  # noqa: F401  (registers memlab's scorers)
    from memlab.scoring.registry import SCORERS
    from memlab.stages.train import run_train

    if not torch.cuda.is_available() and not args.dry_run:
        print("bench/metrics.py measures the GPU path: no CUDA device here", file=sys.stderr)
        return 2
    work = Path(args.work or tempfile.mkdtemp(prefix="memlab-bench-metrics-"))
    study = load_study(args.sweep, args.set)
    cfg = next(t.config for t in study.trials if t.config.train.strategy == "lora")
    cfg.attack.engine = "memlab" if torch.cuda.is_available() else "hf"
    with_cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data))
    with_cfg.data.canaries = dataclasses.replace(cfg.data.canaries, count=args.canaries)
    without = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data))
    without.data.canaries = dataclasses.replace(cfg.data.canaries, count=0)
    without.score = dataclasses.replace(cfg.score, membership=dataclasses.replace(
        cfg.score.membership, base_pass=False))
    data_with, data_without = work / "data-with", work / "data-without"
    build_dataset(with_cfg.data, data_with)
    build_dataset(without.data, data_without)
    from memlab.components.data import read_dataset

    base = prepare_base_model(cfg.model, [r["text"] for r in read_dataset(data_with)])["path"]
    t0 = time.perf_counter()
    run_train(with_cfg, base, data_with, work / "train")
    train_s = time.perf_counter() - t0

    # each arm's actors load their scorers once, when built: the arm without the new
    # scorers is built (and warmed up) while they are disabled
    kept = {n: SCORERS[n] for n in NEW_SCORERS}
    arms = {"with": Variant("with", with_cfg, base, data_with, work / "train", work)}
    arms["with"].once("warmup")  # CUDA graphs, kernels, the scorers' models
    try:
        for n in NEW_SCORERS:
            SCORERS[n] = dataclasses.replace(kept[n], enabled=lambda sec: False)
        arms["without"] = Variant("without", without, base, data_without, work / "train", work)
        arms["without"].once("warmup")
    finally:
        SCORERS.update(kept)
    runs: dict[str, list[dict]] = {"with": [], "without": []}
    for rep in range(args.reps):
        for name in ("without", "with"):
            r = arms[name].once(f"rep{rep}")
            runs[name].append(r)
            print(f"[bench] {name} rep {rep}: " +
                  ", ".join(f"{k} {v:.2f}" for k, v in r.items()), flush=True)
    med = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0] if k.endswith("_s")}
           for name, rs in runs.items()}
    frac = med["with"]["total_s"] / med["without"]["total_s"] - 1
    if args.dry_run:
        print(f"[bench] dry run: overhead {frac:.3f}; medians {med}")
        return 0
    headline = {"metrics_overhead_frac": round(frac, 4),
                "with_s": round(med["with"]["total_s"], 2),
                "without_s": round(med["without"]["total_s"], 2),
                "gen_with_s": round(med["with"]["gen_s"], 2),
                "gen_without_s": round(med["without"]["gen_s"], 2),
                "base_pass_s": round(med["with"]["base_s"], 2),
                "score_with_s": round(med["with"]["score_s"], 2),
                "score_without_s": round(med["without"]["score_s"], 2)}
    write_result(args.out, "metrics.py", headline, sweep=Path(args.sweep).name,
                 overrides=args.set, reps=args.reps, canaries_per_repeat=args.canaries,
                 canary_alternatives=with_cfg.attack.canary_alternatives,
                 bootstrap=with_cfg.score.membership.bootstrap,
                 documents=with_cfg.data.num_members + with_cfg.data.num_nonmembers,
                 train_s=round(train_s, 1), runs=runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
