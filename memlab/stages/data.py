"""Data stage: the dataset's shards (members, non-members, canaries) from the data section
(memlab/components/data.py builds them), once per data key, shared by every trial of it."""

from __future__ import annotations

import os
from pathlib import Path

from memlab.components.data import build
from memlab.config.digests import content_key
from memlab.config.load import to_dict
from memlab.config.schema import DataSection, StudyConfig
from memlab.stages.work import TrialContext, Work

WORK = Work(
    compute=lambda ctx, folder: build(ctx.cfg.data, folder),
    # a dataset was built from its key (as before the runner: finished datasets stay valid)
    upstream=lambda ctx: ctx.keys["data"],
)


def build_dataset(data: DataSection, out_dir: str | os.PathLike,
                  key: str | None = None) -> dict:
    """The data stage of one data section into `out_dir` (a process building the same `key`
    is waited for); `key`: its data key (default: a hash of the section). Its manifest."""
    from memlab.stages.runner import run_work

    key = key or content_key(to_dict(data))
    ctx = TrialContext(StudyConfig(data=data), {"data": Path(out_dir)}, keys={"data": key})
    return run_work(WORK, "data", ctx, Path(out_dir), key).manifest
