"""One process at a time computes a stage output: two trials that need the same training (the
same train_key, so the same folder) and start at once train once; the other waits for the
manifest and reuses the model."""

import json
import multiprocessing as mp
import time

from memlab.io.shards import claim_stage, read_manifest, write_manifest


def _slow_loss(step, loss):
    time.sleep(0.4)  # keeps the first trainer busy while the second arrives


def _train(args):
    cfg, base, data, out, barrier = args
    from tests.conftest import stage

    barrier.wait(timeout=120)  # both start at once
    got = stage("train", cfg, base=base, data=data, train=out, on_loss=_slow_loss)
    return got.computed, got.waited_s, got.manifest["train_time_s"]


def test_two_trials_with_one_train_key_started_at_once_train_once(tmp_path):
    from tests.unit.test_train_stage import _setup

    cfg, base, data = _setup(tmp_path, "llama", "lora")
    out = tmp_path / "stages" / "train" / "same-key"
    ctx = mp.get_context("spawn")
    with ctx.Manager() as m:
        barrier = m.Barrier(2)
        with ctx.Pool(2) as pool:
            got = pool.map(_train, [(cfg, base, data, out, barrier)] * 2)
    computed = [c for c, _, _ in got]
    assert sorted(computed) == [False, True], got  # exactly one trained
    waited = next(w for c, w, _ in got if not c)
    assert waited > 0.5  # the other waited for it, then reused its model
    assert got[0][2] == got[1][2]  # both report the one training's manifest
    assert json.loads((out / "metrics.json").read_text())["losses"]


def _claim(args):
    folder, barrier, log = args
    barrier.wait(timeout=60)
    with claim_stage(folder, "up") as stage:
        if stage.finished is None:
            with open(log, "a") as f:
                f.write("computed\n")
            time.sleep(1.0)
            (folder / "out.txt").write_text("x")
            write_manifest(folder, upstream="up", outputs=["out.txt"])
        return stage.output().computed


def test_many_claimants_one_computation(tmp_path):
    n, folder, log = 4, tmp_path / "stage", tmp_path / "log"
    ctx = mp.get_context("spawn")
    with ctx.Manager() as m:
        barrier = m.Barrier(n)
        with ctx.Pool(n) as pool:
            got = pool.map(_claim, [(folder, barrier, log)] * n)
    assert sorted(got) == [False] * (n - 1) + [True]
    assert log.read_text() == "computed\n"
    assert read_manifest(folder)["outputs"] == ["out.txt"]
