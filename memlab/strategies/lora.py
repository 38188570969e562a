"""LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"): peft adapters
on the configured modules; the base model frozen. Saved as the adapter; merged into the base
weights to generate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from memlab.strategies.base import Strategy, frozen_body, register, setting


@dataclass
class LoraSettings:
    lr: float = setting(5e-4, "Learning rate of the adapters.", gt=0)
    r: int = setting(16, "LoRA rank.", ge=1)
    alpha: int = setting(32, "LoRA alpha (scaling = alpha / r).", gt=0)
    dropout: float = setting(0.05, "Dropout on the LoRA path.", ge=0, lt=1)
    target_modules: list[str] = setting(
        [], "Module names (or name suffixes) that get adapters; empty: every attention "
        "projection of the architecture (TARGETS in memlab/strategies/lora.py: q/k/v/o_proj "
        "for Llama, Mistral, Qwen, Gemma; attn.c_attn and attn.c_proj for GPT-2; "
        "query_key_value and attention.dense for GPT-NeoX), peft's default for others.")
    bias: Literal["none", "all", "lora_only"] = setting(
        "none", "Which biases train with the adapters (peft's LoraConfig.bias).")
    modules_to_save: list[str] = setting(
        [], "Modules trained in full and saved with the adapter (e.g. lm_head).")


# The attention projections LoRA adapts when train.lora.target_modules is empty, by model type
# (names match as peft does: the module's name or its last dotted parts). GPT-2's `c_proj`
# exists in attention and MLP: `attn.c_proj` is the attention's.
_QKVO = ["q_proj", "k_proj", "v_proj", "o_proj"]
TARGETS = {
    **dict.fromkeys(("llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2"), _QKVO),
    "gpt2": ["attn.c_attn", "attn.c_proj"],
    "gpt_neox": ["query_key_value", "attention.dense"],
}


def lora_targets(cfg, model_type: str) -> list[str] | None:
    """The configured targets, else the architecture's attention projections, else None
    (peft's own default for the architecture)."""
    return list(cfg.train.lora.target_modules) or TARGETS.get(model_type)


def prepare(model, cfg):
    from peft import LoraConfig, get_peft_model

    from memlab.strategies.base import Prepared

    lo = cfg.train.lora
    model = get_peft_model(model, LoraConfig(
        r=lo.r, lora_alpha=lo.alpha, lora_dropout=lo.dropout, bias=lo.bias,
        target_modules=lora_targets(cfg, model.config.model_type),
        modules_to_save=list(lo.modules_to_save) or None, task_type="CAUSAL_LM"))
    targets = model.peft_config["default"].target_modules
    return Prepared(model, record={"lora_targets": sorted(targets)
                                   if not isinstance(targets, str) else [targets]})


def adapters(cfg, shape) -> float:
    """Adapter parameters at most: q, k, v and o of every layer, rank r each side."""
    return shape.layers * 4 * cfg.train.lora.r * 2 * shape.hidden


STRATEGY = register(Strategy("lora", LoraSettings, prepare, "low-rank adapters (peft)",
                             saved="adapter", memory=frozen_body(adapters), flops=4.0,
                             trainable=adapters))
