"""The one runner of the stage chain: every stage of a trial goes through the same steps.

    claim its folder (a file lock: one process computes it, others wait and reuse it)
    -> reuse it if it finished from the same upstream, else repair it (keep finished shards,
       redo damaged pieces) and compute: on the sweep's warm pool or on actors of the trial's
       own (shard stages), or in this process (data, train)
    -> write the manifest last (with its outputs' digests), then drop the stage's scratch

The chain (which stages, in which order, what each reads) is memlab/config/chain.py; what each
stage computes is its module's `WORK` (memlab/stages/work.py). "Is this trial done" is one loop
over the same declarations, evaluation points included.

Evaluation points (train.eval_at / eval_every): once the chain ran, each point's own stages
(the links marked `per_checkpoint`) go through the same steps in the point's context
(TrialContext.at: its keys and folders, its export where the train folder was). Exports a
point still needs to generate from and the train folder lacks are made again first, under the
train stage's lock (its WORK's `reexport`); once a point's stages finished, its export is kept
or dropped as train.keep_checkpoints says (its manifest stays: the point's stages were built
from it). With train.stop_when (early stopping, memlab/tracking/stopping.py), the points are
evaluated in step order up to the first at which the rule fires; the later ones are not (and
a trial whose points are done up to that one is done).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from memlab.config.chain import CHAIN, CHECKPOINTS_FROM
from memlab.config.keys import eval_steps
from memlab.io.paths import checkpoint_dir
from memlab.io.shards import (
    StageOutput,
    claim_stage,
    flat_metrics,
    outputs_present,
    read_manifest,
    read_summary,
    stage_done,
    write_manifest,
)
from memlab.stages.work import TrialContext, Work, shard_jobs, upstream_of, work_of
from memlab.tracking.stopping import first_stop


def run_stage(ctx: TrialContext, stage: str) -> StageOutput:
    """One stage of the trial, computed unless its folder holds it already (another process
    computing it is waited for)."""
    upstream = upstream_of(ctx, stage)
    return run_work(work_of(stage), stage, ctx, ctx.dir(stage), upstream)


def run_work(work: Work, stage: str, ctx: TrialContext, folder: Path,
             upstream: str) -> StageOutput:
    """`work` into `folder` unless it finished there from `upstream`."""
    with claim_stage(folder, upstream) as claim:
        if claim.finished is None:
            t0 = time.perf_counter()
            if work.shards is not None:
                jobs, nodes = shard_jobs(ctx.dir(work.shards.source), folder), set()
                work.shards.before(ctx, jobs)
                rows = _map(ctx, stage, work, jobs, nodes)
                fields = work.finish(ctx, folder, jobs, rows, nodes)
            else:
                fields = work.compute(ctx, folder)
            # compute_s: this attempt's seconds (a resumed stage: what was left of it)
            write_manifest(folder, upstream=upstream, volatile=(*work.volatile, "compute_s"),
                           **fields, compute_s=round(time.perf_counter() - t0, 2))
            for name in work.scratch:  # (after the manifest: a crash before it resumes)
                shutil.rmtree(folder / name, ignore_errors=True)
        return claim.output()


def _map(ctx: TrialContext, stage: str, work: Work, jobs: list, nodes: set) -> int:
    """A shard stage's jobs on the sweep's warm pool, or on Ray Data actors of this trial's
    own; the rows of all its shards."""
    args = work.shards.args(ctx)
    if ctx.warm is not None:
        return ctx.warm.map(stage, args, jobs, nodes)
    from memlab.stages.actors import run_on_actors

    return run_on_actors(work.shards, args, jobs, ctx.cfg, nodes)


def finished(ctx: TrialContext, stage: str) -> bool:
    """The stage finished from its current upstream, every output present (reads manifests
    and digests outputs only; the stages it reads must have finished)."""
    return stage_done(ctx.dir(stage), upstream_of(ctx, stage))


def chain_done(ctx: TrialContext) -> bool:
    """Every stage of the trial finished, and every stage of its evaluation points: the trial
    needs no compute, only its record and logging."""
    return all(finished(ctx, link.name) for link in CHAIN if ctx.has(link.name)) and \
        all(_point_done(ctx.at(step)) for step in _up_to_stop(ctx, checkpoint_steps(ctx)))


def _up_to_stop(ctx: TrialContext, steps: list[int]) -> list[int]:
    """`steps` up to the first at which train.stop_when fires, as far as the points already
    evaluated say (every step: no rule, or it fired at none of them); the points after it
    are not evaluated."""
    seen: list[tuple[int, dict]] = []
    for i, step in enumerate(steps):
        if not _point_done(at := ctx.at(step)):
            return steps
        if _stops(at, step, seen):
            return steps[:i + 1]
    return steps


def checkpoint_steps(ctx: TrialContext) -> list[int]:
    """The trial's evaluation points before its last step (keys.eval_steps), from its finished
    training's step count; [] without points or before the training finished."""
    t = ctx.cfg.train
    man = read_manifest(ctx.dir(CHECKPOINTS_FROM)) if t.eval_at or t.eval_every else None
    return eval_steps(ctx.cfg, man["train_steps"]) if man else []


def _own(at: TrialContext, reading: bool = False) -> list[str]:
    """The point's own stages (per_checkpoint), in the chain's order; `reading`: those that
    read its export."""
    return [link.name for link in CHAIN if link.per_checkpoint and at.has(link.name)
            and (not reading or CHECKPOINTS_FROM in link.reads)]


def _point_done(at: TrialContext) -> bool:
    """Every stage of the evaluation point finished (from its export's manifest)."""
    return read_manifest(at.dir(CHECKPOINTS_FROM)) is not None and \
        all(finished(at, stage) for stage in _own(at))


def _export_missing(at: TrialContext) -> bool:
    """The point has a stage to compute from its export, and the export is not on disk."""
    folder = at.dir(CHECKPOINTS_FROM)
    if outputs_present(folder):
        return False
    return read_manifest(folder) is None or \
        not all(finished(at, stage) for stage in _own(at, reading=True))


def run_checkpoints(ctx: TrialContext,
                    said: Callable[[str, StageOutput], None] = lambda stage, out: None
                    ) -> dict[int, dict[str, StageOutput]]:
    """Every evaluation point's own stages, point by point (each reused when done), after the
    exports they need are made again; `said("<stage>@<step>", output)` after each. Returns
    {step: {stage: output}}."""
    steps = checkpoint_steps(ctx)
    # (past a stop point found earlier: no export is made again for points not evaluated)
    if missing := [s for s in _up_to_stop(ctx, steps) if _export_missing(ctx.at(s))]:
        _reexport(ctx, missing)
    outputs: dict[int, dict[str, StageOutput]] = {}
    seen: list[tuple[int, dict]] = []
    for i, step in enumerate(steps):
        at = ctx.at(step)
        outputs[step] = {}
        for stage in _own(at):
            outputs[step][stage] = run_stage(at, stage)
            said(f"{stage}@{step}", outputs[step][stage])
        _keep_or_drop(at)
        if _stops(at, step, seen):  # train.stop_when fired: the later points are not
            for later in steps[i + 1:]:  # evaluated; their exports kept or dropped alike
                _keep_or_drop(ctx.at(later))
            break
    return outputs


def point_metrics(at: TrialContext) -> dict[str, float]:
    """An evaluated point's (or the final model's) flat metrics, from its score summary."""
    return flat_metrics(read_summary(at.dir("score")))


def _stops(at: TrialContext, step: int, seen: list[tuple[int, dict]]) -> bool:
    """train.stop_when fires at the evaluated point `at` (after `step` optimizer steps), the
    points before it being `seen` ((step, metrics); `at`'s is appended); False without a rule
    (and nothing is read)."""
    rule = at.cfg.train.stop_when
    if not rule.on:
        return False
    seen.append((step, point_metrics(at)))
    return first_stop(rule, seen, at.cfg.score.headline_threshold) is not None


def _reexport(ctx: TrialContext, steps: list[int]) -> None:
    """The exports of `steps`, made again by the stage that writes them, under its lock (a
    trial sharing the training may be making them: those it made are not made twice)."""
    folder = ctx.dir(CHECKPOINTS_FROM)
    with claim_stage(folder, upstream_of(ctx, CHECKPOINTS_FROM)) as claim:
        if claim.finished is None:
            raise RuntimeError(f"{folder}: training did not finish; run the trial again")
        if steps := [s for s in steps if not outputs_present(checkpoint_dir(folder, s))]:
            work_of(CHECKPOINTS_FROM).reexport(ctx, folder, steps)


def _keep_or_drop(at: TrialContext) -> None:
    """train.keep_checkpoints, once the point's stages finished: all keeps its export;
    adapters keeps an adapter (the strategy's `saved`) and drops full weights; none drops it.
    The export's manifest stays: the point's stages were built from it."""
    keep, folder = at.cfg.train.keep_checkpoints, at.dir(CHECKPOINTS_FROM)
    man = read_manifest(folder) or {}
    if keep == "none" or (keep == "adapters" and man.get("saved") != "adapter"):
        for name in man.get("outputs", []):
            shutil.rmtree(folder / name, ignore_errors=True)


def run_chain(ctx: TrialContext,
              said: Callable[[str, StageOutput], None] = lambda stage, out: None
              ) -> dict[str, StageOutput]:
    """Every stage of the trial, in the chain's order (each reused when done); `said(stage,
    output)` after each."""
    outputs = {}
    for link in CHAIN:
        if ctx.has(link.name):
            outputs[link.name] = run_stage(ctx, link.name)
            said(link.name, outputs[link.name])
    return outputs
