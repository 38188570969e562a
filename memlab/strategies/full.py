"""Full fine-tuning: every weight trains.

Through a DeepSpeed ZeRO engine (the stage from config; Ray Train workers in a sweep, one
ZeRO group across them), or, for a trial on one GPU, in plain torch (fp32 master weights, bf16
autocast, fused AdamW): ZeRO has nothing to shard there and its engine's per-step work costs
more than a small model's step (`train.full.engine`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from memlab.strategies.base import (
    Prepared,
    Strategy,
    activations,
    logits,
    register,
    resources,
    setting,
)


@dataclass
class FullSettings:
    lr: float = setting(5e-5, "Learning rate of full fine-tuning.", gt=0)
    zero_stage: int = setting(2, "DeepSpeed ZeRO stage: 0-3 (2 shards optimizer states and "
                              "gradients over the workers, 3 the weights too).", ge=0, le=3)
    engine: Literal["auto", "deepspeed", "torch"] = setting(
        "auto", "What runs full fine-tuning. deepspeed: a DeepSpeed ZeRO engine (Ray Train "
        "workers in a sweep); torch: plain PyTorch in the trial process (fp32 master weights, "
        "bf16 autocast, fused AdamW on GPU), one worker only; auto: torch for a trial on one "
        "GPU (resources.full.workers = 1, resources.full.gpu > 0), where ZeRO has nothing to "
        "shard and its engine's per-step work costs more than the step; deepspeed otherwise.")


def engine(cfg) -> str:
    """deepspeed or torch: train.full.engine, auto resolved for the trial's resources."""
    res, chosen = resources(cfg), cfg.train.full.engine
    if chosen != "auto":
        return chosen
    return "torch" if res.workers == 1 and res.gpu > 0 else "deepspeed"


def prepare(model, cfg) -> Prepared:
    return Prepared(model)  # every parameter trains (as loaded)


def check(cfg) -> list[tuple[str, str]]:
    res, t = resources(cfg), cfg.train
    out = []
    if res.workers > 0 and t.batch_size % res.workers:
        out.append(("train.batch_size", f"{t.batch_size} sequences per step do not split "
                    f"evenly over resources.full.workers={res.workers}"))
    if t.full.engine == "torch" and res.workers > 1:
        out.append(("train.full.engine", "torch trains in the trial process, on one GPU: "
                    f"resources.full.workers={res.workers} needs deepspeed (or auto)"))
    if t.dp.on and (n := experts(cfg.model)):
        out.append(("train.dp.epsilon", f"full fine-tuning of a mixture-of-experts model ({n} "
                    "experts per layer) under DP: Opacus computes no per-sample gradient of an "
                    "expert layer (its router sends tokens of several sequences through one "
                    "call; a tiny Mixtral fails); LoRA on its attention trains under DP"))
    return out


EXPERTS = ("num_local_experts", "num_experts", "n_routed_experts")  # MoE keys of config.json


def experts(m) -> int:
    """Experts per layer of a mixture-of-experts base model (model section `m`) whose config
    is known offline, a local HF folder's config.json; 0: a dense model, or not known (a hub
    id: under DP, training then fails at its first step)."""
    conf = Path(m.name or "").expanduser() / "config.json"
    if m.source != "hf" or not m.name or not conf.is_file():
        return 0
    c = json.loads(conf.read_text())
    return max(int(c.get(k) or 0) for k in EXPERTS)


def memory(cfg, shape, rows: int, workers: int) -> float:
    """Plain torch on one GPU: 4P fp32 weights + 4P grads + 8P Adam + the 2P bf16 copies
    autocast keeps for the backward pass. DeepSpeed ZeRO over `workers` GPUs (bf16 weights,
    mixed-precision AdamW): 2P weights + 2P grads + 12P fp32 master/Adam, the optimizer states
    sharded by stage >= 1, gradients by stage >= 2, weights by stage 3. Plus activations and
    logits."""
    p, body = shape.params, activations(cfg, shape, rows) + logits(cfg, shape, rows)
    if engine(cfg) == "torch":
        return 18 * p + body
    z, w = cfg.train.full.zero_stage, max(1, workers)
    return 2 * p / (w if z >= 3 else 1) + 2 * p / (w if z >= 2 else 1) + 12 * p / w + body


def label(cfg) -> str:
    if engine(cfg) == "torch":
        return "torch x1"
    return f"ZeRO-{cfg.train.full.zero_stage} x{resources(cfg).workers}"


STRATEGY = register(Strategy(
    "full", FullSettings, prepare, "every weight", engine=engine, first_engine="deepspeed",
    workers=True, check=check, memory=memory, trainable=lambda cfg, shape: shape.params,
    flops=6.0, label=label, auto=("engine",),
    fix="train.full.zero_stage=3 with more resources.full.workers"))
