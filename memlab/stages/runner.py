"""The one runner of the stage chain: every stage of a trial goes through the same steps.

    claim its folder (a file lock: one process computes it, others wait and reuse it)
    -> reuse it if it finished from the same upstream, else repair it (keep finished shards,
       redo damaged pieces) and compute: on the sweep's warm pool or on actors of the trial's
       own (shard stages), or in this process (data, train)
    -> write the manifest last (with its outputs' digests), then drop the stage's scratch

The chain (which stages, in which order, what each reads) is memlab/config/chain.py; what each
stage computes is its module's `WORK` (memlab/stages/work.py). "Is this trial done" is one loop
over the same declarations.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from memlab.config.chain import CHAIN
from memlab.io.shards import StageOutput, claim_stage, stage_done, write_manifest
from memlab.stages.work import TrialContext, Work, shard_jobs, upstream_of, work_of


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
            if work.shards is not None:
                jobs, nodes = shard_jobs(ctx.dir(work.shards.source), folder), set()
                work.shards.before(ctx, jobs)
                rows = _map(ctx, stage, work, jobs, nodes)
                fields = work.finish(ctx, folder, jobs, rows, nodes)
            else:
                fields = work.compute(ctx, folder)
            write_manifest(folder, upstream=upstream, volatile=work.volatile, **fields)
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
    """Every stage of the trial finished: the trial needs no compute, only its record and
    logging."""
    return all(finished(ctx, link.name) for link in CHAIN if ctx.has(link.name))


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
