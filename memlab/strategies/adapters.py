"""What the peft methods (LoRA, DoRA, IA3, LoHa, LoKr, VeRA, prefix and prompt tuning) share:
peft's own config class builds the adapters, from the strategy's settings (peft's field names)
plus `peft`, a mapping of any other field of that class, checked against the class at validate
time; per-architecture default target modules; one `prepare` and one validate-time check.

The settings are peft's, not a copy of them: each unit declares the fields a study usually
sets (typed, ranged, documented) and passes them to the class under the same names; whatever
else the class takes goes through `peft:`. peft is imported only where a trial of a peft method
is checked or trained (validate and plan of other studies stay free of torch).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from memlab.strategies.base import Prepared, setting

# the attention projections, by model type (names match as peft does: the module's name or
# its last dotted parts). GPT-2's `c_proj` exists in attention and MLP: `attn.c_proj` is the
# attention's.
_QKVO = ["q_proj", "k_proj", "v_proj", "o_proj"]
_LLAMA_TYPES = ("llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2")
ATTENTION = {
    **dict.fromkeys(_LLAMA_TYPES, _QKVO),
    "gpt2": ["attn.c_attn", "attn.c_proj"],
    "gpt_neox": ["query_key_value", "attention.dense"],
}
# target groups of the LoRA design space (train.lora.targets), by model type
GROUPS = {
    "attention": ATTENTION,
    "attention_qk": {**dict.fromkeys(_LLAMA_TYPES, ["q_proj", "k_proj"])},
    "attention_vo": {**dict.fromkeys(_LLAMA_TYPES, ["v_proj", "o_proj"])},
    "mlp": {**dict.fromkeys(_LLAMA_TYPES, ["gate_proj", "up_proj", "down_proj"]),
            "gpt2": ["mlp.c_fc", "mlp.c_proj"]},
}
ALL_LINEAR = "all-linear"  # (peft's own: every linear layer but the output head)

# fields of a peft config that memlab sets itself (never a study's: they would break what a
# trial means or how it is saved)
RESERVED = ("task_type", "peft_type", "auto_mapping", "peft_version", "base_model_name_or_path",
            "revision", "inference_mode")


def peft_field(help: str = "Any other field of the method's peft config class, by its peft "
               "name (e.g. {use_rslora: true}), checked against the class at validate time."):
    """The `peft` field of a peft method's settings."""
    return setting({}, help)


def targets(configured: list[str], group: str, model_type: str) -> list[str] | str | None:
    """The modules that get adapters: the configured ones, else the group's for the
    architecture (`all_linear`: peft's all-linear), else None (peft's own default for it)."""
    if configured:
        return list(configured)
    if group == "all_linear":
        return ALL_LINEAR
    return GROUPS[group].get(model_type)


def model_targets(configured: list[str], group: str, model) -> list[str] | str | None:
    """`targets` for a loaded model (None: no model yet, at validate time: the configured
    ones or peft's default)."""
    if model is None:
        return list(configured) or None
    return targets(configured, group, model.config.model_type)


def settings_kwargs(section, skip: tuple[str, ...] = ("lr", "peft")) -> dict[str, Any]:
    """A section's fields as peft keyword arguments (its peft names), then its `peft` mapping."""
    own = {f.name: getattr(section, f.name) for f in dataclasses.fields(section)
           if f.name not in skip}
    return {**own, **dict(section.peft)}


def config_problems(cls_name: str, section, key: str, kwargs: dict) -> list[tuple[str, str]]:
    """Why peft's `cls_name` would refuse these settings ([] when it takes them): an unknown
    or reserved field of `peft:` (naming the class's fields), or what the class itself says."""
    import peft

    cls = getattr(peft, cls_name)
    names = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in RESERVED]
    bad = [k for k in section.peft if k not in names]
    if bad:
        return [(f"{key}.peft.{bad[0]}", f"not a field of peft's {cls_name} (its fields: "
                 f"{', '.join(sorted(names))})")]
    try:
        cls(task_type="CAUSAL_LM", **kwargs)
    except (TypeError, ValueError) as e:
        return [(key, f"peft's {cls_name} refuses these settings: "
                      f"{str(e).splitlines()[0] if str(e) else type(e).__name__}")]
    return []


def check(cls_name: str, kwargs_of: Callable[[Any, Any], dict]) -> Callable:
    """A strategy's check: with fields in `peft:`, its settings through peft's class (the typed
    fields are checked by their ranges; peft, and torch with it, is imported only then)."""
    def problems(cfg) -> list[tuple[str, str]]:
        section = getattr(cfg.train, cfg.train.strategy)
        if not section.peft:
            return []
        return config_problems(cls_name, section, f"train.{cfg.train.strategy}",
                               kwargs_of(cfg, None))
    return problems


def prepare(cls_name: str, kwargs_of: Callable[[Any, Any], dict],
            record_as: str = "targets") -> Callable:
    """A strategy's prepare: peft's adapters of `cls_name` over the model (the base frozen);
    its record: the target modules peft chose (under `record_as`)."""
    def prep(model, cfg) -> Prepared:
        import peft

        config = getattr(peft, cls_name)(task_type="CAUSAL_LM",
                                         **kwargs_of(cfg, model))
        model = peft.get_peft_model(model, config)
        targets_ = getattr(model.peft_config["default"], "target_modules", None)
        record = {}
        if targets_ is not None:
            record[record_as] = sorted(targets_) if not isinstance(targets_, str) \
                else [targets_]
        return Prepared(model, record=record)
    return prep
