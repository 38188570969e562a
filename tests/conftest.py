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
