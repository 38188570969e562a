"""What every benchmark records with its figures: command, machine, date, git sha."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    desc = f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, " \
           f"Python {platform.python_version()}"
    try:
        import torch

        if torch.cuda.is_available():
            gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            desc = f"{len(gpus)} x {gpus[0]}, torch {torch.__version__}; " + desc
    except ImportError:
        pass
    return desc


def git_sha() -> str:
    """$MEMLAB_GIT_SHA when set (a copy of the tree run elsewhere), else HEAD here."""
    if os.environ.get("MEMLAB_GIT_SHA"):
        return os.environ["MEMLAB_GIT_SHA"]
    r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def portable_args(argv: list[str]) -> list[str]:
    """The command line as recorded: an absolute path (a machine's folder) written as a
    placeholder named by its option (`--work <work>`), so records hold no machine's paths."""
    out = []
    for i, a in enumerate(argv):
        if os.path.isabs(a):
            prev = argv[i - 1] if i else ""
            a = f"<{prev.lstrip('-')}>" if prev.startswith("--") else "<path>"
        out.append(a)
    return out


def write_result(out: str | os.PathLike, script: str, headline: dict, **details) -> dict:
    result = {
        "command": f"python bench/{script} " + " ".join(portable_args(sys.argv[1:])),
        "machine": machine(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_sha": git_sha(),
        "headline": headline,
        **details,
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(headline, indent=2))
    return result


def summaries(study):
    """Each trial of a finished sweep with its score summary as {(split, dup_count, metric):
    value}; stops naming the first trial without one."""
    from memlab.io.paths import stage_dir
    from memlab.io.shards import read_summary

    for t in study.trials:
        path = stage_dir(t.config, "score", t.key)
        if not (path / "summary.parquet").is_file():
            raise SystemExit(f"trial {t.name} has no summary: the sweep did not finish")
        yield t, {(r["split"], r["dup_count"], r["metric"]): r["value"]
                  for r in read_summary(path).to_pylist()}


def run_sweep(sweep: str, sets: list[str], only: list[str] = ()) -> tuple[int, float]:
    """`memlab run SWEEP --set ... --only ...` in a subprocess: (its exit status, wall s)."""
    import time

    cmd = [sys.executable, "-m", "memlab", "run", sweep, *(a for s in sets for a in ("--set", s)),
           *(a for o in only for a in ("--only", o))]
    t0 = time.perf_counter()
    rc = subprocess.run(cmd).returncode
    wall = time.perf_counter() - t0
    print(f"memlab run exited {rc} after {wall:.0f} s", file=sys.stderr)
    return rc, wall


def sweep_parser(doc: str, sweep: str, out: str):
    """The command line of a benchmark that runs one sweep file, a part at a time (--only)
    or not at all (--no-run: record the finished sweep under --out)."""
    import argparse

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--sweep", default=str(ROOT / "sweeps" / sweep))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--only", action="append", default=[], metavar="AXIS=VALUE")
    ap.add_argument("--no-run", action="store_true", help="only record a finished sweep")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / out))
    return ap



def run_part(args, sets: list[str]) -> tuple[int | None, float | None]:
    """A sweep benchmark's run (sweep_parser's command line): the sweep with `sets`, unless
    --no-run. (exit status to return now: the run failed or ran one part (--only), else None:
    go on and record; its wall seconds, None without a run.)"""
    if args.no_run:
        return None, None
    rc, wall = run_sweep(args.sweep, sets, args.only)
    return (rc if rc != 0 or args.only else None), wall
