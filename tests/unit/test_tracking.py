"""Tracking never decides whether work is done: its calls are retried within a budget and then
fail with one clear error; metric names suit every MLflow store; a loss curve is logged once."""

import shutil
import socket
import subprocess
import time

import pyarrow as pa
import pytest

from memlab.io.shards import flat_metrics
from memlab.tracking.mlflow_log import Client, TrackedRun, TrackingError
from tests.conftest import ROOT, SWEEPS


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def test_an_unreachable_server_fails_within_the_retry_budget():
    client = Client(f"http://127.0.0.1:{_closed_port()}", retry_s=2)
    t0 = time.time()
    with pytest.raises(TrackingError, match="get_experiment_by_name failed"):
        client.call("get_experiment_by_name", "x")
    assert 1.5 <= time.time() - t0 < 30  # retried with backoff for ~2 s, then gave up


def test_a_sweep_whose_server_is_unreachable_stops_before_computing(memlab_cmd, tmp_path):
    r = subprocess.run([*memlab_cmd, "run", str(SWEEPS / "smoke.yaml"),
                        "--set", f"sweep.runs_root={tmp_path}",
                        "--set", f"tracking.uri=http://127.0.0.1:{_closed_port()}",
                        "--set", "tracking.retry_s=1"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: tracking: MLflow at http://")
    assert not (tmp_path / "stages").exists()  # nothing was computed


def test_metric_names_never_contain_one_another_as_a_folder():
    """MLflow's file store keeps a metric as a file named by it: 'a/b' and 'a/b/c' cannot
    both exist (measured on main before: exact_pct/member and exact_pct/member/dup1)."""
    rows = [{"split": s, "dup_count": d, "metric": m, "value": 1.0}
            for s, d in (("member", -1), ("member", 1), ("member", 4), ("nonmember", -1))
            for m in ("exact_pct", "sim_src_ge_0.8_pct", "ppl")]
    names = set(flat_metrics(pa.Table.from_pylist(rows)))
    assert "exact_pct/member_dup4" in names and "heldout_ppl" in names
    assert not [(a, b) for a in names for b in names if b.startswith(a + "/")]


def test_a_loss_curve_is_logged_once_whatever_was_logged_live(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = Client(uri, retry_s=5)
    exp = client.call("create_experiment", "e")
    run = TrackedRun(client, client.call("create_run", exp).info.run_id)
    for step in (0, 1, 3):  # live logging got some steps before it stopped
        client.call("log_metric", run.run_id, "train_loss", 9.0, step=step)
    assert run.log_history("train_loss", [5.0, 4.0, 3.0, 2.0, 1.0]) == 2
    assert run.log_history("train_loss", [5.0, 4.0, 3.0, 2.0, 1.0]) == 0  # again: nothing
    steps = sorted(m.step for m in client.call("get_metric_history", run.run_id, "train_loss"))
    assert steps == [0, 1, 2, 3, 4]


def test_system_metrics_are_logged_on_the_run_while_the_block_runs(tmp_path):
    """tracking.system_metrics=on: MLflow's monitor samples this node (CPU, memory, disk; the
    GPUs where NVML sees one) into system/... metrics of the trial's run; auto is off here."""

    from memlab.tracking.mlflow_log import system_metrics, system_metrics_on

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = Client(uri, retry_s=5)
    run_id = client.call("create_run", client.call("create_experiment", "e")).info.run_id
    with system_metrics(uri, run_id, every_s=0.2):
        time.sleep(2.5)
    got = client.call("get_run", run_id).data.metrics
    assert "system/cpu_utilization_percentage" in got and "system/system_memory_usage_megabytes" \
        in got
    with system_metrics(uri, None, every_s=0.2):  # (no run: nothing started)
        pass
    assert system_metrics_on("on") and not system_metrics_on("off")
    assert system_metrics_on("auto") == (shutil.which("nvidia-smi") is not None)


def test_headline_metrics_and_memorization_against_duplication():
    from memlab.tracking import desk

    m = {"exact_pct/member": 12.3456, "exact_pct/nonmember": 0.0, "exact_pct/member_dup4": 40.0,
         "exact_pct/member_dup1": 2.5, "exact_pct/member_dup16": 90.0,
         "sim_src_ge_0.7_pct/member": 50.0, "sim_src_ge_0.7_pct/member_dup1": 5.0,
         "sim_src_ge_0.8_pct/member": 40.0, "sim_src_ge_0.8_pct/member_dup1": 4.0,
         "auc_loss/member": 0.91234, "heldout_ppl": 20.004}
    assert desk.headline_metrics(m, 0.7) == {"exact_member": 12.35, "exact_floor": 0.0,
                                             "sim_member": 50.0, "mia_auc": 0.912}
    # (heldout_ppl is a headline column under its own name: never replaced by a rounded copy)
    assert desk.headline_metrics(m, 0.8)["sim_member"] == 40.0  # the study's threshold only
    assert desk.headline_metrics({**m, "auc_ref/member": 0.5}, 0.8)["mia_auc"] == 0.5
    assert desk.vs_dup(m, 0.8) == {"vs_dup/exact_member": [(1, 2.5), (4, 40.0), (16, 90.0)],
                                   "vs_dup/sim_member": [(1, 4.0)]}


@pytest.mark.parametrize("raw, logged", [
    ("postgresql://memlab:s3cr3t@127.0.0.1:5432/mlflow",
     "postgresql://memlab:***@127.0.0.1:5432/mlflow"),
    ("https://user:pw@mlflow.example.org/?api_key=abc123&view=1",
     "https://user:***@mlflow.example.org/?api_key=***&view=1"),
    ("s3://bucket/run?X-Amz-Signature=f00d&X-Amz-Credential=AKIA",
     "s3://bucket/run?X-Amz-Signature=***&X-Amz-Credential=***"),
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("https://ghp_abcdef0123456789@mlflow.example.org", "https://***@mlflow.example.org"),
    ("sqlite:///runs/mlflow.db", "sqlite:///runs/mlflow.db"),
])
def test_credentials_are_kept_out_of_logged_params_and_messages(raw, logged):
    from memlab.tracking.mlflow_log import redact

    assert redact(raw) == logged


@pytest.mark.parametrize("source, setting, on", [
    ("demo", "auto", True), ("local", "auto", False), ("hf", "auto", False),
    ("local", "on", True), ("demo", "off", False)])
def test_log_text_defaults_off_for_private_sources(source, setting, on):
    from memlab.config.schema import StudyConfig
    from memlab.tracking.trials import log_text

    cfg = StudyConfig()
    cfg.data.source, cfg.tracking.log_text = source, setting
    assert log_text(cfg) is on


def test_an_experiment_name_that_is_no_folder_name_stays_under_the_artifact_root(tmp_path):
    from memlab.tracking.mlflow_log import ensure_experiment

    client = Client(f"sqlite:///{tmp_path / 'm.db'}", retry_s=0)
    for name in ("plain", "../../escape", "/Users/me/study"):
        exp = client.call("get_experiment", ensure_experiment(client, name, str(tmp_path / "a")))
        assert exp.artifact_location.startswith((tmp_path / "a").as_uri() + "/")
        assert ".." not in exp.artifact_location
