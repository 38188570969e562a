"""Train stage: fine-tune the base model on the duplicated member stream, one of three ways.

- full: every weight trains, through a DeepSpeed engine (ZeRO stage from config; gloo on CPU,
  NCCL + bf16 on GPU); a torch AdamW is passed in so no DeepSpeed op needs compiling.
- head: only the output head trains (untied from the input embedding first when tied).
- lora: peft adapters on the configured modules.

All three see the same sequences in the same order for the same number of steps. Writes
`train/model/` (full weights, or the LoRA adapter), `train/metrics.json` and, last, the manifest.
"""

from __future__ import annotations

import logging
import math
import os
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


def _batches(stream: list[dict], tok, cfg: StudyConfig):
    """Yield (input_ids, attention_mask, labels) tensors, right-padded, one per step."""
    import torch

    t = cfg.train
    cache: dict[str, list[int]] = {}
    steps_per_epoch = math.ceil(len(stream) / t.batch_size)
    for _ in range(t.epochs):
        for s in range(steps_per_epoch):
            rows = stream[s * t.batch_size:(s + 1) * t.batch_size]
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
            yield ids, mask, labels


def _warmup(optim, steps: int):
    """Linear warm-up over `steps` optimizer steps, then constant (same for all strategies)."""
    import torch

    return torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: min(1.0, (s + 1) / steps) if steps else 1.0)


def count_steps(stream_len: int, cfg: StudyConfig) -> int:
    steps = math.ceil(stream_len / cfg.train.batch_size) * cfg.train.epochs
    return min(steps, cfg.train.max_steps) if cfg.train.max_steps else steps


def run_train(cfg: StudyConfig, base_model: str, data_dir: Path, out_dir: Path,
              on_loss=None) -> dict:
    """Fine-tune and save. Returns the train manifest (skips work if it already exists).

    `on_loss(step, loss)` is called after every optimizer step (e.g. to log to MLflow).
    """
    upstream = content_key({"data": manifest_digest(data_dir), "base_model": base_model})
    done = begin_stage(out_dir, upstream)
    if done is not None:
        log.info("train: already finished in %s", out_dir)
        return done
    import torch

    from memlab.io.progress import Progress

    t = cfg.train
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch_dtype(t.precision, device)
    torch.manual_seed(cfg.seed)
    tok = load_tokenizer(base_model)
    model = load_causal_lm(base_model, torch.float32)  # fp32 master weights; bf16 via DS/autocast
    stream = training_stream(read_dataset(data_dir), cfg.seed)
    if not stream:
        raise ValueError("training stream is empty: no members with dup_count > 0")
    steps = count_steps(len(stream), cfg)
    notes: list[str] = []

    engine = None
    if t.strategy == "full":
        import deepspeed
        import deepspeed.ops

        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False  # no op build on CPU
        _init_single_process_group("nccl" if device == "cuda" else "gloo")
        params = [p for p in model.parameters() if p.requires_grad]
        optim = torch.optim.AdamW(params, lr=t.full.lr, weight_decay=t.weight_decay)
        world = torch.distributed.get_world_size()
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
    module.train()

    losses: list[float] = []
    start = time.time()
    bar = Progress(steps, f"train {t.strategy}", unit="step")
    for step, (ids, mask, labels) in enumerate(_batches(stream, tok, cfg)):
        if step >= steps:
            break
        ids, mask, labels = ids.to(device), mask.to(device), labels.to(device)
        if engine is not None:
            loss = engine(input_ids=ids, attention_mask=mask, labels=labels).loss
            engine.backward(loss)
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
        losses.append(float(loss.detach()))
        if on_loss is not None:
            on_loss(step, losses[-1])
        bar.update(1, postfix=f"loss {losses[-1]:.3f}")
    train_time = time.time() - start

    model_dir = out_dir / "model"
    if t.strategy == "full":
        saved = "full_model"
        if t.full.zero_stage == 3:
            import deepspeed

            with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None):
                if torch.distributed.get_rank() == 0:
                    module.save_pretrained(model_dir)
        elif torch.distributed.get_rank() == 0:
            module.save_pretrained(model_dir)
        torch.distributed.destroy_process_group()
    elif t.strategy == "head":
        saved = "full_model"
        model.save_pretrained(model_dir)
    else:
        saved = "lora_adapter"
        model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)

    metrics = {
        "trainable_params": trainable,
        "total_params": total,
        "trainable_frac": trainable / total,
        "train_steps": len(losses),
        "train_sequences": len(losses) * t.batch_size,
        "train_time_s": train_time,
        "final_loss": losses[-1],
        "first_loss": losses[0],
        "lr": lr,
    }
    write_json_atomic({"metrics": metrics, "losses": losses, "notes": notes},
                      out_dir / "metrics.json")
    engine_name = f"deepspeed-zero{t.full.zero_stage}" if t.strategy == "full" else "torch"
    manifest = {"upstream": upstream, "outputs": ["model", "metrics.json"],
                "saved": saved, "base_model": base_model, "strategy": t.strategy,
                "engine": engine_name, "vocab_size": module.config.vocab_size,
                "device": device, "dtype": str(dtype).removeprefix("torch."),
                "notes": notes, **metrics}
    write_manifest(out_dir, **manifest)
    return manifest
