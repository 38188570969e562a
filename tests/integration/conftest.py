import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from memlab.config.expand import load_study
from tests.conftest import ROOT, SWEEPS

SMOKE = SWEEPS / "smoke.yaml"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for servers the tests start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memlab_exe() -> list[str]:
    exe = ROOT / ".venv" / "bin" / "memlab"
    return [str(exe)] if exe.exists() else ["memlab"]


def run_sweep(study_file: Path, runs: Path, sets: list[str] = ()) -> dict:
    """`memlab run` of a study file into the runs root `runs` (with `--set` overrides), from
    the repository root (study files may name fixture paths relative to it); fails the test if
    it does not exit 0."""
    cmd = memlab_exe() + ["run", str(study_file), "--set", f"sweep.runs_root={runs}",
                          *(a for s in sets for a in ("--set", s))]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    with contextlib.chdir(ROOT):
        study = load_study(study_file, [f"sweep.runs_root={runs}", *sets])
    return {"runs": runs, "cmd": cmd, "study": study, "stdout": out.stdout,
            "stderr": out.stderr}


@pytest.fixture(scope="session")
def smoke_sweep(tmp_path_factory):
    """One uninterrupted CPU sweep of sweeps/smoke.yaml (the reference other tests compare to)."""
    return run_sweep(SMOKE, tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def server():
    """A real MLflow tracking server on PostgreSQL, started with infra/mlflow/start-local.sh."""
    state = Path(tempfile.mkdtemp(prefix="memlab-mlflow-"))
    state.chmod(0o755)  # PostgreSQL runs as its own user when the tests run as root
    env = {**os.environ, "MLFLOW": str(Path(sys.executable).parent / "mlflow")}
    pg_port = free_port()
    start = subprocess.run([str(ROOT / "infra/mlflow/start-local.sh"), str(state),
                            str(free_port()), str(pg_port)],
                           capture_output=True, text=True, env=env, timeout=300)
    assert start.returncode == 0, f"start-local.sh failed:\n{start.stderr[-3000:]}"
    try:
        yield {"uri": start.stdout.strip().splitlines()[-1], "state": state, "pg_port": pg_port}
    finally:
        subprocess.run([str(ROOT / "infra/mlflow/stop-local.sh"), str(state)], timeout=120)
        shutil.rmtree(state, ignore_errors=True)


class RayCluster:
    """A Ray cluster of real nodes started with `ray start` on 127.0.0.1. Stops only its own
    processes (`ray stop` would stop every Ray on the machine)."""

    def __init__(self, cpus: int = 2, labels: str = "", env: dict | None = None):
        self.bin = Path(sys.executable).parent
        self.tmp = tempfile.mkdtemp(prefix="memlab-ray-")
        self.port, self.dash = free_port(), free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.dashboard = f"http://127.0.0.1:{self.dash}"
        self.env = {**os.environ, "PATH": f"{self.bin}:{os.environ['PATH']}",
                    "RAY_AUTH_MODE": "disabled"}
        self.nodes: dict[str, int] = {}  # name -> node manager port
        self._start("head", ["--head", f"--port={self.port}", "--dashboard-host=127.0.0.1",
                             f"--dashboard-port={self.dash}", "--include-dashboard=true",
                             f"--temp-dir={self.tmp}"], cpus, labels, env)

    def _start(self, name: str, args: list[str], cpus: int, labels: str,
               env: dict | None = None) -> None:
        """`ray start` of one node; `env` adds environment variables of its own (e.g. the
        RAY_OVERRIDE_RESOURCES / RAY_OVERRIDE_LABELS a cluster launcher sets)."""
        nm = free_port()
        out = subprocess.run(
            [str(self.bin / "ray"), "start", "--node-ip-address=127.0.0.1", *args,
             f"--num-cpus={cpus}", f"--node-manager-port={nm}", "--disable-usage-stats",
             *([f"--labels={labels}"] if labels else [])],
            capture_output=True, text=True, env={**self.env, **(env or {})}, timeout=180)
        assert out.returncode == 0, out.stderr[-3000:]
        self.nodes[name] = nm

    def add_node(self, name: str, cpus: int, labels: str = "", env: dict | None = None) -> None:
        self._start(name, [f"--address={self.address}"], cpus, labels, env)

    def _pids(self, pattern: str) -> list[str]:
        return subprocess.run(["pgrep", "-f", pattern], capture_output=True,
                              text=True).stdout.split()

    def _kill_tree(self, pids: list[str]) -> None:
        for pid in pids:
            subprocess.run(["pkill", "-KILL", "-P", pid])
            subprocess.run(["kill", "-KILL", pid], capture_output=True)

    def kill_node(self, name: str) -> None:
        """SIGKILL a node's raylet and everything it started (its workers, its agents)."""
        raylets = self._pids(f"raylet.*--node_manager_port={self.nodes.pop(name)}( |$)")
        assert raylets, f"no raylet of node {name}"
        self._kill_tree(raylets)

    def stop(self) -> None:
        self._kill_tree(self._pids(f"{self.tmp}|:{self.port}( |$)"))
        shutil.rmtree(self.tmp, ignore_errors=True)


@contextlib.contextmanager
def chromium(width: int = 1600, height: int = 1000):
    """Headless Chromium driven by Selenium (Debian's chromium and chromium-driver: .ci/run
    installs them)."""
    chromedriver = shutil.which("chromedriver")
    assert chromedriver, "needs Chromium and its driver: apt-get install chromium chromium-driver"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(chromedriver), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
