"""A trial's own actors: a shard stage's shards through a Ray Data actor pool, one task per
(source shard, output shard) pair, one `load` per actor (a model, the scorers), finished output
shards skipped. (With warm pools, memlab/stages/warm.py, the sweep's actors serve instead.)"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from memlab.config.placement import selectors
from memlab.config.schema import StudyConfig
from memlab.io.shards import is_done
from memlab.stages.work import Shards


class ShardActor:
    """Ray Data actor of one shard stage: loads what its shards run on once (`Shards.load`),
    then runs each (src, dst) pair it is given; its output batches also name the Ray node it
    runs on. With a GPU it may take `Shards.calls` pairs at once, each in its own thread."""

    def __init__(self, shards: Shards, args: dict):
        self.shards, self.args = shards, args
        self.state = self.shards.load(args)
        self.lock = getattr(self.state, "model_lock", None)  # (a model's device work)

    def __call__(self, batch: dict) -> dict:
        import ray

        rows = [self.shards.run(self.state, self.lock, self.args, src, dst)
                for src, dst in zip(batch["src"], batch["dst"])]
        node = ray.get_runtime_context().get_node_id()
        return {"dst": list(batch["dst"]), "rows": rows, "node": [node] * len(rows)}


def run_on_actors(shards: Shards, args: dict, jobs: list[tuple[Path, Path]], cfg: StudyConfig,
                  nodes: set | None = None) -> int:
    """A shard stage's shards over the (src, dst) jobs on Ray Data actors of this trial's own;
    the rows of all. `nodes`: filled with the ids of the Ray nodes its actors ran on."""
    import ray

    from memlab.io.progress import Progress

    todo = [(s, d) for s, d in jobs if not is_done(d)]
    rows = sum(pq.read_metadata(d).num_rows for _, d in jobs if is_done(d))
    if not todo:
        return rows
    a = cfg.attack
    ray.data.DataContext.get_current().enable_progress_bars = False  # ours counts shards
    ds = ray.data.from_items([{"src": str(s), "dst": str(d)} for s, d in todo])
    # several shards at once (one thread each) where the actor has a device whose work the
    # host work can overlap
    calls = shards.calls if a.actor_gpus else 1
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
    ds = ds.map_batches(ShardActor, fn_constructor_kwargs={"shards": shards, "args": args},
                        batch_size=1, compute=pool, num_cpus=a.actor_cpus,
                        num_gpus=a.actor_gpus or None, ray_remote_args_fn=remote_args)
    bar = Progress(len(todo), shards.desc, unit="shard")
    for row in ds.iter_rows():
        rows += int(row["rows"])
        if nodes is not None:
            nodes.add(row["node"])
        bar.update(1)
    return rows
