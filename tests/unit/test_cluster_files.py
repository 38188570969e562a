"""cluster/: each file is valid for its tool and names what a memlab sweep needs."""

import json
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster"


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


def test_kuberay_raycluster_and_rayjob():
    docs = list(yaml.safe_load_all((CLUSTER / "kuberay.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"RayCluster", "RayJob"}
    assert all(d["apiVersion"] == "ray.io/v1" for d in docs)
    for spec in (kinds["RayCluster"]["spec"], kinds["RayJob"]["spec"]["rayClusterSpec"]):
        assert spec["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]
        groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
        assert "gpu-full" in groups
        for g in groups.values():
            limits = g["template"]["spec"]["containers"][0]["resources"]["limits"]
            assert int(limits["nvidia.com/gpu"]) >= 1
            assert g["minReplicas"] <= g["replicas"] <= g["maxReplicas"]
    job = kinds["RayJob"]["spec"]
    entry = job["entrypoint"].split()
    assert entry[:2] == ["memlab", "run"] and (ROOT / entry[2]).is_file()
    assert "--resume" in entry  # a resubmitted (preempted) job continues
    yaml.safe_load(job["runtimeEnvYAML"])


def test_slurm_script_starts_head_and_workers_then_the_sweep():
    script = CLUSTER / "slurm.sbatch"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    assert "#SBATCH --nodes=" in text and "#SBATCH --gpus-per-node=" in text
    assert "ray\" start --head" in text and "ray\" start --address" in text
    assert "memlab\" run \"$study\" --resume" in text


def test_runtime_env_is_accepted_by_ray():
    from ray.runtime_env import RuntimeEnv

    env = yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text())
    RuntimeEnv(**env)
    assert env["working_dir"] == "." and "runs/" in env["excludes"]
