"""LoKr (Edalati et al. 2022, "KronA: Parameter Efficient Tuning with Kronecker Adapter"; as in
LyCORIS): each adapted weight's update is a Kronecker product of a small matrix and a
low-rank one (peft's LoKrConfig). Saved as the adapter; merged into the base weights to
generate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memlab.strategies import adapters
from memlab.strategies.base import Strategy, register, setting


@dataclass
class LokrSettings:
    lr: float = setting(5e-4, "Learning rate of the adapters.", gt=0)
    r: int = setting(16, "Rank of the low-rank factor.", ge=1)
    alpha: int = setting(32, "Scaling of the update: alpha / r.", gt=0)
    rank_dropout: float = setting(0.0, "Dropout of each rank during training.", ge=0, lt=1)
    module_dropout: float = setting(0.0, "Dropout of a whole adapted module during training.",
                                    ge=0, lt=1)
    decompose_both: bool = setting(False, "Decompose the small factor too (low rank).")
    decompose_factor: int = setting(-1, "Size of the Kronecker factors (-1: as square as the "
                                        "weight's shape allows).", ge=-1)
    target_modules: list[str] = setting(
        [], "Modules that get adapters; empty: the attention projections of the architecture "
        "(as LoRA's).")
    peft: dict[str, Any] = adapters.peft_field()


def kwargs(cfg, model) -> dict:
    s = cfg.train.lokr
    kw = adapters.settings_kwargs(s)
    kw["target_modules"] = adapters.model_targets(s.target_modules, "attention", model)
    return kw


def adapter_params(cfg, shape) -> float:
    return shape.layers * 4 * cfg.train.lokr.r * 2 * shape.hidden  # (at most LoRA's)


STRATEGY = register(Strategy(
    "lokr", LokrSettings, adapters.prepare("LoKrConfig", kwargs),
    "Kronecker-product updates (LoKr, peft)", saved="adapter",
    trainable=adapter_params, flops=4.0, check=adapters.check("LoKrConfig", kwargs)))
