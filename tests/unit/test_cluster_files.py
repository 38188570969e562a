"""cluster/: each file is valid for its tool, names what a memlab sweep needs, and starts its
nodes with the placement vocabulary (node label memlab/role) that sweeps/paper.yaml asks for."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from memlab.config.expand import load_study
from memlab.config.placement import matches, selectors
from memlab.sweep.cluster import from_file

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster"
PAPER = ROOT / "sweeps" / "paper.yaml"
ROLE = "memlab/role"


def paper_selectors() -> dict[str, dict]:
    """Every selector sweeps/paper.yaml's trials use, by where it applies."""
    out = {}
    for t in load_study(PAPER).trials:
        for what, sel in selectors(t.config).items():
            out[f"{t.config.train.strategy} {what}"] = sel
    return out


def test_ray_cluster_launcher_yaml_is_schema_valid():
    import jsonschema
    import ray.autoscaler

    cfg = yaml.safe_load((CLUSTER / "ray-cluster.yaml").read_text())
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(cfg, schema)  # raises on any violation
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] in types
    gpu_types = {n for n, t in types.items() if t["node_config"]["InstanceType"][0] in "pg"}
    assert {"gpu-full", "gpu-small"} <= gpu_types  # full FT nodes and LoRA/head nodes
    assert any("pip install" in c and "memlab" in c for c in cfg["setup_commands"])
    assert any("ray start --head" in c for c in cfg["head_start_ray_commands"])
    # placement: each GPU type starts its nodes with its role; the head runs no trial
    assert types["gpu-full"]["labels"] == {ROLE: "full"}
    assert types["gpu-small"]["labels"] == {ROLE: "small"}
    assert types[cfg["head_node_type"]]["resources"] == {"CPU": 0, "GPU": 0}
    assert not any(k.startswith("memlab_") for t in types.values() for k in t["resources"])


def test_kuberay_raycluster_and_rayjob():
    docs = list(yaml.safe_load_all((CLUSTER / "kuberay.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"RayCluster", "RayJob"}
    assert all(d["apiVersion"] == "ray.io/v1" for d in docs)
    for spec in (kinds["RayCluster"]["spec"], kinds["RayJob"]["spec"]["rayClusterSpec"]):
        assert spec["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]
        groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
        assert {g: groups[g]["labels"] for g in groups} == \
            {"gpu-full": {ROLE: "full"}, "gpu-small": {ROLE: "small"}}
        for g in groups.values():
            limits = g["template"]["spec"]["containers"][0]["resources"]["limits"]
            assert int(limits["nvidia.com/gpu"]) >= 1
            assert g["minReplicas"] <= g["replicas"] <= g["maxReplicas"]
    job = kinds["RayJob"]["spec"]
    entry = job["entrypoint"].split()
    assert entry[:2] == ["memlab", "run"] and (ROOT / entry[2]).is_file()
    assert "--resume" in entry  # a resubmitted (preempted) job continues
    assert entry[entry.index("--cluster") + 1] == "cluster/kuberay.yaml"
    yaml.safe_load(job["runtimeEnvYAML"])


def test_kuberay_groups_read_as_rays_autoscaler_reads_them():
    """memlab's reading of the RayCluster (labels, GPUs per group) is the KubeRay autoscaler's."""
    from ray.autoscaler._private.kuberay.autoscaling_config import (
        _derive_autoscaling_config_from_ray_cr,
    )

    docs = list(yaml.safe_load_all((CLUSTER / "kuberay.yaml").read_text()))
    (cluster,) = [d for d in docs if d["kind"] == "RayCluster"]
    # label selectors scale node groups up only under the autoscaler v2
    assert cluster["spec"]["enableInTreeAutoscaling"] is True
    assert cluster["spec"]["autoscalerOptions"]["version"] == "v2"
    for d in docs:  # the RayCluster, and the cluster each RayJob starts
        spec = d["spec"] if d["kind"] == "RayCluster" else d["spec"]["rayClusterSpec"]
        cr = {"kind": "RayCluster", "metadata": {"name": "memlab", "namespace": "default"},
              "spec": spec}
        ray_types = _derive_autoscaling_config_from_ray_cr(cr)["available_node_types"]
        ours = {k.name: k for k in from_file(CLUSTER / "kuberay.yaml")}
        assert len(ray_types) == 3, d["kind"]  # head, gpu-full, gpu-small
        for name, t in ray_types.items():
            name = "head" if name == "headgroup" else name
            assert ours[name].labels == t.get("labels", {}), (d["kind"], name)
            assert ours[name].gpus == t["resources"].get("GPU", 0), (d["kind"], name)


def _run_slurm(tmp_path: Path, restart: int, full_nodes: str | None) -> tuple[int, list[str]]:
    """cluster/slurm.sbatch under stand-ins for srun, scontrol and the venv's ray and memlab,
    which log what they are asked; returns the exit status and the log."""
    bin_, venv = tmp_path / "bin", tmp_path / "venv" / "bin"
    bin_.mkdir(exist_ok=True)
    venv.mkdir(parents=True, exist_ok=True)
    log = tmp_path / f"calls-{restart}.log"
    stubs = {
        bin_ / "scontrol": "echo nodeA; echo nodeB; echo nodeC",
        # srun -N1 -n1 -w HOST CMD...: run CMD "on" HOST
        bin_ / "srun": 'while [ "${1#-}" != "$1" ]; do [ "$1" = -w ] && { host=$2; shift; }; '
                       'shift; done; SLURMD_NODENAME=$host "$@"',
        bin_ / "hostname": "echo 10.0.0.1",
        venv / "ray": f'echo "$SLURMD_NODENAME ray $*" >> {log}',
        venv / "memlab": f'echo "memlab $* RAY_ADDRESS=$RAY_ADDRESS" >> {log}',
        venv / "python": f'cat > /dev/null; echo "joined $3 $4" >> {log}',  # the wait
    }
    for path, body in stubs.items():
        path.write_text(f"#!/usr/bin/env bash\n{body}\n")
        path.chmod(0o755)
    env = {"PATH": f"{bin_}:{os.environ['PATH']}", "MEMLAB_VENV": str(venv.parent),
           "SLURM_JOB_ID": "7", "SLURM_JOB_NODELIST": "node[A-C]",
           "SLURM_CPUS_PER_TASK": "64", "SLURM_GPUS_PER_NODE": "8",
           "SLURM_RESTART_COUNT": str(restart),
           **({"MEMLAB_FULL_NODES": full_nodes} if full_nodes is not None else {})}
    out = subprocess.run(["bash", str(CLUSTER / "slurm.sbatch"), "sweeps/paper.yaml",
                          "--tracking-uri", "http://mlflow:5000"],
                         capture_output=True, text=True, env=env, timeout=60)
    subprocess.run(["sleep", "0.5"])  # the backgrounded starts write their lines
    return out.returncode, sorted(log.read_text().splitlines()) if log.exists() else []


def test_slurm_script_gives_roles_and_a_requeued_job_keeps_them(tmp_path):
    script = CLUSTER / "slurm.sbatch"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    assert "#SBATCH --requeue" in text and ': "${MEMLAB_FULL_NODES:=' in text
    first = _run_slurm(tmp_path, 0, "1")
    assert first[0] == 0
    roles = {line.split()[0]: line.split("--labels=")[1].split()[0]
             for line in first[1] if " ray start " in line}
    assert roles == {"nodeA": f"{ROLE}=full", "nodeB": f"{ROLE}=small",
                     "nodeC": f"{ROLE}=small"}
    assert any(" start --head " in line for line in first[1] if line.startswith("nodeA"))
    # the sweep starts once the head, then all three nodes, have joined
    assert [x for x in first[1] if x.startswith("joined")] == ["joined 1 600", "joined 3 600"]
    (run,) = [line for line in first[1] if line.startswith("memlab ")]
    assert run == ("memlab run sweeps/paper.yaml --resume --tracking-uri http://mlflow:5000 "
                   "RAY_ADDRESS=10.0.0.1:6379")
    assert _run_slurm(tmp_path, 1, "1")[1] == first[1]  # requeued: the same roles, --resume
    # default: the first two nodes full; a role count the allocation cannot hold: exit 2
    assert sum(f"{ROLE}=full" in line for line in _run_slurm(tmp_path, 2, None)[1]) == 2
    assert _run_slurm(tmp_path, 3, "4")[0] == 2


def test_every_file_offers_the_placement_paper_yaml_asks_for():
    """One vocabulary: each selector of sweeps/paper.yaml is met by a node type of the
    launcher file, of each KubeRay cluster and by a role of the SLURM script."""
    slurm = (CLUSTER / "slurm.sbatch").read_text()
    assert f'--labels="{ROLE}=$(role' in slurm
    slurm_roles = [{ROLE: "full"}, {ROLE: "small"}]
    assert "echo full; else echo small" in slurm
    docs = list(yaml.safe_load_all((CLUSTER / "kuberay.yaml").read_text()))
    offers = {"ray-cluster.yaml": [k.labels for k in from_file(CLUSTER / "ray-cluster.yaml")],
              "slurm.sbatch": slurm_roles}
    for d in docs:
        spec = d["spec"] if d["kind"] == "RayCluster" else d["spec"]["rayClusterSpec"]
        offers[d["kind"]] = [g.get("labels", {}) for g in spec["workerGroupSpecs"]]
    sels = paper_selectors()
    assert sels["full trial"] == {ROLE: "full"} and sels["full actors"] == {ROLE: "small"}
    assert sels["lora trial"] == sels["head trial"] == sels["lora actors"] == {ROLE: "small"}
    for where, labels in offers.items():
        for what, sel in sels.items():
            assert sel and any(matches(sel, lab) for lab in labels), (where, what)


def _plan(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run([sys.executable, "-m", "memlab.cli", "plan", *args],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


@pytest.mark.parametrize("cluster", ["cluster/ray-cluster.yaml", "cluster/kuberay.yaml"])
def test_plan_accepts_the_paper_study_on_its_cluster_files(cluster):
    out = _plan(str(PAPER), "--cluster", cluster)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("override, key", [
    ("resources.lora.labels={memlab/role: tiny}", "resources.lora.labels"),
    ("resources.full.actor_labels={gpu: h100}", "resources.full.actor_labels"),
    ("resources.head.labels={memlab/role: full}", None),  # offered: accepted
    ("attack.actor_gpus=2", "attack.actor_gpus"),  # small nodes: 1 GPU
])
def test_plan_refuses_a_placement_the_cluster_file_lacks(override, key):
    """The smoke study with sweeps/paper.yaml's placement, then one key changed."""
    res = yaml.safe_load(PAPER.read_text())["resources"]
    sets = [f"resources.{s}.{k}={yaml.safe_dump(v, default_flow_style=True).strip()}"
            for s, r in res.items() if isinstance(r, dict)
            for k, v in r.items() if k in ("labels", "actor_labels")] + [override]
    out = _plan(str(ROOT / "sweeps" / "smoke.yaml"), "--cluster", "cluster/ray-cluster.yaml",
                *[a for s in sets for a in ("--set", s)])
    if key is None:
        assert out.returncode == 0, out.stderr
        return
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert lines[0].startswith(f"error: {key}") and "cluster/ray-cluster.yaml" in lines[0]


def test_plan_refuses_more_gpus_per_trial_than_a_node_has():
    # Llama-3.1-8B's full trials: 4 workers x 3 GPUs; the full nodes have 8
    out = _plan(str(PAPER), "--cluster", "cluster/ray-cluster.yaml", "--set",
                "resources.full.gpu=3")
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert lines[0].startswith("error: resources.full.gpu: 12 GPU per trial"), lines[0]


def test_cluster_option_refuses_a_file_that_is_no_cluster(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_text("a: 1\n")
    out = _plan(str(PAPER), "--cluster", str(bad))
    assert out.returncode == 2 and "neither a Ray cluster launcher" in out.stderr


def test_runtime_env_is_accepted_by_ray():
    from ray.runtime_env import RuntimeEnv

    env = yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text())
    RuntimeEnv(**env)
    assert env["working_dir"] == "." and "runs/" in env["excludes"]


def test_run_with_a_cluster_file_needs_the_clusters_address(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = subprocess.run([sys.executable, "-m", "memlab.cli", "run", "sweeps/smoke.yaml",
                          "--cluster", "cluster/ray-cluster.yaml", "--set",
                          f"sweep.runs_root={tmp_path}"],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 2 and "RAY_ADDRESS is not set" in out.stderr, out.stderr
    assert not (tmp_path / "smoke").exists()
