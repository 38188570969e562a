"""Benchmark: memlab's training on several GPUs of one machine (random-init weights).

Models: a SmolLM2-135M-shaped and a Llama-3.2-1B-shaped Llama (shapes from memlab.sweep.plan),
the SmolLM2 tokenizer (`--tok` folder); documents of the demo corpus joined into long ones so
every training sequence is `--seq` tokens; bf16 on the GPUs, micro-batch `--micro` per GPU.

Phase `isolated` (each run alone on the machine, through memlab's own train stage):
- full fine-tuning under DeepSpeed ZeRO-2 on 1 GPU (one process) and on all GPUs (a Ray Train
  TorchTrainer of n workers, as in a sweep), same micro-batch per GPU (weak scaling):
  scaling_efficiency = tokens/s on n GPUs / (n x tokens/s on 1 GPU);
- head-only and LoRA on 1 GPU; tokens/s per GPU and model FLOPs utilization (MFU) for every
  strategy: (6 full, 4 LoRA, 2 head-only) x parameters x tokens/s / (GPUs x --peak-tflops);
- resume: a full trial on all GPUs with train.checkpoint_every, its workers SIGKILLed after a
  checkpoint; Ray Train restarts them, they continue from the DeepSpeed checkpoint; the loss
  trajectory is compared with an uninterrupted run (tolerance --resume-tol, relative).
Phase `sweep`: one memlab sweep (Ray Tune) of full (ZeRO-2 and ZeRO-3, a trial across all GPUs,
0.5 GPU per worker) next to head-only and LoRA trials packed on the same GPUs (0.25 GPU each)
for both models, with generation and scoring; nvidia-smi samples each GPU's utilization
every 0.5 s: gpu_busy_frac = mean utilization over the sweep's wall time (mean over GPUs).

    python bench/multigpu.py --tok <tokenizer folder> --work <dir> --phase isolated
    python bench/multigpu.py --tok <tokenizer folder> --work <dir> --phase sweep \
        --embedder <sentence-transformers folder> --out bench/results/multigpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._common import write_result  # noqa: E402

MODELS = {"smollm2_135m": "HuggingFaceTB/SmolLM2-135M", "llama_1b": "meta-llama/Llama-3.2-1B"}
FLOPS_PER_PARAM_TOKEN = {"full": 6, "lora": 4, "head": 2}


def build_models(work: Path, tok: Path, which: list[str]) -> dict[str, Path]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from memlab.sweep.plan import KNOWN

    out = {}
    for name in which:
        folder = work / "models" / name
        if not (folder / "config.json").is_file():
            conf = LlamaConfig(**KNOWN[MODELS[name]], max_position_embeddings=2048,
                               bos_token_id=1, eos_token_id=2)
            torch.manual_seed(0)
            model = LlamaForCausalLM(conf)
            model.save_pretrained(folder, safe_serialization=True)
            for f in tok.iterdir():
                if f.name.startswith(("tokenizer", "special_tokens")):
                    shutil.copy(f, folder / f.name)
        out[name] = folder
    return out


def build_corpus(work: Path, docs: int) -> Path:
    """Demo documents joined six at a time: every sequence fills --seq tokens."""
    from memlab.components.corpus import generate_demo_corpus

    path = work / "corpus.jsonl"
    if not path.is_file():
        texts = [d["text"] for d in generate_demo_corpus(docs * 6, seed=11)]
        with open(path, "w") as f:
            for i in range(docs):
                f.write(json.dumps({"id": f"d{i}", "text": " ".join(texts[6 * i:6 * i + 6])})
                        + "\n")
    return path


def gpus() -> int:
    import torch

    return torch.cuda.device_count()


def study(args, model: Path, strategy: str, workers: int, steps: int, zero: int = 2):
    """(On a machine without GPUs the same runs go to CPU workers: a dry run of the script.)"""
    from memlab.config.schema import StudyConfig

    cfg = StudyConfig()
    d = cfg.data
    d.source, d.path, d.id_field = "local", str(build_corpus(args.work, args.docs)), "id"
    d.num_members, d.num_nonmembers, d.dup_mix = args.docs - 64, 64, [1]
    cfg.model.source, cfg.model.name = "hf", str(model)
    t = cfg.train
    t.strategy, t.seq_len, t.batch_size = strategy, args.seq, args.micro * workers
    t.max_steps, t.precision, t.threads = steps, "bf16" if gpus() else "auto", 4
    t.full.zero_stage = zero
    t.full.engine = "deepspeed"  # (auto trains a one-GPU full trial in plain torch)
    res = cfg.resources.full
    res.workers, res.gpu, res.cpu = workers, 1 if gpus() else 0, 2 if gpus() else 1
    return cfg


def dataset(args, cfg) -> Path:
    from memlab.stages.data import build_dataset

    folder = args.work / "data"
    if not (folder / "_MANIFEST.json").is_file():
        build_dataset(cfg.data, folder)
    return folder


def train_once(args, cfg, tag: str, via_ray: bool) -> dict:
    from memlab.stages.runner import run_stage
    from memlab.stages.work import TrialContext

    out = args.work / "runs" / tag
    shutil.rmtree(out, ignore_errors=True)
    data = dataset(args, cfg)
    ctx = TrialContext(cfg, {"data": data, "train": out}, base_model=cfg.model.name,
                       ray_workers=via_ray)
    man = run_stage(ctx, "train").manifest
    man["losses"] = json.loads((out / "metrics.json").read_text())["losses"]
    return man


def figures(man: dict, strategy: str, gpus: int, params: float, peak: float) -> dict:
    tok_s = man["train_tokens_per_s"]
    return {"tok_s": tok_s, "tok_s_per_gpu": tok_s / gpus,
            "mfu": FLOPS_PER_PARAM_TOKEN[strategy] * params * tok_s / (gpus * peak * 1e12)}


def _kill_workers_after_checkpoint(ckpt: Path, killed: dict) -> None:
    while not (ckpt / "latest").is_file():
        time.sleep(0.2)
    pids = subprocess.run(["pgrep", "-f", "RayTrainWorker"], capture_output=True,
                          text=True).stdout.split()
    killed["step"] = (ckpt / "latest").read_text().strip()
    killed["pids"] = len(pids)
    for pid in pids:
        os.kill(int(pid), signal.SIGKILL)


def phase_isolated(args) -> dict:
    import ray

    n = gpus() or 2
    models = build_models(args.work, args.tok, args.models)
    res: dict = {"n_gpus": gpus(), "runs": {}}
    ray.init(logging_level="ERROR")
    for name, folder in models.items():
        one = train_once(args, study(args, folder, "full", 1, args.steps), f"{name}-full1",
                         via_ray=False)
        params = one["total_params"]
        r = res["runs"][name] = {"params": params}
        r["full_1gpu"] = figures(one, "full", 1, params, args.peak_tflops)
        alln = train_once(args, study(args, folder, "full", n, args.steps), f"{name}-fulln",
                          via_ray=True)
        r["full_ngpu"] = figures(alln, "full", n, params, args.peak_tflops)
        r["scaling_efficiency_full"] = r["full_ngpu"]["tok_s"] / (n * r["full_1gpu"]["tok_s"])
        for s in ("head", "lora"):
            m = train_once(args, study(args, folder, s, 1, args.steps), f"{name}-{s}",
                           via_ray=False)
            r[s] = figures(m, s, 1, params, args.peak_tflops)
        print(json.dumps({name: r}, indent=1), flush=True)
        (args.work / "isolated.json").write_text(json.dumps(res, indent=1))  # so far
    # resume from a DeepSpeed checkpoint after the workers are killed (first model)
    name, folder = next(iter(models.items()))
    cfg = study(args, folder, "full", n, args.resume_steps)
    cfg.train.checkpoint_every = args.resume_steps // 3
    ref = train_once(args, cfg, "resume-ref", via_ray=True)
    killed: dict = {}
    watcher = threading.Thread(target=_kill_workers_after_checkpoint,
                               args=(args.work / "runs" / "resume-kill" / "ckpt", killed),
                               daemon=True)
    cfg.sweep.max_failures = 2
    watcher.start()
    got = train_once(args, cfg, "resume-kill", via_ray=True)
    diffs = [abs(a - b) / abs(a) for a, b in zip(ref["losses"], got["losses"])]
    first = got["resumed_from_step"]
    res["resume"] = {
        "model": name, "workers": n, "steps": args.resume_steps,
        "checkpoint_every": cfg.train.checkpoint_every, "killed_at_checkpoint": killed,
        "resumed_from_step": first, "ref_losses": ref["losses"], "resumed_losses": got["losses"],
        "max_rel_diff_before_kill": max(diffs[:first], default=0.0),
        "max_rel_diff_after_resume": max(diffs[first:], default=0.0),
        "tolerance_rel": args.resume_tol,
        "passed": first > 0 and len(got["losses"]) == len(ref["losses"])
        and max(diffs) <= args.resume_tol,
    }
    print(json.dumps({k: v for k, v in res["resume"].items() if "losses" not in k}), flush=True)
    ray.shutdown()
    (args.work / "isolated.json").write_text(json.dumps(res, indent=1))
    return res


def _sample_gpus(path: Path, stop: threading.Event) -> None:
    proc = subprocess.Popen(["nvidia-smi", "--query-gpu=index,utilization.gpu,memory.used",
                             "--format=csv,noheader,nounits", "-lms", "500"],
                            stdout=open(path, "w"), stderr=subprocess.DEVNULL)
    stop.wait()
    proc.terminate()
    proc.wait()


def phase_sweep(args) -> dict:
    import yaml

    n = gpus() or 2
    g = 1 if gpus() else 0
    models = build_models(args.work, args.tok, args.models)
    base = study(args, next(iter(models.values())), "full", n, 0)
    dataset(args, base)
    spec = {
        "sweep": {"name": "multigpu", "runs_root": str(args.work / "sweep-runs"),
                  "max_concurrent_trials": 0},
        "data": {"source": "local", "path": base.data.path, "id_field": "id",
                 "num_members": args.sweep_members, "num_nonmembers": args.sweep_members,
                 "dup_mix": [1, 4]},
        "model": {"source": "hf"},
        "train": {"seq_len": args.seq, "batch_size": args.micro * n,
                  "precision": "bf16" if g else "auto",
                  "epochs": args.sweep_epochs, "threads": 4},
        "attack": {"batch_size": 256 if g else 8, "actor_gpus": 0.25 * g, "actor_cpus": 1,
                   "decoding": "sample", "max_new_tokens": 64, "suffix_tokens": 50},
        "score": {"embedder": str(args.embedder),
                  "plagiarism": {"judge": str(args.embedder)}},
        "resources": {"full": {"cpu": 2 if g else 0.5, "gpu": 0.5 * g, "workers": n},
                      "head": {"cpu": 2 if g else 0.5, "gpu": 0.25 * g},
                      "lora": {"cpu": 2 if g else 0.5, "gpu": 0.25 * g}},
        "tracking": {"uri": str(args.work / "mlruns")},  # file store: the kit has mlflow-skinny
        "grid": {"train.strategy": ["full", "head", "lora"],
                 "model.name": [str(p) for p in models.values()],
                 "train.full.zero_stage": [2, 3]},
    }
    shutil.copy(ROOT / "sweeps" / "_defaults.yaml", args.work / "_defaults.yaml")
    study_file = args.work / "multigpu.yaml"
    study_file.write_text(yaml.safe_dump(spec))
    shutil.rmtree(args.work / "sweep-runs", ignore_errors=True)
    samples, stop = args.work / "gpu-util.csv", threading.Event()
    sampler = threading.Thread(target=_sample_gpus, args=(samples, stop))
    if shutil.which("nvidia-smi"):
        sampler.start()
    else:
        samples.write_text("")
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "memlab.cli", "run", str(study_file)],
                          cwd=ROOT, capture_output=True, text=True)
    wall = time.time() - t0
    stop.set()
    if sampler.is_alive():
        sampler.join()
    print(proc.stdout[-6000:], proc.stderr[-3000:], flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"the sweep failed (rc {proc.returncode}); see its output above")
    util: dict[int, list[float]] = {}
    for line in samples.read_text().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and parts[1].isdigit():
            util.setdefault(int(parts[0]), []).append(float(parts[1]) / 100)
    busy = {i: sum(v) / len(v) for i, v in sorted(util.items())}
    results = {}
    for f in (args.work / "sweep-runs" / "multigpu").glob("*/result.json"):
        r = json.loads(f.read_text())
        results[r["name"]] = {k: r["metrics"].get(k) for k in
                              ("train_tokens_per_s", "train_time_s", "final_loss")}
    return {"rc": proc.returncode, "wall_s": wall, "trials": len(results),
            "busy_frac_per_gpu": busy, "gpu_busy_frac": sum(busy.values()) / max(len(busy), 1),
            "trial_results": results}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tok", type=Path, required=True, help="tokenizer folder (SmolLM2's)")
    ap.add_argument("--work", type=Path, required=True, help="working folder (kept)")
    ap.add_argument("--phase", choices=["isolated", "sweep", "all"], default="all")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--docs", type=int, default=1024)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--micro", type=int, default=8, help="sequences per GPU per step")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--resume-steps", type=int, default=30)
    ap.add_argument("--resume-tol", type=float, default=1e-3)
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak per GPU")
    ap.add_argument("--embedder", type=Path, help="sentence-transformers folder (sweep)")
    ap.add_argument("--sweep-members", type=int, default=64)
    ap.add_argument("--sweep-epochs", type=int, default=8)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "multigpu.json"))
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    iso = phase_isolated(args) if args.phase in ("isolated", "all") else \
        json.loads((args.work / "isolated.json").read_text())
    if args.phase == "isolated":
        return
    sweep = phase_sweep(args)
    main_model = "llama_1b" if "llama_1b" in iso["runs"] else next(iter(iso["runs"]))
    headline = {"n_gpus": iso["n_gpus"],
                "scaling_efficiency_full": iso["runs"][main_model]["scaling_efficiency_full"],
                "gpu_busy_frac": sweep["gpu_busy_frac"]}
    for name, r in iso["runs"].items():
        headline[f"scaling_efficiency_full_{name}"] = r["scaling_efficiency_full"]
        for s, key in (("full_ngpu", "full"), ("head", "head"), ("lora", "lora")):
            headline[f"tok_s_per_gpu_{key}_{name}"] = r[s]["tok_s_per_gpu"]
            headline[f"mfu_{key}_{name}"] = r[s]["mfu"]
    headline["resume_max_rel_loss_diff"] = iso["resume"]["max_rel_diff_after_resume"]
    write_result(args.out, "multigpu.py", headline, scaling_model=main_model, isolated=iso,
                 sweep=sweep, settings={k: str(v) for k, v in vars(args).items()})


if __name__ == "__main__":
    main()
