import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = ROOT / "sweeps"

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# No NVIDIA driver: Triton kernels (the engine's decode attention) can only run on Triton's CPU
# interpreter, and the mode is fixed when triton is first imported, so set it before anything.
if shutil.which("nvidia-smi") is None:
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture
def memlab_cmd():
    """Run the CLI as a user would, in a subprocess."""
    return [sys.executable, "-m", "memlab.cli"]


def stage(name: str, cfg, *, base=None, **kw):
    """One stage of the chain through memlab's runner, into folders a test lays out itself:
    keyword arguments named after stages are their folders (data=..., train=...), the others
    go to the trial context (on_loss=..., threads=...)."""
    from memlab.config.chain import STAGES
    from memlab.stages.runner import run_stage
    from memlab.stages.work import TrialContext

    dirs = {k: Path(v) for k, v in kw.items() if k in STAGES}
    rest = {k: v for k, v in kw.items() if k not in STAGES}
    return run_stage(TrialContext(cfg, dirs, base_model=base, **rest), name)
