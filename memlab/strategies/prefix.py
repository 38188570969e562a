"""Prefix tuning (Li & Liang 2021, "Prefix-Tuning: Optimizing Continuous Prompts for
Generation"): trained key and value vectors of `num_virtual_tokens` virtual tokens prepended
at every layer; the model frozen (peft's PrefixTuningConfig). Saved as the adapter. It cannot
be merged into the weights: a trial generates with HF generate through peft (the engine's
static cache holds no prefix) on its own actors (a warm pool swaps weights)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memlab.strategies import adapters
from memlab.strategies.base import Strategy, register, setting


@dataclass
class PrefixSettings:
    lr: float = setting(1e-2, "Learning rate of the prefix.", gt=0)
    num_virtual_tokens: int = setting(20, "Virtual tokens of the prefix, at every layer.", ge=1)
    prefix_projection: bool = setting(False, "Train the prefix through a two-layer MLP (the "
                                             "paper's reparametrisation) instead of directly.")
    encoder_hidden_size: int = setting(512, "Hidden size of that MLP (prefix_projection).",
                                       ge=1)
    peft: dict[str, Any] = adapters.peft_field()


def kwargs(cfg, model) -> dict:
    return adapters.settings_kwargs(cfg.train.prefix)


def prefix_params(cfg, shape) -> float:
    """A key and a value vector per virtual token per layer (without the projection)."""
    return cfg.train.prefix.num_virtual_tokens * shape.layers * 2 * shape.kv_dim


STRATEGY = register(Strategy(
    "prefix", PrefixSettings, adapters.prepare("PrefixTuningConfig", kwargs),
    "key / value prefixes at every layer (prefix tuning, peft)", saved="adapter",
    merges=False, trainable=prefix_params, flops=4.0,
    check=adapters.check("PrefixTuningConfig", kwargs)))
