"""Train stage: fine-tune the base model on the duplicated member stream, one of three ways.

- full: every weight trains, through a DeepSpeed engine (ZeRO stage from config; gloo on CPU,
  NCCL + bf16 on GPU); a torch AdamW is passed in so no DeepSpeed op needs compiling.
- head: only the output head trains (untied from the input embedding first when tied).
- lora: peft adapters on the configured modules.

All three see the same sequences in the same order for the same number of steps. Writes
`train/model/` (full weights, or the LoRA adapter), `train/metrics.json` and, last, the manifest.
In a sweep, `full` runs as a Ray Train TorchTrainer of `resources.full.workers` workers, each
taking its contiguous slice of every global batch. With `train.checkpoint_every`, a resumable
checkpoint (DeepSpeed's for full; trainable tensors + optimizer for head/LoRA; RNG states
per rank) is kept in `train/ckpt/`; a rerun continues from it and removes it when done.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import socket
import time
from pathlib import Path

from memlab.components.data import read_dataset, training_stream
from memlab.components.models import (
    doc_tokens,
    load_causal_lm,
    load_tokenizer,
    torch_dtype,
    untie_head,
)
from memlab.config.schema import StudyConfig
from memlab.io.paths import content_key
from memlab.io.shards import begin_stage, manifest_digest, write_json_atomic, write_manifest

log = logging.getLogger(__name__)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _init_single_process_group(backend: str) -> None:
    """A one-process group for DeepSpeed when not launched by a distributed launcher."""
    import deepspeed
    import torch.distributed as dist

    if dist.is_initialized():
        return
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(_free_port()))
    for var, val in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1")):
        os.environ.setdefault(var, val)
    deepspeed.init_distributed(dist_backend=backend, verbose=False)


def deepspeed_config(cfg: StudyConfig, world_size: int, bf16: bool) -> dict:
    t = cfg.train
    if t.batch_size % world_size:
        raise ValueError(f"train.batch_size={t.batch_size} is not divisible by "
                         f"{world_size} workers")
    return {
        "train_batch_size": t.batch_size,
        "train_micro_batch_size_per_gpu": t.batch_size // world_size,
        "gradient_accumulation_steps": 1,
        "gradient_clipping": 1.0,
        "zero_optimization": {"stage": t.full.zero_stage},
        "bf16": {"enabled": bf16},
        "zero_allow_untested_optimizer": True,
        "zero_force_ds_cpu_optimizer": False,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def _rank_rows(rows: list, rank: int, world: int) -> tuple[list, bool]:
    """This rank's contiguous slice of a global batch (sizes differ by at most one). A rank
    left without rows (a short last batch) reuses row 0 and is marked `empty` (loss x 0)."""
    lo, hi = rank * len(rows) // world, (rank + 1) * len(rows) // world
    return (rows[lo:hi], False) if hi > lo else (rows[:1], True)


def _batches(stream: list[dict], tok, cfg: StudyConfig, start: int = 0, rank: int = 0,
             world: int = 1):
    """Yield (input_ids, attention_mask, labels, empty) per optimizer step from step `start`:
    this rank's part of the global batch, right-padded (skipped steps are not tokenized)."""
    import torch

    t = cfg.train
    cache: dict[str, list[int]] = {}
    steps_per_epoch = math.ceil(len(stream) / t.batch_size)
    step = -1
    for _ in range(t.epochs):
        for s in range(steps_per_epoch):
            step += 1
            if step < start:
                continue
            rows, empty = _rank_rows(stream[s * t.batch_size:(s + 1) * t.batch_size], rank,
                                     world)
            seqs = []
            for r in rows:
                if r["doc_id"] not in cache:
                    cache[r["doc_id"]] = doc_tokens(tok, r["text"], t.seq_len)
                seqs.append(cache[r["doc_id"]])
            width = max(len(x) for x in seqs)
            ids = torch.full((len(seqs), width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            for i, x in enumerate(seqs):
                ids[i, :len(x)] = torch.tensor(x)
                mask[i, :len(x)] = 1
            labels = ids.masked_fill(mask == 0, -100)
            yield ids, mask, labels, empty


def _warmup(optim, steps: int):
    """Linear warm-up over `steps` optimizer steps, then constant (same for all strategies)."""
    import torch

    return torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: min(1.0, (s + 1) / steps) if steps else 1.0)


def count_steps(stream_len: int, cfg: StudyConfig) -> int:
    steps = math.ceil(stream_len / cfg.train.batch_size) * cfg.train.epochs
    return min(steps, cfg.train.max_steps) if cfg.train.max_steps else steps


def train_upstream(data_dir: Path, base_model: str) -> str:
    return content_key({"data": manifest_digest(data_dir), "base_model": base_model})


def run_train(cfg: StudyConfig, base_model: str, data_dir: Path, out_dir: Path,
              on_loss=None) -> dict:
    """Fine-tune in this process and save. Returns the train manifest (skips work if it
    already exists). `full` runs a one-process DeepSpeed group here; in a sweep it runs
    across Ray Train workers instead (run_train_workers).

    `on_loss(step, loss)` is called after every optimizer step (e.g. to log to MLflow).
    """
    upstream = train_upstream(data_dir, base_model)
    done = begin_stage(out_dir, upstream)
    if done is not None:
        log.info("train: already finished in %s", out_dir)
        return done
    return train_here(cfg, base_model, data_dir, out_dir, upstream, on_loss)


def run_train_workers(cfg: StudyConfig, base_model: str, data_dir: Path, out_dir: Path,
                      tracking: tuple[str, str] | None, storage: Path) -> dict:
    """Full fine-tuning as a Ray Train TorchTrainer fitted from inside the Tune trial:
    `resources.full.workers` workers of `resources.full.cpu/gpu` each (on nodes with
    `resources.full.labels`), one DeepSpeed ZeRO group across them (gloo on CPU, NCCL on GPU).
    Rank 0 logs the loss to the MLflow run `tracking` = (uri, run_id) and writes the outputs.
    A failed worker group is restarted up to sweep.max_failures times and continues from the
    last checkpoint (train.checkpoint_every)."""
    upstream = train_upstream(data_dir, base_model)
    done = begin_stage(out_dir, upstream)
    if done is not None:
        log.info("train: already finished in %s", out_dir)
        return done
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from memlab.config.load import to_dict
    from memlab.io.shards import read_manifest

    res = cfg.resources.full
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"config": to_dict(cfg), "base_model": base_model,
                           "data_dir": str(data_dir), "out_dir": str(out_dir),
                           "upstream": upstream, "tracking": tracking},
        torch_config=TorchConfig(backend="nccl" if res.gpu else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=res.workers, use_gpu=res.gpu > 0,
            resources_per_worker={"CPU": res.cpu, **({"GPU": res.gpu} if res.gpu else {})},
            label_selector=dict(res.labels) or None),
        run_config=RunConfig(name="train", storage_path=str(storage),
                             failure_config=FailureConfig(max_failures=cfg.sweep.max_failures)),
    )
    trainer.fit()
    man = read_manifest(out_dir)
    if man is None:
        raise RuntimeError(f"train workers finished without a manifest in {out_dir}")
    return man


def _worker_loop(c: dict) -> None:
    """One Ray Train worker: the torch process group is already set up by Ray Train."""
    import ray
    import ray.train
    import torch

    from memlab.config.load import Located, from_dict

    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(ctx.get_world_size()),
                      LOCAL_RANK=str(ctx.get_local_rank()))
    logging.basicConfig(level=os.environ.get("MEMLAB_LOG", "INFO"),
                        format=f"%(levelname)s rank{rank} %(name)s: %(message)s")
    problems: list[str] = []
    cfg = from_dict(StudyConfig, c["config"], "", Located(), problems)
    res = cfg.resources.full
    torch.set_num_threads(cfg.train.threads or max(1, math.ceil(res.cpu)))
    device = "cpu"
    if torch.cuda.is_available():
        from ray.train.torch import get_device

        torch.cuda.set_device(get_device())
        device = "cuda"
    nodes: list = [None] * ctx.get_world_size()
    torch.distributed.all_gather_object(nodes, ray.get_runtime_context().get_node_id())
    on_loss = None
    if rank == 0 and c["tracking"]:
        from memlab.tracking.mlflow_log import TrackedRun

        run = TrackedRun(*c["tracking"])
        run.set_tags({"ray.train_worker_nodes": ",".join(nodes)})
        every = cfg.train.log_every
        on_loss = lambda step, loss: (run.log_metric("train_loss", loss, step)  # noqa: E731
                                      if step % every == 0 else None)
    train_here(cfg, c["base_model"], Path(c["data_dir"]), Path(c["out_dir"]), c["upstream"],
               on_loss, device)


CKPT = "ckpt"


def _save_rng(folder: Path, rank: int) -> None:
    import torch

    state = {"cpu": torch.random.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    tmp = folder / f".rng_rank{rank}.pt"
    torch.save(state, tmp)
    os.replace(tmp, folder / f"rng_rank{rank}.pt")


def _load_rng(folder: Path, rank: int) -> None:
    import torch

    f = folder / f"rng_rank{rank}.pt"
    if f.is_file():
        state = torch.load(f, weights_only=False)
        torch.random.set_rng_state(state["cpu"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state(state["cuda"])


def _save_local(ckpt: Path, model, optim, sched, step: int, losses: list[float]) -> None:
    """head / LoRA: the trainable tensors, optimizer and schedule, atomically."""
    import torch

    ckpt.mkdir(parents=True, exist_ok=True)
    state = {"trainable": {n: p.detach().cpu() for n, p in model.named_parameters()
                           if p.requires_grad},
             "optim": optim.state_dict(), "sched": sched.state_dict(), "step": step,
             "losses": losses}
    torch.save(state, ckpt / ".state.pt")
    os.replace(ckpt / ".state.pt", ckpt / "state.pt")
    _save_rng(ckpt, 0)


def _load_local(ckpt: Path, model, optim, sched) -> tuple[int, list[float]]:
    import torch

    f = ckpt / "state.pt"
    if not f.is_file():
        return 0, []
    state = torch.load(f, weights_only=False)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n, v in state["trainable"].items():
            params[n].copy_(v)
    optim.load_state_dict(state["optim"])
    sched.load_state_dict(state["sched"])
    _load_rng(ckpt, 0)
    return state["step"], state["losses"]


def _save_deepspeed(ckpt: Path, engine, step: int, losses: list[float]) -> None:
    """Every rank writes its ZeRO partitions; `latest` names the new tag only once all did;
    then rank 0 removes older tags (optimizer states are 12+ bytes per parameter)."""
    import torch.distributed as dist

    tag = f"step{step}"
    engine.save_checkpoint(str(ckpt), tag=tag, client_state={"step": step, "losses": losses})
    _save_rng(ckpt, dist.get_rank())
    dist.barrier()
    if dist.get_rank() == 0:
        for old in ckpt.glob("step*"):
            if old.name != tag:
                shutil.rmtree(old, ignore_errors=True)


def _load_deepspeed(ckpt: Path, engine) -> tuple[int, list[float]]:
    import torch.distributed as dist

    if not (ckpt / "latest").is_file():
        return 0, []
    _, client = engine.load_checkpoint(str(ckpt))
    _load_rng(ckpt, dist.get_rank())
    return client["step"], client["losses"]


def _steady_rate(tokens: list[float], secs: list[float], warmup: int = 2) -> float:
    """Tokens per second over the steps after the first `warmup` (allocator, compile,
    communicator set-up), or over all of them when there are too few."""
    w = warmup if len(secs) > warmup else 0
    return sum(tokens[w:]) / max(sum(secs[w:]), 1e-9)


def train_here(cfg: StudyConfig, base_model: str, data_dir: Path, out_dir: Path,
               upstream: str, on_loss=None, device: str | None = None) -> dict:
    """The training loop of every strategy, in this process (one rank of `full`)."""
    import torch
    import torch.distributed as dist

    from memlab.io.progress import Progress

    t = cfg.train
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch_dtype(t.precision, device)
    torch.manual_seed(cfg.seed)
    tok = load_tokenizer(base_model)
    model = load_causal_lm(base_model, torch.float32)  # fp32 master weights; bf16 via DS/autocast
    stream = training_stream(read_dataset(data_dir), cfg.seed)
    if not stream:
        raise ValueError("training stream is empty: no members with dup_count > 0")
    steps = count_steps(len(stream), cfg)
    notes: list[str] = []
    ckpt = out_dir / CKPT

    engine, rank, world = None, 0, 1
    if t.strategy == "full":
        import deepspeed
        import deepspeed.ops

        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False  # no op build on CPU
        _init_single_process_group("nccl" if device == "cuda" else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        params = [p for p in model.parameters() if p.requires_grad]
        optim = torch.optim.AdamW(params, lr=t.full.lr, weight_decay=t.weight_decay)
        engine, optim, _, _ = deepspeed.initialize(
            model=model, optimizer=optim, lr_scheduler=lambda opt: _warmup(opt, t.warmup_steps),
            config=deepspeed_config(cfg, world, dtype == torch.bfloat16))
        lr = t.full.lr
    elif t.strategy == "head":
        if untie_head(model):
            notes.append("lm_head was tied to the input embedding: untied (copied) before "
                         "training, so only the head trains and the embedding stays frozen")
            log.warning("head-only: %s", notes[-1])
        for p in model.parameters():
            p.requires_grad_(False)
        model.get_output_embeddings().weight.requires_grad_(True)
        lr = t.head.lr
    else:
        from peft import LoraConfig, get_peft_model

        lcfg = LoraConfig(r=t.lora.r, lora_alpha=t.lora.alpha, lora_dropout=t.lora.dropout,
                          target_modules=list(t.lora.target_modules), task_type="CAUSAL_LM")
        model = get_peft_model(model, lcfg)
        lr = t.lora.lr

    numel = lambda p: getattr(p, "ds_numel", p.numel())  # noqa: E731  (ZeRO-3 partitions)
    trainable = sum(numel(p) for p in model.parameters() if p.requires_grad)
    total = sum(numel(p) for p in model.parameters())
    module = engine.module if engine is not None else model
    if engine is None:
        module.to(device)
        optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                                  weight_decay=t.weight_decay)
        sched = _warmup(optim, t.warmup_steps)
        first, losses = _load_local(ckpt, model, optim, sched)
    else:
        first, losses = _load_deepspeed(ckpt, engine)
    if first:
        log.info("train: resuming from the checkpoint of step %d in %s", first, ckpt)
    module.train()

    start = time.time()
    bar = Progress(steps, f"train {t.strategy}", unit="step")
    bar.update(first)
    batches = _batches(stream, tok, cfg, first, rank, world)
    step_s: list[float] = []  # wall time and real (unpadded) tokens of each step of this run
    step_tokens: list[float] = []
    for step, (ids, mask, labels, empty) in enumerate(batches, start=first):
        if step >= steps:
            break
        t0 = time.perf_counter()
        ids, mask, labels = ids.to(device), mask.to(device), labels.to(device)
        if engine is not None:
            loss = engine(input_ids=ids, attention_mask=mask, labels=labels).loss
            engine.backward(loss * 0 if empty else loss)
            engine.step()
        else:
            with torch.autocast(device, dtype=dtype, enabled=dtype != torch.float32):
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(
                [p for p in model.parameters() if p.requires_grad], 1.0)
            optim.step()
            sched.step()
            optim.zero_grad(set_to_none=True)
        value = loss.detach().float()
        ntok = mask.sum().float() * (not empty)
        if world > 1:  # the loss of the global batch: mean over the ranks that had rows
            both = torch.stack([value * (not empty), torch.ones_like(value) * (not empty), ntok])
            dist.all_reduce(both)
            value, ntok = both[0] / both[1], both[2]
        losses.append(float(value))  # (waits for the step to finish)
        step_s.append(time.perf_counter() - t0)
        step_tokens.append(float(ntok))
        if on_loss is not None:
            on_loss(step, losses[-1])
        bar.update(1, postfix=f"loss {losses[-1]:.3f}")
        if t.checkpoint_every and (step + 1) % t.checkpoint_every == 0 and step + 1 < steps:
            if engine is not None:
                _save_deepspeed(ckpt, engine, step + 1, losses)
            else:
                _save_local(ckpt, model, optim, sched, step + 1, losses)
    train_time = time.time() - start

    model_dir = out_dir / "model"
    if t.strategy == "full":
        saved = "full_model"
        if t.full.zero_stage == 3:
            import deepspeed

            with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None):
                if rank == 0:
                    module.save_pretrained(model_dir)
        elif rank == 0:
            module.save_pretrained(model_dir)
    elif t.strategy == "head":
        saved = "full_model"
        model.save_pretrained(model_dir)
    else:
        saved = "lora_adapter"
        model.save_pretrained(model_dir)

    metrics = {
        "trainable_params": trainable,
        "total_params": total,
        "trainable_frac": trainable / total,
        "train_steps": len(losses),
        "train_sequences": len(losses) * t.batch_size,
        "train_time_s": train_time,
        "train_tokens_per_s": _steady_rate(step_tokens, step_s),
        "final_loss": losses[-1],
        "first_loss": losses[0],
        "lr": lr,
    }
    engine_name = f"deepspeed-zero{t.full.zero_stage}" if t.strategy == "full" else "torch"
    manifest = {"upstream": upstream, "outputs": ["model", "metrics.json"],
                "saved": saved, "base_model": base_model, "strategy": t.strategy,
                "engine": engine_name, "workers": world, "vocab_size": module.config.vocab_size,
                "device": device, "dtype": str(dtype).removeprefix("torch."),
                "resumed_from_step": first, "notes": notes, **metrics}
    if rank == 0:
        tok.save_pretrained(model_dir)
        write_json_atomic({"metrics": metrics, "losses": losses, "notes": notes},
                          out_dir / "metrics.json")
        write_manifest(out_dir, **manifest)
        shutil.rmtree(ckpt, ignore_errors=True)  # the finished stage no longer needs it
    if engine is not None:
        dist.barrier()  # a one-process group stays up: DeepSpeed caches its groups
    return manifest
