"""LoHa (Hyeon-Woo et al. 2022, "FedPara: Low-Rank Hadamard Product for Communication-Efficient
Federated Learning"): each adapted weight's update is the Hadamard product of two low-rank
products (peft's LoHaConfig). Saved as the adapter; merged into the base weights to generate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memlab.strategies import adapters
from memlab.strategies.base import Strategy, register, setting


@dataclass
class LohaSettings:
    lr: float = setting(5e-4, "Learning rate of the adapters.", gt=0)
    r: int = setting(16, "Rank of each of the two low-rank products.", ge=1)
    alpha: int = setting(32, "Scaling of the update: alpha / r.", gt=0)
    rank_dropout: float = setting(0.0, "Dropout of each rank during training.", ge=0, lt=1)
    module_dropout: float = setting(0.0, "Dropout of a whole adapted module during training.",
                                    ge=0, lt=1)
    target_modules: list[str] = setting(
        [], "Modules that get adapters; empty: the attention projections of the architecture "
        "(as LoRA's).")
    peft: dict[str, Any] = adapters.peft_field()


def kwargs(cfg, model) -> dict:
    s = cfg.train.loha
    kw = adapters.settings_kwargs(s)
    kw["target_modules"] = adapters.model_targets(s.target_modules, "attention", model)
    return kw


def adapter_params(cfg, shape) -> float:
    return shape.layers * 4 * 2 * cfg.train.loha.r * 2 * shape.hidden  # (two products)


STRATEGY = register(Strategy(
    "loha", LohaSettings, adapters.prepare("LoHaConfig", kwargs),
    "Hadamard product of low-rank updates (LoHa, peft)", saved="adapter",
    trainable=adapter_params, flops=4.0, check=adapters.check("LoHaConfig", kwargs)))
