"""Warm pools: generation, base-model and scoring actors that serve trial after trial.

Without them every trial starts its own Ray Data actors for each of its stages, and each one
starts cold: imports, a model load, the engine's compiled kernels and CUDA graphs, the
embedder and the corpus index (measured on an H200 at d8272a4: a generation actor ready after
11-14 s, its first shard 22-28 s against 4-5 s for the next; a scoring actor's first shard
25-32 s against 5-7 s).

With `attack.warm` (auto: where the actors have a GPU) the sweep driver starts, before any
trial, `attack.actors` actors per base model (its trials' base model, precision, engine
settings and actor resources: `pool_spec`), named so that a trial finds them. Each actor:
- holds the base model once, on its device, with its output head untied (a tied model's
  values in two tensors), and the generation engine compiled over it;
- for a trial's generation shard, copies that trial's weights into the model's own tensors
  (full and head-only: the trial's checkpoint; LoRA: the adapter merged into the base, as
  `load_trained` does for a cold actor) and refreshes the engine's fused matrices in place, so
  compiled kernels and captured CUDA graphs are reused; the last `attack.warm_models` trials'
  weights stay in host memory, so trials that alternate on an actor swap without a reload;
- serves the base-model pass with the base weights it keeps;
- scores with scorers loaded once per (score section, dataset): the embedder, the
  plagiarism index and the corpus embeddings.
It does each stage's shards as the stage declares them (its `Shards`: memlab/stages/work.py):
the same functions a trial's own actor runs, given this actor's model with the trial's weights
in it, or its cached scorers.
A generation shard's numbers do not depend on which actor made it or what it served before
(the same weights, kernels and batches: the test compares a warm sweep with a cold one).
The trial reserves only what it trains with; the pool's actors hold their share of a GPU for
the whole sweep and are gone with the driver.

Every GPU of a node (attack.warm_gpus: each, attack.actor_gpus > 0): Ray gives a GPU
fraction to the GPU with the least room left that fits it (best fit: 8 actors of 0.06 GPU on a
node of 4 GPUs all get GPU 0), and a placement group's fractional bundle is placed the same way.
So the pool's share of each GPU is reserved one GPU after the other: a placement group of one
bundle (attack.actors actors' GPU and CPUs) on the node, then a filler of the rest of the GPU
it got, so that the next bundle can only go to another GPU; once every GPU has its bundle the
fillers are removed. The actors start in their GPU's bundle, named by node and GPU; a trial
sends its shards to the actors on its own GPU (`ray.get_gpu_ids()` in the trial process), or
to all of the pool's where it has no GPU or its GPU has none.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import OrderedDict, defaultdict
from pathlib import Path

from memlab.config.digests import content_key
from memlab.config.placement import matches, selectors
from memlab.config.schema import StudyConfig
from memlab.io.shards import is_done, manifest_digest
from memlab.stages.work import work_of

log = logging.getLogger(__name__)

NAMESPACE = "memlab"
CALLS = 2  # shards a warm actor with a GPU takes at once: one shard's host work overlaps
# another's device work (on CPU one at a time: the trial's threads each)


PLACE_S = 120.0  # how long a pool's per-GPU reservation may wait for Ray before the sweep stops


def warm_on(cfg: StudyConfig) -> bool:
    """A trial's shard stages on the sweep's warm pool: attack.warm, for a strategy whose
    trained model merges into the base model's weights (a warm actor copies them in)."""
    a = cfg.attack
    return (a.warm == "on" or (a.warm == "auto" and a.actor_gpus > 0)) and cfg.strategy.merges


def pool_spec(cfg: StudyConfig, base_model: str) -> dict:
    """What a pool's actors are built from: trials with the same spec share a pool."""
    a = cfg.attack
    labels = selectors(cfg)["actors"]
    return {"base_model": base_model, "precision": cfg.train.precision, "engine": a.engine,
            "batch_size": a.batch_size, "actors": a.actors, "cpus": a.actor_cpus,
            "gpus": a.actor_gpus, "warm_gpus": a.warm_gpus, "labels": labels,
            "warm_models": a.warm_models,
            "runs_root": cfg.sweep.runs_root, "sweep": cfg.sweep.name}


def _prefix(spec: dict) -> str:
    return f"memlab-warm-{content_key(spec)}-"


def _names(spec: dict) -> list[str]:
    return [f"{_prefix(spec)}{i}" for i in range(spec["actors"])]


def gpu_nodes(selector: dict[str, str]) -> dict[str, int]:
    """The live Ray nodes with whole GPUs whose labels match `selector`: node id -> GPUs."""
    import ray

    return {n["NodeID"]: int(n["Resources"]["GPU"]) for n in ray.nodes()
            if n["Alive"] and n["Resources"].get("GPU", 0) >= 1
            and matches(selector, n.get("Labels") or {})}


def _per_gpu(spec: dict) -> dict[str, int]:
    """The nodes (id -> GPUs) whose every GPU gets spec's actors ({}: the pool is
    attack.actors actors where Ray puts them: no GPU share, warm_gpus ray, or one GPU)."""
    if not (spec["gpus"] and spec["warm_gpus"] == "each"):
        return {}
    nodes = gpu_nodes(spec["labels"])
    return nodes if sum(nodes.values()) > 1 else {}


def _count(spec: dict) -> int:
    """How many actors the pool has."""
    nodes = _per_gpu(spec)
    return spec["actors"] * sum(nodes.values()) if nodes else spec["actors"]


def _calls(spec: dict) -> int:
    return CALLS if spec["gpus"] else 1


def _specs(cfgs: list[tuple[StudyConfig, str]]) -> dict[str, tuple[dict, StudyConfig]]:
    """The distinct pool specs of the warm trials among (config, base model) pairs."""
    specs: dict[str, tuple[dict, StudyConfig]] = {}
    for cfg, base_model in cfgs:
        if warm_on(cfg):
            spec = pool_spec(cfg, base_model)
            specs.setdefault(content_key(spec), (spec, cfg))
    return specs


def start_warm_pools(cfgs: list[tuple[StudyConfig, str]]) -> list:
    """Start the pools that the (config, base model) pairs of warm trials need; return the
    actor handles and the placement groups of their GPUs (the driver keeps them: the actors
    live as long as it; stop_warm_pools ends both)."""
    import ray
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    handles: list = []
    used: dict[tuple[str, int], float] = {}  # (node, GPU id) -> the pools' share of it
    for spec, cfg in _specs(cfgs).values():
        opts = {"num_cpus": spec["cpus"], "max_concurrency": _calls(spec), "max_restarts": 2,
                "max_task_retries": 2, "namespace": NAMESPACE, "get_if_exists": True}
        if spec["gpus"]:
            opts["num_gpus"] = spec["gpus"]
        actor = ray.remote(WarmWorker)
        nodes, where = _per_gpu(spec), ""
        if nodes:  # attack.actors actors in each GPU's bundle, named by node and GPU
            slots = _gpu_slots(spec, nodes, used)
            handles += [pg for _, _, pg in slots]
            for node, gpu, pg in slots:
                at = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=0)
                handles += [actor.options(name=f"{_prefix(spec)}{node}-gpu{gpu}-{len(handles)}",
                                          scheduling_strategy=at, **opts)
                            .remote(cfg, spec["base_model"]) for _ in range(spec["actors"])]
            where = (f", {spec['actors']} on each of the {len(slots)} GPU(s) of "
                     f"{len(nodes)} node(s)")
        else:
            if spec["labels"]:
                opts["label_selector"] = spec["labels"]
            handles += [actor.options(name=n, **opts).remote(cfg, spec["base_model"])
                        for n in _names(spec)]
        gpu = f", {spec['gpus']:g} GPU" if spec["gpus"] else ""
        log.info(f"warm pool: {_count(spec)} actor(s) of {Path(spec['base_model']).name} "
                 f"({spec['cpus']:g} CPU{gpu} each{where}) serve the generate, base and score "
                 "stages of its trials")
    return handles


def _gpu_slots(spec: dict, nodes: dict[str, int], used: dict) -> list[tuple[str, int, object]]:
    """(node, GPU id, placement group) for every GPU of `nodes`: each group's one bundle
    holds spec's actors' share on a GPU of its own (the module's doc says how).
    `used`: the earlier pools' share of each GPU, updated."""
    from ray.util.placement_group import placement_group, remove_placement_group

    want = {"GPU": spec["actors"] * spec["gpus"], "CPU": spec["actors"] * spec["cpus"]}
    bundle = {k: v for k, v in want.items() if v}
    slots, fillers = [], []
    try:
        for node, gpus in nodes.items():
            on = [{"ray.io/node-id": node}]
            for _ in range(gpus):
                pg = _placed(placement_group([bundle], strategy="STRICT_PACK",
                                             bundle_label_selector=on))
                gpu = _gpu_of(pg)
                used[node, gpu] = used.get((node, gpu), 0.0) + want["GPU"]
                slots.append((node, gpu, pg))
                rest = math.floor((1 - used[node, gpu]) * 1e4 + 1e-6) / 1e4  # (Ray's 1e-4 steps)
                if rest > 0:
                    fillers.append(_placed(placement_group([{"GPU": rest}],
                                                           bundle_label_selector=on)))
    finally:
        for pg in fillers:
            remove_placement_group(pg)
    got = defaultdict(int)
    for node, gpu, _ in slots:
        got[node, gpu] += 1
    if any(n > 1 for n in got.values()):  # (something else on a GPU, of the same size)
        log.warning(f"warm pool: GPUs hold more than one pool bundle: {dict(got)}")
    return slots


def _placed(pg):
    """The placement group, once Ray has reserved it."""
    import ray

    try:
        ray.get(pg.ready(), timeout=PLACE_S)
    except ray.exceptions.GetTimeoutError:
        raise RuntimeError(f"attack.warm_gpus: Ray did not reserve {pg.bundle_specs} "
                           f"within {PLACE_S:g} s") from None
    return pg


def _gpu_of(pg) -> int:
    """The GPU id of a placement group's (first) bundle, from a tiny task inside it."""
    import ray
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    at = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=0)
    probe = ray.remote(ray.get_gpu_ids).options(num_cpus=0, num_gpus=1e-4,
                                                scheduling_strategy=at)
    return int(ray.get(probe.remote())[0])


def warm_pools_fit(cfgs: list[tuple[StudyConfig, str]], trial_bundles: list[list[dict]]) -> str:
    """Why the warm pools these trials need cannot be held next to the largest trial's
    bundles on this Ray cluster ('' when they can): the pools hold their share for the whole
    sweep, so otherwise no trial could start, or a pool's actors would wait forever."""
    import ray

    specs = [spec for spec, _ in _specs(cfgs).values()]
    if not specs:
        return ""
    per_gpu = pools_per_gpu(cfgs)
    if per_gpu > 1 + 1e-9:
        return f"the pools' actors would hold {per_gpu:g} of every GPU (attack.warm_gpus)"
    have = ray.cluster_resources()
    for res, name in (("CPU", "cpus"), ("GPU", "gpus")):
        pools = sum(_count(sp) * sp[name] for sp in specs)
        trial = max((sum(b.get(res, 0) for b in bundles) for bundles in trial_bundles),
                    default=0)
        if pools + trial > have.get(res, 0) + 1e-9:
            return (f"{len(specs)} warm pool(s) would hold {pools:g} {res} for the whole sweep "
                    f"and a trial needs {trial:g} more; the cluster has {have.get(res, 0):g}")
    return ""


def pools_per_gpu(cfgs: list[tuple[StudyConfig, str]]) -> float:
    """The share of every GPU that the warm pools of these trials hold (actors per GPU)."""
    return sum(sp["actors"] * sp["gpus"] for sp, _ in _specs(cfgs).values() if _per_gpu(sp))


def stop_warm_pools(handles: list) -> None:
    import ray
    from ray.util.placement_group import PlacementGroup, remove_placement_group

    for h in handles:
        if not isinstance(h, PlacementGroup):
            ray.kill(h)
    for h in handles:
        if isinstance(h, PlacementGroup):
            remove_placement_group(h)


class WarmPool:
    """A trial's view of its warm pool: a stage's shard jobs spread over the pool's actors."""

    def __init__(self, actors: list, calls: int):
        self.actors, self.calls = actors, calls

    def map(self, stage: str, args: dict, jobs: list[tuple[Path, Path]],
            nodes: set | None = None) -> int:
        """`stage`'s shards over the (src, dst) jobs not done yet, at most `calls` in flight
        per actor from this trial; the rows of all. `nodes`: filled with the ids of the Ray
        nodes of the actors that ran them."""
        import pyarrow.parquet as pq
        import ray

        from memlab.io.progress import Progress

        todo = [(str(s), str(d)) for s, d in jobs if not is_done(d)]
        rows = sum(pq.read_metadata(d).num_rows for _, d in jobs if is_done(d))
        if not todo:
            return rows
        ref = ray.put(args)  # (sent once; a top-level argument: Ray resolves it)
        bar = Progress(len(todo), work_of(stage).shards.desc, unit="shard")
        load, flying, queue = [0] * len(self.actors), {}, list(reversed(todo))
        used: set[int] = set()
        while queue or flying:
            while queue and min(load) < self.calls:
                i = load.index(min(load))
                flying[self.actors[i].run.remote(stage, ref, *queue.pop())] = i
                load[i] += 1
            ready, _ = ray.wait(list(flying), num_returns=1)
            i = flying.pop(ready[0])
            load[i] -= 1
            rows += ray.get(ready[0])
            used.add(i)
            bar.update(1)
        if nodes is not None:
            nodes.update(ray.get([self.actors[i].node_id.remote() for i in used]))
        return rows


def warm_pool_for(cfg: StudyConfig, base_model: str) -> WarmPool | None:
    """The warm pool a trial's shard stages run on (None: warm pools off, or none started,
    e.g. a trial finished outside a sweep: its stages start their own actors). With actors on
    every GPU, the actors on this trial's GPU, where it has one and they exist."""
    if not warm_on(cfg):
        return None
    import ray

    spec = pool_spec(cfg, base_model)
    names = sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                   if a["namespace"] == NAMESPACE and a["name"].startswith(_prefix(spec)))
    node = ray.get_runtime_context().get_node_id()
    mine = [n for n in names if any(f"-{node}-gpu{g}-" in n for g in ray.get_gpu_ids())]
    try:
        actors = [ray.get_actor(n, namespace=NAMESPACE) for n in mine or names]
    except (ValueError, RuntimeError):
        actors = []
    if not actors:
        log.warning("attack.warm: no warm pool for this trial; its stages start their own "
                    "actors")
        return None
    return WarmPool(actors, _calls(spec))


class Holding:
    """An actor's model lock, taken with a trial's weights in the model."""

    def __init__(self, lock, put, weights: str | None):
        self.lock, self.put, self.weights = lock, put, weights

    def __enter__(self):
        self.lock.__enter__()
        try:
            self.put(self.weights)
        except BaseException:
            self.lock.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        self.lock.__exit__(*exc)


class WarmWorker:
    """A pool's actor (see the module's doc): the shards of any shard stage of any trial whose
    spec is its pool's."""

    def __init__(self, cfg: StudyConfig, base_model: str):
        from memlab.components.loaded import LoadedModel
        from memlab.strategies.head import untie_head

        def load(dtype):
            from memlab.components.models import load_causal_lm, load_tokenizer

            model = load_causal_lm(base_model, dtype).eval()
            untie_head(model)  # (a head-only trial's own head is copied in)
            return model, load_tokenizer(base_model)

        self.cfg = cfg
        self.lm = LoadedModel(cfg, max(1, math.ceil(cfg.attack.actor_cpus)), load,
                              "base model load")
        self.params = dict(self.lm.model.named_parameters())
        self.base_w = {n: p.detach().clone() for n, p in self.params.items()}
        self.loaded: tuple | None = None  # whose weights the model holds (None: the base's)
        self.trained: OrderedDict = OrderedDict()  # (train_dir, digest) -> host weights
        self.cache_lock, self.state_lock = threading.Lock(), threading.Lock()
        self.states: OrderedDict = OrderedDict()  # (stage, cache key) -> what `load` gave
        self.stage_locks: defaultdict = defaultdict(threading.Lock)

    def node_id(self) -> str:
        """The Ray node this actor runs on."""
        import ray

        return ray.get_runtime_context().get_node_id()

    def run(self, stage: str, args: dict, src: str, dst: str) -> int:
        """One shard of `stage` (its Shards.run), on this actor's model with the weights the
        shard needs, or on scorers loaded once per cache key."""
        import torch

        shards = work_of(stage).shards
        if torch.get_num_threads() != args["threads"]:
            torch.set_num_threads(args["threads"])
        if shards.weights is None:  # (one shard at a time on what it loaded, unless the stage
            state = self._state(stage, shards, args)  # declares more: Shards.calls)
            with self.stage_locks[stage] if shards.calls == 1 else contextlib.nullcontext():
                return shards.run(state, None, args, src, dst)
        weights = shards.weights(args)
        if weights is not None:
            self._weights(weights)  # read before the model lock is taken (the device works on)
        return shards.run(self.lm, Holding(self.lm.model_lock, self._put, weights), args, src,
                          dst)

    def _state(self, stage: str, shards, args: dict):
        """What `shards.load` gives for these args, loaded once per cache key (the last two)."""
        key = (stage, shards.cache_key(args))
        with self.state_lock:
            if key in self.states:
                self.states.move_to_end(key)
            else:
                t0 = time.perf_counter()
                self.states[key] = shards.load(args)
                while len(self.states) > 2:
                    self.states.popitem(last=False)
                log.info(f"warm actor: {shards.desc} loaded in "
                         f"{time.perf_counter() - t0:.1f} s")
            return self.states[key]

    # -- weights -------------------------------------------------------------------------------
    def _weights(self, train_dir: str) -> dict:
        """A trained model's weights in host memory, under the model's own parameter names."""
        from memlab.components.models import load_trained

        key = (train_dir, manifest_digest(train_dir))
        with self.cache_lock:
            if key in self.trained:
                self.trained.move_to_end(key)
                return self.trained[key]
            t0 = time.perf_counter()
            model, _ = load_trained(train_dir, self.lm.dtype)
            named = dict(model.named_parameters(remove_duplicate=False))  # tied: both names
            bad = [n for n, p in self.params.items()
                   if n not in named or named[n].shape != p.shape]
            if bad:
                raise RuntimeError(f"{train_dir}: its model does not fit the warm actor's base "
                                   f"model ({len(bad)} tensors differ, e.g. {bad[0]})")
            w = {n: named[n].detach() for n in self.params}
            self.trained[key] = w
            while len(self.trained) > self.cfg.attack.warm_models:
                self.trained.popitem(last=False)
            log.info("warm actor: %s read in %.1f s", train_dir, time.perf_counter() - t0)
            return w

    def _put(self, train_dir: str | None) -> None:
        """The trial's weights (None: the base model's) into the model, in place (call with
        the model lock held)."""
        import torch

        key = None if train_dir is None else (train_dir, manifest_digest(train_dir))
        if key == self.loaded:
            return
        w = self.base_w if train_dir is None else self._weights(train_dir)
        self.loaded = ("partly copied",)  # (a copy that fails midway leaves no trial's name)
        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(w[n])
        if self.lm.engine is not None:
            self.lm.engine.dec.refresh()
        self.loaded = key
