"""LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"): peft adapters
on the configured modules; the base model frozen. Saved as the adapter; merged into the base
weights to generate.

Its settings keep the names memlab gave them first (`alpha`, `dropout`: peft's `lora_alpha`,
`lora_dropout`), so that LoRA trials keep their keys; any other LoraConfig field goes through
`peft:` under peft's name, and `targets` names a group of modules (the LoRA design space)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from memlab.strategies import adapters
from memlab.strategies.base import Strategy, register, setting

Group = Literal["attention", "attention_qk", "attention_vo", "mlp", "all_linear"]


@dataclass
class LoraSettings:
    lr: float = setting(5e-4, "Learning rate of the adapters.", gt=0)
    r: int = setting(16, "LoRA rank (peft's r).", ge=1)
    alpha: int = setting(32, "LoRA alpha (scaling = alpha / r; peft's lora_alpha).", gt=0)
    dropout: float = setting(0.05, "Dropout on the LoRA path (peft's lora_dropout).", ge=0,
                             lt=1)
    target_modules: list[str] = setting(
        [], "Module names (or name suffixes) that get adapters; empty: those of `targets` for "
        "the architecture (memlab/strategies/adapters.py: q/k/v/o_proj for Llama, Mistral, "
        "Qwen, Gemma; attn.c_attn and attn.c_proj for GPT-2; query_key_value and "
        "attention.dense for GPT-NeoX), peft's default for others.")
    targets: Group = setting(
        "attention", "The group of modules that get adapters when target_modules is empty: "
        "attention (q, k, v, o), attention_qk, attention_vo, mlp (gate, up, down), all_linear "
        "(every linear layer but the output head: peft's all-linear).")
    bias: Literal["none", "all", "lora_only"] = setting(
        "none", "Which biases train with the adapters (peft's LoraConfig.bias).")
    modules_to_save: list[str] = setting(
        [], "Modules trained in full and saved with the adapter (e.g. lm_head).")
    peft: dict[str, Any] = adapters.peft_field()


def lora_targets(cfg, model_type: str) -> list[str] | str | None:
    """The configured targets, else the group's for the architecture, else None (peft's own
    default for the architecture)."""
    lo = cfg.train.lora
    return adapters.targets(lo.target_modules, lo.targets, model_type)


def kwargs(cfg, model) -> dict:
    lo = cfg.train.lora
    return {"r": lo.r, "lora_alpha": lo.alpha, "lora_dropout": lo.dropout, "bias": lo.bias,
            "target_modules": adapters.model_targets(lo.target_modules, lo.targets, model),
            "modules_to_save": list(lo.modules_to_save) or None, **dict(lo.peft)}


def adapter_params(cfg, shape) -> float:
    """Adapter parameters at most: q, k, v and o of every layer, rank r each side (the MLP
    groups: three matrices of the intermediate size, counted as 4 x hidden)."""
    lo = cfg.train.lora
    per_layer = {"attention": 4, "attention_qk": 2, "attention_vo": 2, "mlp": 3,
                 "all_linear": 7}[lo.targets]
    return shape.layers * per_layer * lo.r * 2 * shape.hidden * (2 if lo.targets == "mlp"
                                                                  else 1)


STRATEGY = register(Strategy(
    "lora", LoraSettings, adapters.prepare("LoraConfig", kwargs, "lora_targets"),
    "low-rank adapters (peft)", saved="adapter", trainable=adapter_params, flops=4.0,
    check=adapters.check("LoraConfig", kwargs),
    since={"targets": "attention", "peft": {}}))
