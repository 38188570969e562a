"""What the runner runs: each stage module's `WORK`, and the trial context stages run in.

A stage of the chain (memlab/config/chain.py) is computed by the module its declaration names,
which holds one `Work`: what the stage computes into its folder, and what it was built from
beyond the finished stages it reads. A stage computed shard by shard (generate, base, score)
declares `Shards` instead of a `compute`: what each shard call gets (`args`), what an actor
loads once (`load`), one shard's work (`run`) and, for the stages that run a model, which
weights that model must hold (`weights`). The runner (runner.py) puts every stage through the
same steps: claim the folder, reuse or repair what is done, compute (on the trial's own actors
or on the sweep's warm pool), write the manifest last.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memlab.config.chain import CHAIN, CHECKPOINTS_FROM, LINKS, STAGES
from memlab.config.digests import content_key
from memlab.config.keys import StageKeys, checkpoint_keys
from memlab.config.schema import StudyConfig
from memlab.io.paths import checkpoint_dir, stage_dir
from memlab.io.shards import manifest_digest

BASE_WEIGHTS = None  # Shards.weights: the base model's own weights


@dataclass
class TrialContext:
    """What the stages of one trial run with."""

    cfg: StudyConfig
    dirs: dict[str, Path]  # stage name -> its folder
    base_model: str | None = None  # a local folder (or a hub id); None before it is prepared
    keys: dict[str, str] = field(default_factory=dict)  # stage -> its key (those known)
    threads: int = 1  # torch threads of this process (and of each actor it starts)
    warm: Any = None  # the sweep's warm pool (memlab/stages/warm.py); None: actors of its own
    on_loss: Callable[[int, float], None] | None = None  # training loss, as it comes
    ray_workers: bool = False  # DeepSpeed training as Ray Train workers (what a sweep does)

    @classmethod
    def of(cls, cfg: StudyConfig, keys: StageKeys, **kw) -> TrialContext:
        """A trial's context: each stage's folder named by its key."""
        known = keys.named()
        return cls(cfg, {s: stage_dir(cfg, s, known[s]) for s in STAGES if s in known},
                   keys={**known, "trial": keys.trial}, **kw)

    @property
    def key(self) -> str:
        """The trial's key (StageKeys.trial; every score row carries it)."""
        return self.keys.get("trial", "")

    def dir(self, stage: str) -> Path:
        return Path(self.dirs[stage])

    def has(self, stage: str) -> bool:
        """Whether the trial has this stage (memlab/config/chain.py's `when`)."""
        return LINKS[stage].when(self.cfg)

    def at(self, step: int) -> TrialContext:
        """The context of the trial's evaluation point after `step` optimizer steps
        (memlab/config/chain.py): its own stages' keys and folders (keys.checkpoint_keys),
        the checkpoint's export (at/<step>/ of the train folder) where the train folder was."""
        keys = checkpoint_keys(StageKeys.of({s: self.keys[s] for s in STAGES
                                             if s in self.keys}), step)
        named = keys.named()  # (an opt-in stage the trial lacks has no key)
        own = {link.name: stage_dir(self.cfg, link.name, named[link.name])
               for link in CHAIN if link.per_checkpoint and link.name in named}
        return dataclasses.replace(
            self, dirs={**self.dirs, **own, CHECKPOINTS_FROM: checkpoint_dir(
                self.dir(CHECKPOINTS_FROM), step)},
            keys={**named, "trial": keys.trial}, on_loss=None)


@dataclass(frozen=True)
class Shards:
    """A stage computed shard by shard on actors: every part-*.parquet of stage `source` gives
    the same-named shard of this one (a finished shard is never redone)."""

    source: str
    desc: str  # what the progress line calls it
    args: Callable[[TrialContext], dict]  # once per stage run: what every shard call gets
    load: Callable[[dict], Any]  # once per actor of its own: what its shards run on
    # one shard: (what load gave, the lock of the model's device work, args, src, dst) -> rows
    run: Callable[[Any, Any, dict, str, str], int]
    # stages that run a model: the weights it must hold (a train folder, BASE_WEIGHTS); a
    # warm actor keeps one base model and copies them in. None: no model (scoring)
    weights: Callable[[dict], str | None] | None = None
    cache_key: Callable[[dict], str] | None = None  # no model: what a warm actor reloads on
    before: Callable[[TrialContext, list], None] = lambda ctx, jobs: None  # before any shard
    calls: int = 1  # shards an actor with a GPU takes at once (threads): host work overlaps


def on_base_model(source: str, desc: str, run: Callable, before: Callable) -> Shards:
    """A shard stage whose actors hold the base model (the trial's is in the context:
    `base_model`): the base stage's pass over the dataset, the rank stage's over
    sample-and-rank's generations."""
    def load(args: dict):
        from memlab.components.loaded import LoadedModel

        return LoadedModel.base(args["cfg"], args["base_model"], args["threads"])

    return Shards(
        source=source, desc=desc,
        args=lambda ctx: {"cfg": ctx.cfg, "base_model": ctx.base_model, "threads": ctx.threads},
        load=load, run=run, weights=lambda args: BASE_WEIGHTS, before=before)


@dataclass(frozen=True)
class Work:
    """What one stage of the chain computes (see the module's doc)."""

    compute: Callable[[TrialContext, Path], dict] | None = None  # unsharded: fill the folder,
    # return the manifest's fields
    shards: Shards | None = None  # sharded: its shards, then `finish`
    # (ctx, folder, shard jobs, rows, the Ray nodes its actors ran on) -> the manifest's fields
    finish: Callable[[TrialContext, Path, list, int, set], dict] | None = None
    built_from: Callable[[TrialContext], dict] = lambda ctx: {}  # besides the stages it reads
    upstream: Callable[[TrialContext], str] | None = None  # replaces the derived upstream
    # a stage that exports evaluation points (chain.py's CHECKPOINTS_FROM): (ctx, its
    # finished folder, steps) -> the exports of those steps, made again
    reexport: Callable[[TrialContext, Path, list[int]], None] | None = None
    scratch: tuple[str, ...] = ()  # folders the finished stage no longer needs
    volatile: tuple[str, ...] = ()  # outputs a rerun rewrites (timings): checked for presence


def work_of(stage: str) -> Work:
    """The Work of a stage, from the module its chain declaration names."""
    return importlib.import_module(LINKS[stage].work).WORK


def upstream_of(ctx: TrialContext, stage: str) -> str:
    """What a finished output of `stage` must have been built from: the finished stages it
    reads (their manifests' digests) and what else its Work says."""
    work = work_of(stage)
    if work.upstream is not None:
        return work.upstream(ctx)
    reads = {r: manifest_digest(ctx.dir(r)) for r in LINKS[stage].reads if ctx.has(r)}
    return content_key({**reads, **work.built_from(ctx)})


def shard_jobs(src_dir: Path, out_dir: Path) -> list[tuple[Path, Path]]:
    """(source shard, output shard) of every Parquet shard of `src_dir`, same names."""
    return [(s, Path(out_dir) / s.name) for s in sorted(Path(src_dir).glob("part-*.parquet"))]


