"""Where a sweep's warm pool and trials land on a node of several GPUs (issue 36, part 3).

Starts the warm pool of the smoke study's LoRA trial (`attack.actor_gpus` 0.06, actors that
load no model: they only say where they are) with `memlab.stages.warm.start_warm_pools`, then
`--trials` trials of 0.15 GPU as `memlab run` requests them (`memlab.sweep.run.trial_requests`:
Tune's placement groups), each a task in its trial bundle that asks `warm_pool_for` for its
actors. Prints, and writes to `--out`, the Ray GPU id and the CUDA device's UUID of every pool
actor and trial, and the UUIDs of the actors each trial is served by. On CPU it needs
`--fake-gpus N` (a Ray node declaring N GPUs; no UUIDs).

    python bench/gpu_spread.py --out bench/results/gpu_spread.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
import types
from pathlib import Path

SMOKE = Path(__file__).resolve().parents[1] / "sweeps" / "smoke.yaml"
POOL = ["attack.warm=on", "attack.actor_gpus=0.06", "resources.lora.gpu=0.15"]


def where() -> dict:
    """This process's Ray GPU ids and the UUID of the CUDA device it sees first."""
    import ray

    out = {"ray_gpu_ids": [int(g) for g in ray.get_gpu_ids()],
           "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES")}
    try:
        import torch

        if torch.cuda.is_available():
            torch.ones(1, device="cuda")  # (a context on the device: nvidia-smi lists us)
            out["uuid"] = str(torch.cuda.get_device_properties(0).uuid)
    except ImportError:
        pass
    return out


class Probe:
    """A warm actor that loads nothing: says where it is."""

    def __init__(self, cfg, base_model):
        self.at = where()

    def gpu(self):
        return self.at


def trials(requests: dict, cfg) -> list[dict]:
    """Each trial bundle's task: where it is, and where its warm actors are."""
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    @ray.remote
    def trial():
        from memlab.stages.warm import warm_pool_for

        pool = warm_pool_for(cfg, "model-a")
        return {**where(), "served_by": [ray.get(a.gpu.remote()) for a in pool.actors]}

    pgs = [placement_group(r.bundles, strategy=r.strategy) for r in requests.values()]
    try:
        ray.get([pg.ready() for pg in pgs], timeout=120)
        return ray.get([trial.options(num_cpus=r.bundles[0]["CPU"],
                                      num_gpus=r.bundles[0].get("GPU", 0),
                                      scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0))
                        .remote() for r, pg in zip(requests.values(), pgs)], timeout=300)
    finally:
        for pg in pgs:
            remove_placement_group(pg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=0, help="trials at once (0: 2 per GPU)")
    ap.add_argument("--fake-gpus", type=int, default=0)
    ap.add_argument("--spread", default="spread", choices=["spread", "pack"])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from memlab.config.expand import load_study
    from memlab.stages import warm
    from memlab.sweep.run import trial_requests

    ray.init(**({"num_gpus": args.fake_gpus, "num_cpus": 16} if args.fake_gpus else {}),
             include_dashboard=False, logging_level="ERROR")
    gpus = int(ray.cluster_resources().get("GPU", 0))
    cfg = load_study(SMOKE, [*POOL, f"resources.gpu_spread={args.spread}"]).trials[2].config
    warm.WarmWorker = Probe  # (start_warm_pools makes its actors of this class)
    t0 = time.perf_counter()
    handles = warm.start_warm_pools([(cfg, "model-a")])
    try:
        actors = [h for h in handles if isinstance(h, ray.actor.ActorHandle)]
        pool = ray.get([a.gpu.remote() for a in actors], timeout=300)
        placed_s = time.perf_counter() - t0
        n = args.trials or 2 * gpus
        plans = [types.SimpleNamespace(config=cfg, base_model="model-a", key=f"t{i}")
                 for i in range(n)]
        requests = trial_requests(plans, 0)
        got = trials(requests, cfg)
    finally:
        warm.stop_warm_pools(handles)
    record = {"command": "python bench/gpu_spread.py", "gpus": gpus, "spread": args.spread,
              "pool_start_s": round(placed_s, 2), "pool": pool,
              "trial_gpu_share": [r.bundles[0].get("GPU", 0) for r in requests.values()],
              "trials": got}
    text = json.dumps(record, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
