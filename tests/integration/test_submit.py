"""`memlab submit`: a study sent to a running Ray cluster (head started with `ray start` on
127.0.0.1, dashboard = job server) runs there as a Ray Job."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import RayCluster

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def ray_head():
    cluster = RayCluster(cpus=2)
    try:
        yield {"address": cluster.dashboard, "env": cluster.env}
    finally:
        cluster.stop()


def test_submit_runs_memlab_on_the_cluster(ray_head):
    out = subprocess.run(
        [sys.executable, "-m", "memlab.cli", "submit", "sweeps/smoke.yaml", "--address",
         ray_head["address"], "--command", "plan", "--wait"],
        capture_output=True, text=True, cwd=ROOT, env=ray_head["env"], timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "[memlab] submitted" in out.stdout and "SUCCEEDED" in out.stdout
    from memlab.config.expand import load_study

    for t in load_study(ROOT / "sweeps" / "smoke.yaml", []).trials:
        assert t.key in out.stdout  # the plan printed by the job, on the cluster


def test_submit_refuses_a_bad_study_before_submitting(ray_head):
    out = subprocess.run(
        [sys.executable, "-m", "memlab.cli", "submit", "sweeps/smoke.yaml", "--address",
         ray_head["address"], "--set", "train.bogus=1"],
        capture_output=True, text=True, cwd=ROOT, env=ray_head["env"], timeout=120)
    assert out.returncode == 2 and "train.bogus" in out.stderr
    assert "submitted" not in out.stdout


def test_submit_refuses_a_placement_the_cluster_lacks(ray_head):
    """The head has no memlab/role label and no GPU: refused before submitting, one line."""
    for sets in (["resources.lora.labels={memlab/role: small}"], ["resources.head.gpu=1"]):
        out = subprocess.run(
            [sys.executable, "-m", "memlab.cli", "submit", "sweeps/smoke.yaml", "--address",
             ray_head["address"], *[a for s in sets for a in ("--set", s)]],
            capture_output=True, text=True, cwd=ROOT, env=ray_head["env"], timeout=120)
        key = sets[0].split("=")[0]
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: {key}"), \
            out.stderr
        assert "submitted" not in out.stdout
