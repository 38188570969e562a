import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = ROOT / "sweeps"

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def memlab_cmd():
    """Run the CLI as a user would, in a subprocess."""
    return [sys.executable, "-m", "memlab.cli"]
