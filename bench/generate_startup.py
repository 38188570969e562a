"""Benchmark: cold start of a generation worker, phase by phase (GPU; runs on CPU too).

What a Ray Data generation actor does before its first shard is done, timed in fresh
processes on a trained-model folder (the `--model` folder's config and tokenizer, random
weights), for one batch of the attack of bench/generate.py (50-token prompts, 100-token tails,
100 new tokens, top-k 40, batch `--batch`):

  import torch, CUDA init, import transformers + memlab, model load, move to device, Engine(),
  first batch (compile, graph capture, first kernels), second batch (steady state).

Runs: `cold` (empty compile caches), `warm` (the caches `cold` filled), `actor` (the same as a
Ray actor of `--actor-cpus` CPUs and `1 / --actors` GPU, `--actors` of them at once: adds Ray's
worker start), `actor_fit` (the same with the actors' pools sized to their CPUs, as the
generation stage's actors do: memlab.components.loaded.fit_threads).
Inductor cache counters are recorded per run. Writes bench/results/generate_startup.json.

    python bench/generate_startup.py --model <HF checkpoint folder>
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._common import write_result  # noqa: E402


def cold_start(train_dir: str, batch: int) -> dict:
    """The phases, in this (fresh) process; seconds per phase."""
    marks = [("start", time.perf_counter())]
    mark = lambda name: marks.append((name, time.perf_counter()))  # noqa: E731
    import torch

    mark("import_torch")
    cuda = torch.cuda.is_available()
    dev = "cuda" if cuda else "cpu"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.empty(1, device=dev)
        sync()
    mark("cuda_init")
    import transformers  # noqa: F401

    from memlab.components.models import load_trained
    from memlab.engine import Decoding, Engine

    mark("import_transformers_memlab")
    model, tok = load_trained(train_dir, torch.bfloat16 if cuda else torch.float32)
    mark("model_load")
    model.to(dev)
    sync()
    mark("to_device")
    eng = Engine(model, max_batch=batch, eos_token_id=tok.eos_token_id,
                 pad_token_id=tok.pad_token_id)
    mark("engine_init")
    g = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    docs = torch.randint(0, vocab, (2 * batch, 150), generator=g).tolist()
    dec = Decoding(greedy=False, top_k=40)
    for name, part in (("first_batch", docs[:batch]), ("second_batch", docs[batch:])):
        eng.generate([d[:50] for d in part], tails=[d[50:] for d in part],
                     seeds=list(range(len(part))), max_new_tokens=100, decoding=dec)
        sync()
        mark(name)
    from torch._dynamo.utils import counters

    phases = {b[0]: round(b[1] - a[1], 3) for a, b in zip(marks, marks[1:])}
    phases["total"] = round(marks[-1][1] - marks[0][1], 3)
    cache = {f"{k}.{n}": v for k in ("inductor", "aot_autograd") for n, v in counters[k].items()
             if "cache" in n}
    return {"phases": phases, "cache": cache}


def child(args) -> None:
    res = cold_start(args.child, args.batch)
    Path(args.result).write_text(json.dumps(res))
    os._exit(0)  # now: the wall time ends here, not after compile workers wind down


def run_child(train: Path, batch: int, env: dict, name: str) -> dict:
    out, log = train.parent / f"{name}.json", train.parent / f"{name}.log"
    t = time.perf_counter()
    with open(log, "w") as f:  # a file, not a pipe: helper processes may outlive the child
        p = subprocess.run([sys.executable, __file__, "--child", str(train), "--batch",
                            str(batch), "--result", str(out)], env=env, stdout=f, stderr=f,
                           timeout=900)
    wall = time.perf_counter() - t
    if p.returncode or not out.exists():
        raise SystemExit(f"child failed (rc {p.returncode}):\n{log.read_text()[-4000:]}")
    res = json.loads(out.read_text())
    res["process_wall_s"] = round(wall, 3)  # with the interpreter's own start
    return res


def run_actors(train: Path, batch: int, actors: int, cpus: float, fit: bool) -> list[dict]:
    """`actors` probes at once, each a Ray actor of `cpus` CPUs and 1/actors GPU; fit: size
    their thread and process pools to `cpus` as the stage's actors do (fit_threads)."""
    import ray
    import torch

    gpus = 1.0 / actors if torch.cuda.is_available() else 0

    @ray.remote(num_gpus=gpus, num_cpus=cpus)
    class Probe:
        def __init__(self):
            if fit:
                from memlab.components.loaded import fit_threads

                fit_threads(cpus)
            self.res = cold_start(str(train), batch)

        def result(self):
            return self.res

    t = time.perf_counter()
    probes = [Probe.remote() for _ in range(actors)]
    out = []
    for p in probes:
        r = ray.get(p.result.remote(), timeout=900)
        r["ready_wall_s"] = round(time.perf_counter() - t, 3)  # from creation to its result
        out.append(r)
    for p in probes:
        ray.kill(p)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="HF checkpoint folder (its config and tokenizer are used)")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--actor-cpus", type=float, default=4)
    ap.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--result", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "generate_startup.json"))
    args = ap.parse_args()
    if args.child:
        return child(args)
    if not args.model:
        ap.error("--model is required")
    from bench.generate_raydata import trained_folder

    work = Path(args.work or tempfile.mkdtemp(prefix="memlab-bench-"))
    train = trained_folder(args.model, work / "train", random_init=True)
    path = os.pathsep.join(x for x in (str(ROOT), os.environ.get("PYTHONPATH")) if x)
    env = dict(os.environ, PYTHONPATH=path, TORCHINDUCTOR_CACHE_DIR=str(work / "inductor"),
               TRITON_CACHE_DIR=str(work / "triton"))
    runs = {}
    for name in ("cold", "warm"):
        print(f"{name} start in a fresh process ...", flush=True)
        runs[name] = run_child(train, args.batch, env, name)
        print(name, json.dumps(runs[name]), flush=True)
    import ray

    os.environ.update({k: env[k] for k in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")})
    ray.init(include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": path}})
    for name, fit in (("actor", False), ("actor_fit", True)):
        print(f"{args.actors} Ray actors ({name}) ...", flush=True)
        runs[name] = run_actors(train, args.batch, args.actors, args.actor_cpus, fit)
        print(name, json.dumps(runs[name]), flush=True)
    ray.shutdown()
    first = lambda r: r["phases"]["first_batch"] - r["phases"]["second_batch"]  # noqa: E731
    headline = {
        "cold_start_to_second_batch_s": runs["cold"]["process_wall_s"],
        "warm_start_to_second_batch_s": runs["warm"]["process_wall_s"],
        "warm_first_batch_extra_s": round(first(runs["warm"]), 2),
        "actor_ready_wall_s": max(r["ready_wall_s"] for r in runs["actor"]),
        "actor_fit_ready_wall_s": max(r["ready_wall_s"] for r in runs["actor_fit"]),
        "steady_batch_s": runs["warm"]["phases"]["second_batch"],
    }
    write_result(args.out, "generate_startup.py", headline, runs=runs,
                 details={"batch": args.batch, "actors": args.actors})


if __name__ == "__main__":
    main()
