"""DP fine-tuning (train.dp) as the config sees it, without torch: the sampling rate of a
trial's Poisson-sampled batches and what `memlab validate` refuses (how Opacus is used, its
accountant and per-sample gradient mode: DP_ACCOUNTANT and DP_GRAD_SAMPLE_MODE in
memlab/config/schema.py, in a DP trial's train key). The training itself:
memlab/components/privacy.py.
"""

from __future__ import annotations

import math

from memlab.config.keys import member_stream, resolved
from memlab.config.schema import StudyConfig


def stream_sequences(cfg: StudyConfig) -> int:
    """Sequences of the training stream, from the config: the members' copies and the
    canaries' repeats (the train stage counts what its dataset holds)."""
    c = cfg.data.canaries
    return member_stream(cfg) + c.count * sum(c.repeats)


def sample_rate(stream: int, batch_size: int) -> float:
    """Each sequence's probability of being in a step's batch: Opacus's DPDataLoader's, 1 / the
    steps of one pass over the stream in batches of train.batch_size (batch_size / stream when
    it divides the stream): in expectation every sequence is trained on once per epoch, as
    memlab's batches without DP train on it, so a member's copies stay what the duplication
    axis says."""
    return 1 / math.ceil(stream / batch_size)


def problems(cfg: StudyConfig) -> list[tuple[str, str]]:
    """(key, why) for each DP combination Opacus cannot serve, before anything runs (a
    strategy refuses what only it knows in its own `check`: full fine-tuning, a model's expert
    layers)."""
    dp, t, s, out = cfg.train.dp, cfg.train, cfg.train.strategy, []
    if not dp.on:
        return out
    if resolved(cfg)["train_engine"] != "torch":
        how = f"set train.{s}.engine=torch (one worker; auto picks torch only on one GPU)" \
            if "engine" in cfg.strategy.auto else "DP needs a strategy that trains in plain torch"
        out.append(("train.dp.epsilon", f"DP trains in plain torch in the trial process "
                    f"(Opacus wraps its model and optimizer); {s} trains through DeepSpeed "
                    f"here ({cfg.strategy.label(cfg) or 'deepspeed'}): {how}"))
    if t.compile == "on":
        out.append(("train.compile", "on with train.dp: Opacus computes per-sample gradients "
                    "in module hooks, which memlab does not run compiled (auto or off)"))
    n = stream_sequences(cfg)
    if n and dp.delta >= 1 / n:
        out.append(("train.dp.delta", f"{dp.delta:g} is not below 1 / the training stream's "
                    f"{n} sequences ({1 / n:.2g}): a mechanism that publishes one sequence "
                    "whole meets that delta"))
    return out
