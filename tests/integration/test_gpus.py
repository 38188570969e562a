"""Every GPU of a node (issue 36, part 3), on a Ray node of this CPU machine that declares 4
GPUs (logical: no device is used). Ray gives a GPU fraction to the fullest GPU it fits on, so
without memlab's spreading every pool actor and trial of 0.06 / 0.15 GPU shares GPU 0. With it:
one warm-pool actor on each GPU, trials on different GPUs, each trial served by the actors of
its own GPU; a study without GPUs gets today's pool and bundles."""

import collections
import copy
import types

import pytest

from memlab.config.expand import load_study
from tests.integration.conftest import SMOKE

GPUS = 4
POOL = ["attack.warm=on", "attack.actor_gpus=0.06", "resources.lora.gpu=0.15"]


class FakeWorker:
    """A warm actor without a model: says which GPU Ray gave it."""

    def __init__(self, cfg, base_model):
        pass

    def gpu(self):
        import ray

        return [int(g) for g in ray.get_gpu_ids()]

    def node_id(self):
        import ray

        return ray.get_runtime_context().get_node_id()


@pytest.fixture(scope="module")
def four_gpus():
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=16, num_gpus=GPUS, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture
def fake_worker(monkeypatch):
    from memlab.stages import warm

    monkeypatch.setattr(warm, "WarmWorker", FakeWorker)


def _lora(sets):
    return load_study(SMOKE, sets).trials[2].config  # (the grid: full, head, lora)


def _plans(cfg, n):
    return [types.SimpleNamespace(config=cfg, base_model="model-a", key=f"t{i}")
            for i in range(n)]


def _settled(read, seconds=30.0):
    """What `read` gives once it stops changing (Ray frees resources asynchronously)."""
    import time

    last, end = read(), time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(1.0)
        now = read()
        if now == last:
            return now
        last = now
    return last


def _trials_gpus(requests, cfg):
    """Each trial's GPU (a task in its Tune bundle, as the trial process runs) and the GPUs
    of the warm actors it sends its shards to (warm_pool_for, in that task)."""
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    @ray.remote
    def trial():
        from memlab.stages.warm import warm_pool_for

        pool = warm_pool_for(cfg, "model-a")
        return ray.get_gpu_ids(), sorted({g for a in pool.actors for g in ray.get(a.gpu.remote())})

    pgs = [placement_group(r.bundles, strategy=r.strategy) for r in requests.values()]
    try:
        ray.get([pg.ready() for pg in pgs], timeout=60)
        refs = [trial.options(num_cpus=r.bundles[0]["CPU"], num_gpus=r.bundles[0].get("GPU", 0),
                              scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote()
                for r, pg in zip(requests.values(), pgs)]
        return [([int(g) for g in own], pool) for own, pool in ray.get(refs, timeout=120)]
    finally:
        for pg in pgs:
            remove_placement_group(pg)


def test_a_pool_actor_on_every_gpu_and_trials_across_them(four_gpus, fake_worker):
    import ray

    from memlab.stages.warm import start_warm_pools, stop_warm_pools, warm_pool_for
    from memlab.sweep.run import pools_leave_whole_gpus, trial_requests

    cfg = _lora(POOL)
    handles = start_warm_pools([(cfg, "model-a")])
    try:
        actors = [h for h in handles if isinstance(h, ray.actor.ActorHandle)]
        assert len(actors) == GPUS
        got = ray.get([a.gpu.remote() for a in actors], timeout=60)
        assert sorted(g for gs in got for g in gs) == list(range(GPUS))  # one actor per GPU
        # the fillers that kept a GPU's rest from the next bundle are gone; the pool's share stays
        assert _settled(lambda: ray.available_resources()["GPU"]) == pytest.approx(
            GPUS - GPUS * 0.06)
        assert len(warm_pool_for(cfg, "model-a").actors) == GPUS  # the driver: no GPU of its own

        # 4 trials of 0.15 GPU: each on its own GPU, served by the actor there
        requests = trial_requests(_plans(cfg, 4), 0)
        assert {r.bundles[0]["GPU"] for r in requests.values()} == {0.94}
        trials = _trials_gpus(requests, cfg)
        assert sorted(own[0] for own, _ in trials) == list(range(GPUS)), trials
        assert all(pool == own for own, pool in trials), trials
        # 8 at once: two on every GPU
        trials = _trials_gpus(trial_requests(_plans(cfg, 8), 0), cfg)
        assert collections.Counter(own[0] for own, _ in trials) == {g: 2 for g in range(GPUS)}
        # next to a trial of a whole GPU (full fine-tuning), the 4 share the other 3 GPUs
        full = load_study(SMOKE, [*POOL, "resources.full.gpu=1"]).trials[0].config
        plans = [*_plans(cfg, 4), types.SimpleNamespace(config=full, base_model="model-a",
                                                        key="full")]
        shares = {k: r.bundles[0]["GPU"] for k, r in trial_requests(plans, 0).items()}
        assert shares == {**{f"t{i}": 0.47 for i in range(4)}, "full": 1}
        # ... but pools on every GPU would leave the whole-GPU trial none: placed as Ray does
        mixed = copy.deepcopy(plans)
        pools_leave_whole_gpus(mixed)
        assert {p.config.attack.warm_gpus for p in mixed} == {"ray"}
        alone = copy.deepcopy(plans[:4])  # (no whole-GPU trial: the pools stay on every GPU)
        pools_leave_whole_gpus(alone)
        assert {p.config.attack.warm_gpus for p in alone} == {"each"}
        # resources.gpu_spread=pack: each its own 0.15, and Ray puts them all on GPU 0
        packed = _lora([*POOL, "resources.gpu_spread=pack"])
        trials = _trials_gpus(trial_requests(_plans(packed, 4), 0), packed)
        assert [own for own, _ in trials] == [[0]] * 4, trials
    finally:
        stop_warm_pools(handles)
    assert _settled(lambda: ray.available_resources().get("GPU")) == pytest.approx(GPUS)


def test_without_gpus_the_pool_and_bundles_are_todays(four_gpus, fake_worker):
    """attack.actor_gpus 0 and trials without a GPU: attack.actors actors named as before,
    and the Tune bundles are trial_resources' own."""
    import ray

    from memlab.stages import warm
    from memlab.sweep.run import trial_requests, trial_resources

    cfg = _lora(["attack.warm=on", "attack.actors=2"])
    handles = warm.start_warm_pools([(cfg, "model-a")])
    try:
        assert [ray.get(h.gpu.remote(), timeout=60) for h in handles] == [[], []]
        assert {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)} \
            >= set(warm._names(warm.pool_spec(cfg, "model-a")))
        assert len(warm.warm_pool_for(cfg, "model-a").actors) == 2  # a trial finds them
        (request,) = trial_requests(_plans(cfg, 1), 0).values()
        assert request.bundles == trial_resources(cfg)[0]
    finally:
        warm.stop_warm_pools(handles)


def test_two_nodes_of_two_gpus(fake_worker):
    """Real `ray start` nodes, each declaring 2 GPUs (as a cluster launcher's node type does):
    a pool actor on each GPU of each node, 4 trials on the 4 GPUs, each served by the actor
    on its own node and GPU."""
    import json

    import ray
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    from memlab.stages.warm import start_warm_pools, stop_warm_pools, warm_pool_for
    from memlab.sweep.run import trial_requests
    from tests.integration.conftest import RayCluster

    if ray.is_initialized():
        ray.shutdown()
    two = {"RAY_OVERRIDE_RESOURCES": json.dumps({"GPU": 2})}
    c = RayCluster(cpus=6, env=two)
    try:
        c.add_node("second", cpus=6, env=two)
        ray.init(address=c.address, logging_level="ERROR")
        cfg = _lora(POOL)
        handles = start_warm_pools([(cfg, "model-a")])
        actors = [h for h in handles if isinstance(h, ray.actor.ActorHandle)]
        nodes = ray.get([a.node_id.remote() for a in actors])
        gpus = ray.get([a.gpu.remote() for a in actors])
        assert sorted((n, g) for n, (g,) in zip(nodes, gpus)) == sorted(
            (n["NodeID"], g) for n in ray.nodes() if n["Alive"] for g in (0, 1))

        @ray.remote
        def trial():
            pool = warm_pool_for(cfg, "model-a")
            here = (ray.get_runtime_context().get_node_id(), int(ray.get_gpu_ids()[0]))
            return here, [(ray.get(a.node_id.remote()), ray.get(a.gpu.remote())[0])
                          for a in pool.actors]

        requests = list(trial_requests(_plans(cfg, 4), 0).values())
        pgs = [placement_group(r.bundles, strategy=r.strategy) for r in requests]
        ray.get([pg.ready() for pg in pgs], timeout=60)
        got = ray.get([trial.options(num_cpus=1, num_gpus=r.bundles[0]["GPU"],
                                     scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0))
                       .remote() for r, pg in zip(requests, pgs)], timeout=120)
        assert len({here for here, _ in got}) == 4, got  # every GPU of both nodes
        assert all(served == [here] for here, served in got), got
        for pg in pgs:
            remove_placement_group(pg)
        stop_warm_pools(handles)
    finally:
        ray.shutdown()
        c.stop()
