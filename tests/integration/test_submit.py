"""`memlab submit`: a study sent to a running Ray cluster (head started with `ray start` on
127.0.0.1, dashboard = job server) runs there as a Ray Job."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.integration.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def ray_head():
    tmp = tempfile.mkdtemp(prefix="memlab-ray-")
    dash, port = free_port(), free_port()
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "disabled"}
    start = subprocess.run(
        [str(BIN / "ray"), "start", "--head", "--node-ip-address=127.0.0.1",
         f"--port={port}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
         "--include-dashboard=true", "--num-cpus=2", f"--temp-dir={tmp}",
         "--disable-usage-stats"], capture_output=True, text=True, env=env, timeout=180)
    assert start.returncode == 0, start.stderr[-3000:]
    try:
        yield {"address": f"http://127.0.0.1:{dash}", "env": env}
    finally:
        # only this cluster's processes (`ray stop` would stop every Ray on the machine):
        # those naming its temp dir or port, and their children
        pids = subprocess.run(["pgrep", "-f", f"{tmp}|:{port}( |$)"], capture_output=True,
                              text=True).stdout.split()
        for pid in pids:
            subprocess.run(["pkill", "-KILL", "-P", pid])
            subprocess.run(["kill", "-KILL", pid], capture_output=True)


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
