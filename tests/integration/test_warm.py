"""Warm pools (memlab/stages/warm.py): one actor that serves trial after trial writes the
shards that each trial's own cold actors wrote, whatever it served before."""

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from memlab.components.models import torch_threads
from memlab.io.paths import stage_dir
from memlab.stages.work import shard_jobs
from tests.integration.conftest import SMOKE, run_sweep


def _trials(smoke_sweep):
    out = {}
    for t in smoke_sweep["study"].trials:
        cfg = t.config
        stage = lambda name, c=cfg, k=t.keys: stage_dir(c, name, getattr(k, name))  # noqa: E731
        out[cfg.train.strategy] = (cfg, t.keys, stage)
    return out


def _same(got, want):
    a, b = pq.read_table(got), pq.read_table(want)
    assert a.schema.remove_metadata() == b.schema.remove_metadata()
    cols = a.column_names
    # (as frames: a NaN score, e.g. the readability of an empty text, equals itself)
    pd.testing.assert_frame_equal(a.select(cols).to_pandas(), b.select(cols).to_pandas(),
                                  check_exact=True, obj=str(got))


def test_warm_actor_writes_the_cold_actors_shards(smoke_sweep, tmp_path):
    """In process (no Ray): trials in the order full, lora, head, full again (each a weight
    swap, the last from host memory), then the base model's pass and the scores."""
    from memlab.stages.warm import WarmWorker

    trials = _trials(smoke_sweep)
    cfg, keys, stage = trials["full"]
    base_model = json.loads((stage("train") / "_MANIFEST.json").read_text())["base_model"]
    worker = WarmWorker(cfg, base_model)
    splits = {s: set(pq.read_table(s, columns=["split"]).column("split").to_pylist())
              for s, _ in shard_jobs(stage("data"), tmp_path)}
    canary = next(s for s, got in splits.items() if "canary" in got)
    src = next(s for s, got in splits.items() if "member" in got and "nonmember" in got)
    for n, strategy in enumerate(("full", "lora", "head", "full")):
        c, k, st = trials[strategy]
        for shard in (canary, src):
            dst = tmp_path / f"gen-{n}-{strategy}" / shard.name
            dst.parent.mkdir(exist_ok=True)
            args = {"cfg": c, "train_dir": str(st("train")), "threads": torch_threads(c)}
            rows = worker.run("gen", args, str(shard), str(dst))
            assert rows == pq.read_metadata(st("gen") / shard.name).num_rows
            _same(dst, st("gen") / shard.name)
        assert rows > 0
        _same(dst.with_name("canary-" + canary.name), st("gen") / ("canary-" + canary.name))
    assert len(worker.trained) == 3  # each trial's weights read once
    c, k, st = trials["lora"]
    dst = tmp_path / "base" / src.name
    dst.parent.mkdir()
    worker.run("base", {"cfg": c, "base_model": base_model, "threads": torch_threads(c)},
               str(src), str(dst))
    _same(dst, st("base") / src.name)

    from memlab.scoring import suite
    from memlab.stages.score import base_nll

    base = base_nll(st("base"))
    for strategy in ("lora", "head"):  # one scorer set serves both
        c, k, st = trials[strategy]
        prepared = {s.name: s.prepare(c, st("data")) for s in suite.scorers(c.score)
                    if s.prepare is not None and s.enabled(c.score)}
        gen = st("gen") / src.name
        dst = tmp_path / f"score-{strategy}" / src.name
        dst.parent.mkdir()
        worker.run("score", {"cfg": c, "trial_key": k.trial, "prepared": prepared, "base": base,
                             "threads": torch_threads(c)}, str(gen), str(dst))
        _same(dst, st("score") / src.name)
    assert len(worker.states) == 1


def test_a_trial_model_of_another_base_is_refused(smoke_sweep, tmp_path):
    """A checkpoint whose tensors differ from the pool's base model is not copied into it."""
    import torch

    from memlab.stages.warm import WarmWorker

    cfg, keys, stage = _trials(smoke_sweep)["full"]
    base_model = json.loads((stage("train") / "_MANIFEST.json").read_text())["base_model"]
    worker = WarmWorker(cfg, base_model)
    name, p = next(iter(worker.params.items()))
    worker.params[name] = torch.nn.Parameter(torch.zeros(p.shape[0] + 1, *p.shape[1:]))
    with pytest.raises(RuntimeError, match="does not fit the warm actor's base model"):
        worker._weights(str(stage("train")))


def test_pools_that_leave_no_room_for_a_trial_are_refused(monkeypatch):
    """Warm pools hold their share for the whole sweep: two base models' pools of 0.5 GPU each
    and a trial of 0.5 GPU do not fit on one GPU (the sweep then runs cold), one model's do."""
    import dataclasses

    import ray

    from memlab.config.expand import load_study
    from memlab.stages.warm import warm_pools_fit as pools_fit

    def node(gpus):  # one node of `gpus` GPUs
        have = {"CPU": 16.0, "GPU": gpus}
        monkeypatch.setattr(ray, "cluster_resources", lambda: have)
        monkeypatch.setattr(ray, "nodes", lambda: [{"NodeID": "n", "Alive": True,
                                                    "Labels": {}, "Resources": have}])

    node(1.0)
    cfg = load_study(SMOKE, ["attack.warm=on", "attack.actor_gpus=0.5",
                             "resources.lora.gpu=0.5"]).trials[2].config
    trial = [[{"CPU": 1, "GPU": 0.5}]]
    assert pools_fit([(cfg, "model-a")], trial) == ""
    why = pools_fit([(cfg, "model-a"), (cfg, "model-b")], trial)
    assert "2 warm pool(s) would hold 1 GPU" in why
    off = dataclasses.replace(cfg, attack=dataclasses.replace(cfg.attack, warm="off"))
    assert pools_fit([(off, "model-a"), (off, "model-b")], trial) == ""
    # attack.warm_gpus each: on 2 GPUs, attack.actors actors on each, and no more than a GPU
    node(2.0)
    assert pools_fit([(cfg, "model-a")], trial) == ""
    three = dataclasses.replace(cfg, attack=dataclasses.replace(cfg.attack, actors=3))
    assert "would hold 1.5 of every GPU" in pools_fit([(three, "model-a")], [[{"CPU": 1}]])


@pytest.mark.slow  # a second smoke sweep: ~3 min on 2 cores (CI runs it)
def test_warm_sweep_gives_the_cold_sweeps_results(tmp_path, smoke_sweep):
    """The smoke sweep on warm pools (one actor for every trial's stages) ends with every
    metric of every trial equal to the reference run's (each trial its own actors)."""
    warm = run_sweep(SMOKE, tmp_path / "runs", ["attack.warm=on"])
    assert "warm pool: 1 actor(s)" in warm["stdout"] + warm["stderr"]
    assert [t.key for t in warm["study"].trials] == [t.key for t in smoke_sweep["study"].trials]
    for t in smoke_sweep["study"].trials:
        got = json.loads((tmp_path / "runs" / "smoke" / t.key / "result.json").read_text())
        want = json.loads((smoke_sweep["runs"] / "smoke" / t.key / "result.json").read_text())
        strip = lambda m: {k: v for k, v in m.items()  # noqa: E731
                           if k not in ("train_time_s", "train_tokens_per_s")}
        assert strip(got["metrics"]) == strip(want["metrics"]), t.name
