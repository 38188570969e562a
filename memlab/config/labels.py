"""How a trial's model and duplication are named in tables, plans and run names."""

from __future__ import annotations

import os

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
