"""VeRA (Kopiczko et al. 2024, "VeRA: Vector-based Random Matrix Adaptation"): one pair of
frozen random low-rank matrices shared by every adapted layer, and per layer two trained
scaling vectors (peft's VeraConfig). Saved as the adapter (with the random projections, so a
reload needs no seed); merged into the base weights to generate."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from memlab.strategies import adapters
from memlab.strategies.base import Strategy, register, setting


@dataclass
class VeraSettings:
    lr: float = setting(5e-3, "Learning rate of the scaling vectors.", gt=0)
    r: int = setting(256, "Rank of the shared random matrices.", ge=1)
    vera_dropout: float = setting(0.0, "Dropout on the VeRA path.", ge=0, lt=1)
    d_initial: float = setting(0.1, "Initial value of the trained vector d.", gt=-math.inf)
    projection_prng_key: int = setting(0, "Seed of the shared random matrices.", ge=0)
    target_modules: list[str] = setting(
        [], "Modules that get adapters; empty: the attention projections of the architecture "
        "(as LoRA's).")
    peft: dict[str, Any] = adapters.peft_field()


def kwargs(cfg, model) -> dict:
    s = cfg.train.vera
    kw = adapters.settings_kwargs(s)
    kw["target_modules"] = adapters.model_targets(s.target_modules, "attention", model)
    return {**kw, "save_projection": True}


def vectors(cfg, shape) -> float:
    """Per adapted layer: d (r) and b (the output width): 4 projections a layer."""
    return shape.layers * 4 * (cfg.train.vera.r + shape.hidden)


STRATEGY = register(Strategy(
    "vera", VeraSettings, adapters.prepare("VeraConfig", kwargs),
    "scaling vectors of shared random projections (VeRA, peft)", saved="adapter",
    trainable=vectors, flops=4.0, check=adapters.check("VeraConfig", kwargs)))
