import os
from pathlib import Path

import pyarrow as pa
import pytest

from memlab.io.shards import (
    DATASET_SCHEMA,
    SchemaError,
    is_done,
    read_manifest,
    read_shards,
    write_manifest,
    write_shard,
)


def _table(n=3):
    return pa.table({"doc_id": [f"d{i}" for i in range(n)], "text": ["t"] * n,
                     "split": ["member"] * n, "dup_count": pa.array([1] * n, pa.int32())})


def test_write_is_atomic_and_validated(tmp_path):
    dst = tmp_path / "part-00000.parquet"
    write_shard(_table(), dst, DATASET_SCHEMA)
    assert is_done(dst)
    assert os.listdir(tmp_path) == ["part-00000.parquet"]  # no .tmp left behind
    bad = _table().drop(["dup_count"])
    with pytest.raises(SchemaError):
        write_shard(bad, tmp_path / "part-00001.parquet", DATASET_SCHEMA)
    assert not is_done(tmp_path / "part-00001.parquet")


def test_partial_shard_is_not_done(tmp_path):
    # a crash mid-write leaves only the .tmp file: the shard counts as not done and readers
    # never see it
    (tmp_path / "part-00000.parquet.tmp").write_bytes(b"PAR1 truncated")
    assert not is_done(tmp_path / "part-00000.parquet")
    write_shard(_table(2), tmp_path / "part-00001.parquet", DATASET_SCHEMA)
    assert read_shards(tmp_path, DATASET_SCHEMA).num_rows == 2


def test_manifest_written_last_marks_stage_done(tmp_path):
    assert read_manifest(tmp_path) is None
    write_manifest(tmp_path, rows=3, shards=1)
    assert read_manifest(tmp_path) == {"rows": 3, "shards": 1}


def test_finished_shards_are_skipped_without_work(tmp_path):
    from memlab.config.schema import StudyConfig
    from memlab.stages.actors import run_on_actors

    dst = tmp_path / "out" / "part-00000.parquet"
    write_shard(_table(4), dst, DATASET_SCHEMA)
    before = dst.stat().st_mtime_ns

    def boom(*a):  # would fail if anything were scheduled
        raise AssertionError("a finished shard was redone")

    rows = run_on_actors(_shards(boom, boom), {}, [(tmp_path / "src.parquet", dst)],
                         StudyConfig())
    assert rows == 4
    assert dst.stat().st_mtime_ns == before


def test_stage_built_from_another_upstream_is_dropped(tmp_path):
    from memlab.io.shards import begin_stage

    assert begin_stage(tmp_path, "up-1") is None  # new stage
    write_shard(_table(2), tmp_path / "part-00000.parquet", DATASET_SCHEMA)
    assert begin_stage(tmp_path, "up-1") is None  # unfinished: its shard is kept
    assert is_done(tmp_path / "part-00000.parquet")
    write_manifest(tmp_path, upstream="up-1", outputs=["part-00000.parquet"])
    assert begin_stage(tmp_path, "up-1")["upstream"] == "up-1"  # finished
    (tmp_path / "part-00000.parquet").unlink()  # an output went missing: not done any more
    assert begin_stage(tmp_path, "up-1") is None
    write_shard(_table(2), tmp_path / "part-00000.parquet", DATASET_SCHEMA)
    write_manifest(tmp_path, upstream="up-1", outputs=["part-00000.parquet"])
    assert begin_stage(tmp_path, "up-2") is None  # upstream changed: everything is stale
    assert not is_done(tmp_path / "part-00000.parquet")
    assert read_manifest(tmp_path) is None


def test_actor_pools_fit_the_actor_cpus(monkeypatch):
    """A shard actor sizes inductor's compile pool to its CPUs (not one process per core of
    the node); a setting already in the environment is kept."""
    import torch._inductor.config as ic

    from memlab.components.loaded import fit_threads

    monkeypatch.setenv("TORCHINDUCTOR_COMPILE_THREADS", "")  # restored after the test
    monkeypatch.delenv("TORCHINDUCTOR_COMPILE_THREADS")
    monkeypatch.setattr(ic, "compile_threads", 32)
    fit_threads(4.0)
    assert os.environ["TORCHINDUCTOR_COMPILE_THREADS"] == "4" and ic.compile_threads == 4
    monkeypatch.delenv("TORCHINDUCTOR_COMPILE_THREADS")
    fit_threads(0.5)  # a fraction of a CPU: one (no compile pool at all)
    assert os.environ["TORCHINDUCTOR_COMPILE_THREADS"] == "1" and ic.compile_threads == 1
    monkeypatch.setenv("TORCHINDUCTOR_COMPILE_THREADS", "8")
    fit_threads(2.0)
    assert os.environ["TORCHINDUCTOR_COMPILE_THREADS"] == "8" and ic.compile_threads == 1


def _shards(load, run, calls: int = 1):
    from memlab.stages.work import Shards

    return Shards(source="data", desc="x", args=lambda ctx: {}, load=load, run=run, calls=calls)


def _one_at_a_time(state, lock, args, src, dst):
    """A shard that takes 1 s (with `state`, a barrier: waits for a second one to run beside
    it, failing after 60 s alone) and leaves (pid, start, end) next to it."""
    import json
    import time

    t0 = time.time()
    if state is None:
        time.sleep(1.0)
    else:
        state.wait()
    write_shard(_table(2), dst, DATASET_SCHEMA)
    Path(dst).with_suffix(".json").write_text(json.dumps([os.getpid(), t0, time.time()]))
    return 2


def _pair(args):
    import threading

    return threading.Barrier(2, timeout=60)


def test_a_gpu_actor_takes_CALLS_shards_at_once(tmp_path):
    """Shards.calls (the generate stage's: 2): with a GPU, one actor runs that many shards
    concurrently (the engine's host work overlaps the device's); with calls 1 (or without a
    GPU) an actor runs one shard at a time."""
    import json

    import ray

    from memlab.config.schema import StudyConfig
    from memlab.stages.actors import run_on_actors
    from memlab.stages.generate import WORK

    assert WORK.shards.calls > 1
    cfg = StudyConfig()
    cfg.attack.actors, cfg.attack.actor_gpus = 1, 1.0
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False)  # a logical GPU: no device used
    try:
        for name, shards, gpus, overlap in (
                ("two", _shards(_pair, _one_at_a_time, 2), 1.0, True),
                ("one", _shards(lambda a: None, _one_at_a_time), 1.0, False),
                ("two-no-gpu", _shards(lambda a: None, _one_at_a_time, 2), 0.0, False)):
            cfg.attack.actor_gpus = gpus
            out = tmp_path / name
            jobs = [(tmp_path / f"src{i}", out / f"part-{i:05d}.parquet") for i in range(4)]
            assert run_on_actors(shards, {}, jobs, cfg) == 8
            spans = sorted(json.loads(d.with_suffix(".json").read_text()) for _, d in jobs)
            assert len({pid for pid, *_ in spans}) == 1  # one actor
            times = sorted((t0, t1) for _, t0, t1 in spans)
            assert any(b[0] < a[1] for a, b in zip(times, times[1:])) == overlap, times
    finally:
        ray.shutdown()
