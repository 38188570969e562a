"""How a trial's model and duplication are named in tables, plans and run names."""

from __future__ import annotations

import os
import re

from memlab.config.schema import StudyConfig


def model_label(cfg: StudyConfig) -> str:
    """model.scale if set; else a short name: the hub id, or the file or folder name of a
    local model (not its whole path)."""
    m = cfg.model
    if m.scale:
        return m.scale
    if m.source == "smollm2":
        return "SmolLM2-135M"
    if m.source == "tiny":
        return f"tiny-{m.tiny.family}-{m.tiny.hidden}x{m.tiny.layers}"
    name = str(m.name)
    if m.source == "gguf":
        return os.path.splitext(os.path.basename(name))[0]
    if name.startswith((".", "/", "~")):  # a local checkpoint folder
        return os.path.basename(os.path.normpath(os.path.expanduser(name)))
    return name


def dup_label(cfg: StudyConfig) -> str:
    """The copies of a member in the training stream, per duplication subset: '2/8/32'."""
    d = cfg.data
    return "/".join(str(k * d.dup_factor) for k in d.dup_mix)


def trial_label(cfg: StudyConfig) -> str:
    """`lora-SmolLM2-135M-x4-s0`: strategy, model, the copies of a member in the training
    stream and seed, as a person reads a trial in the MLflow runs list and in printed lines
    (also a folder name: Ray Tune names the trial's folder by it). The copies are those of
    each duplication subset (`x2-8-32` for data.dup_mix [1, 4, 16] at dup_factor 2): naming
    dup_factor alone said `x1` of a study whose members are trained 2, 8 and 32 times. With
    dup_mix [1] they are dup_factor, so names of plain dup_factor studies (and their MLflow
    run names) stay what they were."""
    model = re.sub(r"[^A-Za-z0-9._-]+", "_", model_label(cfg).rsplit("/", 1)[-1]) or "model"
    return f"{cfg.train.strategy}-{model}-x{dup_label(cfg).replace('/', '-')}-s{cfg.seed}"
