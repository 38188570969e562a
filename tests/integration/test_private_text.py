"""Issue 19, acceptance 4: with tracking.log_text off (the default for local data), a secret
planted in every training document reaches no MLflow param, tag, metric or artifact, no printed
line and no Ray log, while the runs folder still holds what the stages need."""

import json
import subprocess
import time
from pathlib import Path

import pytest

from memlab.components.corpus import generate_demo_corpus
from tests.conftest import ROOT
from tests.integration.conftest import SMOKE, memlab_exe

SECRET = "QZX7-KESTREL-4417"


def _files_holding(root: Path, needle: bytes, since: float = 0.0) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.stat().st_mtime >= since
            and needle in p.read_bytes()]


@pytest.mark.slow  # one smoke sweep on local data: ~3 min on 2 cores
def test_a_secret_in_the_training_data_stays_in_the_runs_folder(tmp_path):
    docs = generate_demo_corpus(300, seed=0)
    data = tmp_path / "private.jsonl"
    data.write_text("".join(json.dumps({"id": d["doc_id"], "text": f"Patient code {SECRET}. "
                                        + d["text"]}) + "\n" for d in docs))
    runs, db = tmp_path / "runs", tmp_path / "mlflow.db"
    start = time.time() - 1
    out = subprocess.run(memlab_exe() + [
        "run", str(SMOKE), "--set", "data.source=local", "--set", f"data.path={data}",
        "--set", "data.id_field=id", "--set", f"sweep.runs_root={runs}",
        "--tracking-uri", f"sqlite:///{db}"], capture_output=True, text=True, cwd=ROOT,
        timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    secret = SECRET.encode()
    assert SECRET not in out.stdout + out.stderr
    assert secret not in db.read_bytes()  # params, tags, metrics, run names
    assert not _files_holding(runs / "mlartifacts", secret)
    assert (runs / "mlartifacts").is_dir() and any((runs / "mlartifacts").rglob("*.json"))
    ray_logs = [p for p in Path("/tmp/ray").glob("session_*/logs")] if \
        Path("/tmp/ray").is_dir() else []
    assert not [p for d in ray_logs for p in _files_holding(d, secret, since=start)]
    # the stages still have it: the dataset shards hold the training text
    assert _files_holding(runs / "stages" / "data", secret)
