"""Tracking never loses computed work. The PostgreSQL-backed MLflow server of infra/ is stopped
mid-sweep: every trial's stages finish and their results are on disk, the sweep names the
trials it could not log, and with the server back `memlab run --resume` logs them without
rerunning a stage. A sweep tracking to an MLflow file store (`--tracking-uri file:<dir>`)
completes: every metric name is one the file store takes."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from memlab.config.expand import load_study
from tests.conftest import ROOT
from tests.integration.conftest import SMOKE, memlab_exe
from tests.integration.test_faults import _finished_files


def _server_script(name, server, *args):
    env = {**os.environ, "MLFLOW": str(Path(sys.executable).parent / "mlflow")}
    out = subprocess.run([str(ROOT / "infra" / "mlflow" / name), str(server["state"]), *args],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]


@pytest.mark.slow  # a smoke sweep and a resume: ~4 min on 2 cores (CI runs it)
def test_server_stopped_mid_sweep_then_resume_logs_without_rerunning(server, tmp_path):
    runs = tmp_path / "runs"
    sets = [f"sweep.runs_root={runs}", "sweep.name=outage", f"tracking.uri={server['uri']}",
            "tracking.retry_s=3"]
    cmd = memlab_exe() + ["run", str(SMOKE)] + [a for s in sets for a in ("--set", s)]
    study = load_study(SMOKE, sets)
    log = open(tmp_path / "first.log", "w")
    driver = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    root = runs / "outage"
    deadline = time.time() + 900
    while time.time() < deadline and driver.poll() is None:
        if list(root.glob("*/logged.json")):  # one trial is finished and logged: stop it all
            break
        time.sleep(0.2)
    assert driver.poll() is None, "the sweep ended before the server could be stopped"
    _server_script("stop-local.sh", server)
    assert driver.wait(timeout=900) == 1
    log.close()
    out = (tmp_path / "first.log").read_text()
    logged = {p.parent.name for p in root.glob("*/logged.json")}
    assert 1 <= len(logged) < len(study.trials)
    for t in study.trials:  # every trial computed all its stages, results on disk
        assert (root / t.key / "result.json").is_file(), out[-3000:]
        for stage in ("train", "gen", "score"):
            assert (runs / "stages" / stage / getattr(t.keys, stage) / "_MANIFEST.json").is_file()
    unlogged = [t.name for t in study.trials if t.key not in logged]
    line = next(x for x in out.splitlines() if "finished but are not logged" in x)
    assert all(n in line for n in unlogged) and "--resume" in line
    finished = _finished_files(runs)

    _server_script("start-local.sh", server, str(urlparse(server["uri"]).port),
                   str(server["pg_port"]))
    again = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, cwd=ROOT,
                           timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    after = _finished_files(runs)
    assert {p for p, t in finished.items() if after.get(p) != t} == set()  # no stage rerun
    assert " computed" not in again.stdout + again.stderr
    assert {p.parent.name for p in root.glob("*/logged.json")} == {t.key for t in study.trials}

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=server["uri"])
    exp = client.get_experiment_by_name("outage")
    runs_ = client.search_runs([exp.experiment_id], "tags.`memlab.role` = 'trial'")
    assert sorted(r.data.tags["trial_key"] for r in runs_) == sorted(t.key for t in study.trials)
    for r in runs_:
        assert r.info.status == "FINISHED"
        result = json.loads((root / r.data.tags["trial_key"] / "result.json").read_text())
        assert r.data.metrics["exact_pct/member_dup4"] == \
            result["metrics"]["exact_pct/member_dup4"]
        steps = [m.step for m in client.get_metric_history(r.info.run_id, "train_loss")]
        assert sorted(steps) == list(range(9))  # the whole curve, each step once
        arts = {a.path for a in client.list_artifacts(r.info.run_id)}
        assert {"config.json", "result.json", "scores", "train", "plots"} <= arts
    (parent,) = client.search_runs([exp.experiment_id], "tags.`memlab.role` = 'sweep'")
    assert parent.info.status == "FINISHED"


@pytest.mark.slow  # a whole smoke sweep: ~2 min on 2 cores (CI runs it)
def test_a_sweep_tracking_to_an_mlflow_file_store_completes(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)  # memlab sets it itself

    store = tmp_path / "file-store"
    cmd = memlab_exe() + ["run", str(SMOKE), "--set", f"sweep.runs_root={tmp_path / 'runs'}",
                          "--set", "sweep.name=file-store", "--tracking-uri", f"file:{store}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # (for this test's own client)
    client = MlflowClient(tracking_uri=store.as_uri())
    exp = client.get_experiment_by_name("file-store")
    runs = client.search_runs([exp.experiment_id], "tags.`memlab.role` = 'trial'")
    assert len(runs) == 3
    for r in runs:
        assert r.info.status == "FINISHED"
        assert {"exact_pct/member", "exact_pct/member_dup1", "exact_pct/nonmember",
                "sim_src_ge_0.8_pct/member_dup4", "heldout_ppl"} <= set(r.data.metrics)
        steps = [m.step for m in client.get_metric_history(r.info.run_id, "train_loss")]
        assert sorted(steps) == list(range(9))  # logged live as it trained, each step once
