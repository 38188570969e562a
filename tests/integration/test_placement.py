"""Placement on a cluster started as cluster/ray-cluster.yaml declares it: one node per node
type on 127.0.0.1, each started with what the cluster launcher gives its `ray start` (the node
type's `resources` and `labels`, as RAY_OVERRIDE_RESOURCES / RAY_OVERRIDE_LABELS, read from the
YAML); each worker node gets 3 of this machine's CPUs (on AWS the launcher detects them from
the instance type). The smoke sweep with the placement of sweeps/paper.yaml runs there: full
fine-tuning's train workers on the full-type node, LoRA / head-only trials and every
generation and scoring actor on the small-type node. Studies asking for a label or for more
GPUs than the nodes have are refused by `memlab run` and `memlab plan --address` (exit 2)."""

import json
import subprocess
import sys

import pytest
import yaml

from tests.conftest import ROOT, SWEEPS
from tests.integration.conftest import SMOKE, RayCluster

LAUNCHER = ROOT / "cluster" / "ray-cluster.yaml"
WORKER_CPUS = 3


def launcher_env(node_type: dict) -> dict:
    """What the cluster launcher sets for a node type's `ray start` (autoscaler updater)."""
    env = {}
    if node_type.get("resources"):
        env["RAY_OVERRIDE_RESOURCES"] = json.dumps(node_type["resources"])
    if node_type.get("labels"):
        env["RAY_OVERRIDE_LABELS"] = json.dumps(node_type["labels"])
    return env


def paper_placement() -> list[str]:
    """sweeps/paper.yaml's placement keys (resources.<strategy>.labels / .actor_labels) as
    --set overrides."""
    res = yaml.safe_load((SWEEPS / "paper.yaml").read_text())["resources"]
    sets = [f"resources.{s}.{k}={yaml.safe_dump(v, default_flow_style=True).strip()}"
            for s, r in res.items() if isinstance(r, dict)
            for k, v in r.items() if k in ("labels", "actor_labels")]
    assert len(sets) == 4, sets  # full: labels + actor_labels; head, lora: labels
    return sets


@pytest.fixture(scope="module")
def cluster():
    cfg = yaml.safe_load(LAUNCHER.read_text())
    types, head = cfg["available_node_types"], cfg["head_node_type"]
    c = RayCluster(cpus=WORKER_CPUS, env=launcher_env(types[head]))
    try:
        for name, t in types.items():
            if name != head:
                c.add_node(name, cpus=WORKER_CPUS, env=launcher_env(t))
        yield c, types
    finally:
        c.stop()


def _nodes(c) -> dict[str, dict]:
    """Ray node id -> its labels and resources, for the nodes alive now."""
    import ray

    ray.init(address=c.address, logging_level="ERROR")
    try:
        return {n["NodeID"]: {"labels": n["Labels"], "resources": n["Resources"]}
                for n in ray.nodes() if n["Alive"]}
    finally:
        ray.shutdown()


def _memlab(c, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "memlab.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=1500,
                          env={**c.env, "RAY_ADDRESS": c.address})


@pytest.mark.slow  # ~4 min on 2 cores (CI runs it)
def test_paper_placement_lands_on_the_node_types_built_for_it(cluster, tmp_path):
    from mlflow.tracking import MlflowClient

    c, types = cluster
    nodes = _nodes(c)
    role = {t["labels"]["memlab/role"]: t for t in types.values() if t.get("labels")}
    assert set(role) == {"full", "small"}
    node_of = {r: [n for n, v in nodes.items() if v["labels"].get("memlab/role") == r]
               for r in role}
    assert all(len(ids) == 1 for ids in node_of.values()), nodes  # one node per type
    full_node, small_node = node_of["full"][0], node_of["small"][0]
    # each node as the launcher declares it: its type's labels and GPUs, no CPU on the head
    for r, t in role.items():
        assert nodes[node_of[r][0]]["resources"].get("GPU") == t["resources"]["GPU"]
    (head_id,) = [n for n in nodes if n not in (full_node, small_node)]
    assert nodes[head_id]["resources"].get("CPU", 0) == 0

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    out = _memlab(c, "run", str(SMOKE), *[a for s in paper_placement() + [
        f"sweep.runs_root={tmp_path}", f"tracking.uri={uri}", "sweep.name=placement"]
        for a in ("--set", s)])
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-4000:]

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("placement")
    runs = client.search_runs([exp.experiment_id], "tags.`memlab.role` != 'sweep'")
    by = {r.data.tags["strategy"]: r.data.tags for r in runs}
    assert sorted(by) == ["full", "head", "lora"]
    # full fine-tuning: its Ray Train worker (DeepSpeed on CPU) on the full-type node
    assert by["full"]["ray.train_worker_nodes"].split(",") == [full_node]
    assert by["full"]["ray.trial_node"] == full_node
    for strategy in ("head", "lora"):
        assert by[strategy]["ray.trial_node"] == small_node, strategy
    for strategy, tags in by.items():  # every generation, base-model and scoring actor
        assert tags["ray.actor_nodes"].split(",") == [small_node], strategy


@pytest.mark.slow  # needs the cluster above (~40 s to start)
@pytest.mark.parametrize("override, key", [
    ("resources.lora.labels={memlab/role: huge}", "resources.lora.labels"),
    ("resources.full.actor_labels={memlab/role: big}", "resources.full.actor_labels"),
    ("resources.lora.gpu=2", "resources.lora.gpu"),  # the small type has 1 GPU
])
def test_live_cluster_refuses_what_its_nodes_do_not_offer(cluster, tmp_path, override, key):
    c, _ = cluster
    sets = [*paper_placement(), override, f"sweep.runs_root={tmp_path}"]
    args = [a for s in sets for a in ("--set", s)]
    for cmd in (["run", str(SMOKE)], ["plan", str(SMOKE)]):
        out = _memlab(c, *cmd, *args)
        assert out.returncode == 2, (cmd, out.stdout[-2000:], out.stderr[-3000:])
        # one error line (`run` says where its defaults came from first: a status line)
        lines = [x for x in out.stderr.strip().splitlines() if not x.startswith("[memlab] ")]
        assert len(lines) == 1 and lines[0].startswith(f"error: {key}"), (cmd, out.stderr)
    assert not (tmp_path / "smoke").exists()  # nothing started: no sweep folder
