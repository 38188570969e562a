"""A stage's shards through a Ray Data actor pool: one task per (source shard, output shard)
pair, one model load per actor, finished output shards skipped. Shared by the generate and
score stages."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from memlab.config.placement import selectors
from memlab.config.schema import StudyConfig
from memlab.io.shards import is_done


def shard_jobs(src_dir: Path, out_dir: Path) -> list[tuple[Path, Path]]:
    """(source shard, output shard) of every Parquet shard of `src_dir`, same names."""
    return [(s, Path(out_dir) / s.name) for s in sorted(Path(src_dir).glob("part-*.parquet"))]


def _noting_node(actor_cls):
    """`actor_cls` whose output batches also name the Ray node its actor runs on."""

    class Noting(actor_cls):
        def __call__(self, batch: dict) -> dict:
            import ray

            out = super().__call__(batch)
            out["node"] = [ray.get_runtime_context().get_node_id()] * len(out["rows"])
            return out

    Noting.__name__ = Noting.__qualname__ = actor_cls.__name__
    return Noting


def run_shard_pool(actor_cls, ctor_kwargs: dict, jobs: list[tuple[Path, Path]],
                   cfg: StudyConfig, desc: str, nodes: set | None = None) -> int:
    """Run `actor_cls` over (src, dst) shard pairs with a Ray Data actor pool; return rows.
    `nodes`: filled with the ids of the Ray nodes its actors ran on."""
    import ray

    from memlab.io.progress import Progress

    todo = [(s, d) for s, d in jobs if not is_done(d)]
    rows = sum(pq.read_metadata(d).num_rows for _, d in jobs if is_done(d))
    if not todo:
        return rows
    a = cfg.attack
    ray.data.DataContext.get_current().enable_progress_bars = False  # ours counts shards
    ds = ray.data.from_items([{"src": str(s), "dst": str(d)} for s, d in todo])
    # an actor class may take several shards at once (`CALLS`, one thread each) where it has a
    # device whose work the host work can overlap
    calls = getattr(actor_cls, "CALLS", 1) if a.actor_gpus else 1
    many = {"max_tasks_in_flight_per_actor": calls, "max_concurrent_calls_per_actor": calls,
            "enable_true_multi_threading": True} if calls > 1 else {}
    pool = ray.data.ActorPoolStrategy(size=max(1, min(a.actors, len(todo))), **many)
    remote_args = None
    pg = ray.util.get_current_placement_group()
    if pg is not None and len(pg.bundle_specs) > 1:
        # Inside a Tune trial that reserved bundles for its actors (head / LoRA trials): the
        # actors go there (Ray Data would otherwise schedule them outside the trial's group).
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        strategy = PlacementGroupSchedulingStrategy(pg)
        remote_args = lambda: {"scheduling_strategy": strategy}  # noqa: E731
    elif labels := selectors(cfg)["actors"]:
        remote_args = lambda: {"label_selector": dict(labels)}  # noqa: E731
    ds = ds.map_batches(_noting_node(actor_cls), fn_constructor_kwargs=ctor_kwargs, batch_size=1,
                        compute=pool, num_cpus=a.actor_cpus, num_gpus=a.actor_gpus or None,
                        ray_remote_args_fn=remote_args)
    bar = Progress(len(todo), desc, unit="shard")
    for row in ds.iter_rows():
        rows += int(row["rows"])
        if nodes is not None:
            nodes.add(row["node"])
        bar.update(1)
    return rows
