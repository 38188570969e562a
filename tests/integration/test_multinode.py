"""A sweep on a two-node Ray cluster (both nodes started with `ray start` on 127.0.0.1, told
apart by node labels), logging to the PostgreSQL-backed MLflow server: the full trial trains
with 2 DeepSpeed workers over gloo on the second node while the head-only and LoRA trials
run on the head node. Then the same sweep again, with the second node SIGKILLed while the full
trial trains: the trial is retried on a replacement node, continues from its checkpoint, and
the sweep ends with the results of the uninterrupted run."""

import json
import subprocess
import sys
import time

import pytest

from memlab.config.expand import load_study
from memlab.io.paths import stage_dir
from tests.conftest import ROOT
from tests.integration.conftest import SMOKE, RayCluster

SETS = [
    "resources.full.workers=2", "resources.full.labels={memlab-node: b}",
    "resources.head.labels={memlab-node: head}", "resources.lora.labels={memlab-node: head}",
    "train.threads=1", "train.epochs=30", "train.checkpoint_every=10", "sweep.max_failures=2",
]


@pytest.fixture(scope="module")
def cluster():
    c = RayCluster(cpus=3, labels="memlab-node=head")
    try:
        c.add_node("b", cpus=3, labels="memlab-node=b")
        yield c
    finally:
        c.stop()


def _node_ids(cluster) -> dict[str, str]:
    """memlab-node label -> Ray node id, for the nodes alive now."""
    import ray

    ray.init(address=cluster.address, logging_level="ERROR")
    try:
        return {n["Labels"]["memlab-node"]: n["NodeID"] for n in ray.nodes()
                if n["Alive"] and "memlab-node" in n.get("Labels", {})}
    finally:
        ray.shutdown()


def _sweep_cmd(name, runs, server):
    sets = SETS + [f"sweep.name={name}", f"sweep.runs_root={runs}",
                   f"tracking.uri={server['uri']}"]
    cmd = [sys.executable, "-m", "memlab.cli", "run", str(SMOKE)]
    for s in sets:
        cmd += ["--set", s]
    return cmd, load_study(SMOKE, sets)


def _results(study) -> dict:
    out = {}
    for t in study.trials:
        res = json.loads((study.root / t.key / "result.json").read_text())
        out[t.key] = {k: v for k, v in res["metrics"].items()
                      if k not in ("train_time_s", "train_tokens_per_s")}  # timings
    return out


@pytest.fixture(scope="module")
def reference(cluster, server, tmp_path_factory):
    runs = tmp_path_factory.mktemp("multinode")
    cmd, study = _sweep_cmd("multinode", runs, server)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1500,
                          env={**cluster.env, "RAY_ADDRESS": cluster.address})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    return {"study": study, "stdout": proc.stdout}


def _full_trial(study):
    (full,) = [t for t in study.trials if t.config.train.strategy == "full"]
    return full


@pytest.mark.slow  # ~4 min on 2 cores (CI runs it)
def test_sweep_spreads_over_two_nodes_and_logs_every_trial(cluster, server, reference):
    from mlflow.tracking import MlflowClient

    study = reference["study"]
    nodes = _node_ids(cluster)
    client = MlflowClient(tracking_uri=server["uri"])
    exp = client.get_experiment_by_name("multinode")
    children = client.search_runs([exp.experiment_id], "tags.`memlab.role` != 'sweep'")
    by_strategy = {r.data.tags["strategy"]: r for r in children}
    assert sorted(by_strategy) == ["full", "head", "lora"]
    for strategy, r in by_strategy.items():
        assert r.info.status == "FINISHED"
        assert r.data.tags["memlab.sweep_run_id"]
        assert {"exact_pct/member_dup4", "verbatim_pct/member", "heldout_ppl",
                "final_loss"} <= set(r.data.metrics)
        arts = {a.path for a in client.list_artifacts(r.info.run_id)}
        assert {"result.json", "config.json", "scores", "train", "plots"} <= arts
        want = nodes["b"] if strategy == "full" else nodes["head"]
        assert r.data.tags["ray.trial_node"] == want, strategy
    # the full trial: two Ray Train workers on the second node, one DeepSpeed group over gloo
    full = by_strategy["full"]
    assert full.data.tags["ray.train_worker_nodes"].split(",") == [nodes["b"]] * 2
    assert len(client.get_metric_history(full.info.run_id, "train_loss")) == 270  # rank 0, 30 x 9
    full_trial = _full_trial(study)
    man = json.loads((stage_dir(full_trial.config, "train", full_trial.keys.train) /
                      "_MANIFEST.json").read_text())
    assert man["workers"] == 2 and man["engine"] == "deepspeed-zero2"
    assert man["resumed_from_step"] == 0


@pytest.mark.slow  # ~5 min on 2 cores (CI runs it)
def test_second_node_killed_mid_trial_then_retried(cluster, server, reference,
                                                   tmp_path_factory):
    runs = tmp_path_factory.mktemp("multinode-kill")
    cmd, study = _sweep_cmd("multinode-kill", runs, server)
    full_trial = _full_trial(study)
    ckpt = stage_dir(full_trial.config, "train", full_trial.keys.train) / "ckpt" / "latest"
    log = open(runs / "driver.log", "w")
    driver = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                              env={**cluster.env, "RAY_ADDRESS": cluster.address})
    try:
        deadline = time.time() + 900
        while not ckpt.is_file() and driver.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert ckpt.is_file(), "the full trial never wrote a checkpoint"
        cluster.kill_node("b")  # mid-training: a checkpoint exists, the manifest does not
        assert not (ckpt.parent.parent / "_MANIFEST.json").exists()
        time.sleep(5)
        cluster.add_node("b", cpus=3, labels="memlab-node=b")  # the replacement node
        assert driver.wait(timeout=1500) == 0, (runs / "driver.log").read_text()[-5000:]
    finally:
        if driver.poll() is None:
            driver.kill()
    man = json.loads((ckpt.parent.parent / "_MANIFEST.json").read_text())
    assert man["resumed_from_step"] > 0  # continued from its checkpoint, not from scratch
    # every trial has its results, equal to those of the uninterrupted sweep
    assert _results(study) == _results(reference["study"])
