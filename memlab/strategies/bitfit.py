"""BitFit (Ben Zaken et al. 2022, "BitFit: Simple Parameter-efficient Fine-tuning for
Transformer-based Masked Language-models"): only the bias terms train. GPT-2 has them;
Llama-family models (SmolLM2 among them) have none unless their config adds attention or MLP
biases: `memlab validate` says so in one line where it can tell from the model's config."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from memlab.strategies.base import Prepared, Strategy, register, setting


@dataclass
class BitfitSettings:
    lr: float = setting(1e-3, "Learning rate of the biases.", gt=0)


def has_biases(cfg) -> bool | None:
    """Whether the base model has bias parameters, from its config without loading it (None:
    it cannot be told offline, e.g. a hub id)."""
    m = cfg.model
    if m.source == "tiny":
        return m.tiny.family == "gpt2"
    if m.source in ("smollm2", "gguf"):  # (GGUF: llama.cpp's Llama-family models)
        return False if m.source == "smollm2" else None
    conf = Path(os.path.expanduser(m.name or "")) / "config.json"
    if not conf.is_file():
        return None
    c = json.loads(conf.read_text())
    if c.get("model_type") in ("gpt2", "gpt_neox", "qwen2"):
        return True
    return bool(c.get("attention_bias") or c.get("mlp_bias"))


def check(cfg) -> list[tuple[str, str]]:
    if has_biases(cfg) is False:
        return [("train.strategy", "bitfit trains only bias terms, and this model has none "
                 "(Llama-family models such as SmolLM2 have no biases; GPT-2 has)")]
    return []


def prepare(model, cfg) -> Prepared:
    names = []
    for name, p in model.named_parameters():
        p.requires_grad_(name.endswith(".bias"))
        if p.requires_grad:
            names.append(name)
    if not names:
        raise ValueError("bitfit: the model has no bias parameters")
    return Prepared(model, record={"bias_tensors": len(names)})


def biases(cfg, shape) -> float:
    """About 9 bias vectors of the hidden width per layer (GPT-2: qkv, out, fc, proj, norms)."""
    return shape.layers * 9 * shape.hidden


STRATEGY = register(Strategy(
    "bitfit", BitfitSettings, prepare, "the bias terms (BitFit)", check=check,
    trainable=biases, flops=4.0))
