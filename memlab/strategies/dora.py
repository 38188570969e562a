"""DoRA (Liu et al. 2024, "DoRA: Weight-Decomposed Low-Rank Adaptation"): LoRA's low-rank
update of each adapted weight's direction plus a learned magnitude per output (peft's
LoraConfig with use_dora). Saved as the adapter; merged into the base weights to generate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memlab.strategies import adapters
from memlab.strategies.base import Strategy, register, setting


@dataclass
class DoraSettings:
    lr: float = setting(5e-4, "Learning rate of the adapters and magnitudes.", gt=0)
    r: int = setting(16, "Rank of the low-rank update.", ge=1)
    lora_alpha: int = setting(32, "Scaling of the update: lora_alpha / r.", gt=0)
    lora_dropout: float = setting(0.05, "Dropout on the low-rank path.", ge=0, lt=1)
    target_modules: list[str] = setting(
        [], "Modules that get adapters; empty: the attention projections of the architecture "
        "(as LoRA's, memlab/strategies/adapters.py), peft's default for others.")
    peft: dict[str, Any] = adapters.peft_field()


def kwargs(cfg, model) -> dict:
    s = cfg.train.dora
    kw = adapters.settings_kwargs(s)
    kw["target_modules"] = adapters.model_targets(s.target_modules, "attention", model)
    return {**kw, "use_dora": True}


def adapter_params(cfg, shape) -> float:
    """LoRA's (q, k, v, o, rank r each side) plus a magnitude per output of each."""
    s = cfg.train.dora
    return shape.layers * 4 * (s.r * 2 * shape.hidden + shape.hidden)


STRATEGY = register(Strategy(
    "dora", DoraSettings, adapters.prepare("LoraConfig", kwargs),
    "low-rank direction + magnitude (DoRA, peft)", saved="adapter",
    trainable=adapter_params, flops=4.0, check=adapters.check("LoraConfig", kwargs)))
