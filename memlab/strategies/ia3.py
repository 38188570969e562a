"""IA3 (Liu et al. 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than
In-Context Learning"): learned vectors that rescale the keys, values and the MLP's inner
activations (peft's IA3Config). Saved as the adapter; merged into the base weights to
generate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memlab.strategies import adapters
from memlab.strategies.base import Strategy, register, setting


@dataclass
class IA3Settings:
    lr: float = setting(3e-3, "Learning rate of the scaling vectors.", gt=0)
    target_modules: list[str] = setting(
        [], "Modules whose output (or, for feedforward_modules, input) is rescaled; empty: "
        "peft's default for the architecture (Llama: k_proj, v_proj, down_proj).")
    feedforward_modules: list[str] = setting(
        [], "The target modules whose input is rescaled (the MLP's); empty: peft's default.")
    peft: dict[str, Any] = adapters.peft_field()


def kwargs(cfg, model) -> dict:
    s = cfg.train.ia3
    kw = adapters.settings_kwargs(s)
    kw["target_modules"] = list(s.target_modules) or None
    kw["feedforward_modules"] = list(s.feedforward_modules) or None
    return kw


def vectors(cfg, shape) -> float:
    """Keys' and values' outputs and the MLP's inner width, per layer (at most 4 x hidden)."""
    return shape.layers * (2 * shape.kv_dim + 4 * shape.hidden)


STRATEGY = register(Strategy(
    "ia3", IA3Settings, adapters.prepare("IA3Config", kwargs),
    "scaling vectors of keys, values and MLP (IA3, peft)", saved="adapter",
    trainable=vectors, flops=4.0, check=adapters.check("IA3Config", kwargs)))
