import socket
import subprocess

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


@pytest.fixture(scope="session")
def smoke_sweep(tmp_path_factory):
    """One uninterrupted CPU sweep of sweeps/smoke.yaml (the reference other tests compare to)."""
    runs = tmp_path_factory.mktemp("runs")
    cmd = memlab_exe() + ["run", str(SMOKE), "--set", f"sweep.runs_root={runs}"]
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    study = load_study(SMOKE, [f"sweep.runs_root={runs}"])
    return {"runs": runs, "cmd": cmd, "study": study, "stdout": first.stdout}
