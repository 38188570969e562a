"""Head-only fine-tuning: only the output head trains (untied from the input embedding first
when the model ties them, so that the embedding stays frozen)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from memlab.strategies.base import Prepared, Strategy, logits, register, setting

log = logging.getLogger(__name__)


@dataclass
class HeadSettings:
    lr: float = setting(1e-3, "Learning rate of the output head.", gt=0)


def untie_head(model) -> bool:
    """Give the output head its own weights if it shares them with the input embedding."""
    import torch

    head = model.get_output_embeddings()
    emb = model.get_input_embeddings()
    if head is None or head.weight.data_ptr() != emb.weight.data_ptr():
        return False
    head.weight = torch.nn.Parameter(emb.weight.detach().clone())
    model.config.tie_word_embeddings = False
    if hasattr(model.config, "get_text_config"):
        model.config.get_text_config().tie_word_embeddings = False
    return True


def prepare(model, cfg) -> Prepared:
    notes = []
    untied = untie_head(model)
    if untied:
        notes.append("lm_head was tied to the input embedding: untied (copied) before "
                     "training, so only the head trains and the embedding stays frozen")
        log.warning("head-only: %s", notes[-1])
    for p in model.parameters():
        p.requires_grad_(False)
    model.get_output_embeddings().weight.requires_grad_(True)
    return Prepared(model, notes, {"head_untied": untied})


def trainable(cfg, shape) -> float:
    """The head: vocabulary x hidden."""
    return shape.vocab * shape.hidden


def memory(cfg, shape, rows: int, workers: int) -> float:
    """4P fp32 weights + 16 bytes per head parameter (its untied copy, grads, Adam) + the
    logits (nothing back-propagates through the body)."""
    return 4 * shape.params + 16 * trainable(cfg, shape) + logits(cfg, shape, rows)


STRATEGY = register(Strategy("head", HeadSettings, prepare, "the output head",
                             memory=memory, flops=2.0, trainable=trainable))
