"""Prompt tuning (Lester et al. 2021, "The Power of Scale for Parameter-Efficient Prompt
Tuning"): trained embeddings of `num_virtual_tokens` virtual tokens prepended to the input;
the model frozen (peft's PromptTuningConfig). Saved as the adapter. It cannot be merged into
the weights: a trial generates with HF generate through peft (the engine's token ids cannot
hold a soft prompt) on its own actors (a warm pool swaps weights)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from memlab.strategies import adapters
from memlab.strategies.base import Strategy, register, setting


@dataclass
class PromptSettings:
    lr: float = setting(3e-2, "Learning rate of the soft prompt.", gt=0)
    num_virtual_tokens: int = setting(20, "Virtual tokens of the soft prompt.", ge=1)
    prompt_tuning_init: Literal["RANDOM", "TEXT"] = setting(
        "RANDOM", "RANDOM: drawn from the vocabulary's embeddings; TEXT: the embeddings of "
        "prompt_tuning_init_text's tokens.")
    prompt_tuning_init_text: str = setting("", "The text TEXT initialises from.")
    peft: dict[str, Any] = adapters.peft_field()


def kwargs(cfg, model) -> dict:
    s = cfg.train.prompt
    kw = adapters.settings_kwargs(s)
    if s.prompt_tuning_init == "TEXT":  # (its tokens: the base model's tokenizer)
        kw["tokenizer_name_or_path"] = getattr(model, "name_or_path", None) \
            if model is not None else "unknown"
    else:
        kw.pop("prompt_tuning_init_text")
    return kw


def check(cfg) -> list[tuple[str, str]]:
    s = cfg.train.prompt
    out = adapters.check("PromptTuningConfig", kwargs)(cfg)
    if s.prompt_tuning_init == "TEXT" and not s.prompt_tuning_init_text:
        out.append(("train.prompt.prompt_tuning_init_text", "TEXT needs a text to start from"))
    return out


STRATEGY = register(Strategy(
    "prompt", PromptSettings, adapters.prepare("PromptTuningConfig", kwargs),
    "a soft prompt of virtual tokens (prompt tuning, peft)", saved="adapter", merges=False,
    trainable=lambda cfg, shape: cfg.train.prompt.num_virtual_tokens * shape.hidden,
    flops=4.0, check=check))
