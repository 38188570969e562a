"""A sweep logging to a real MLflow tracking server (PostgreSQL backend store, artifacts
proxied by the server) over HTTP, started with infra/mlflow/start-local.sh on 127.0.0.1."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "sweeps" / "smoke.yaml"


@pytest.fixture(scope="module")
def swept(server, smoke_sweep, tmp_path_factory):
    """The smoke sweep tracking to the server, on the runs root of the finished smoke sweep:
    its stages are all done, so what this sweep does is log every trial to the server."""
    from memlab.config.expand import load_study

    tmp = tmp_path_factory.mktemp("server-sweep")
    sets = [f"sweep.runs_root={smoke_sweep['runs']}", f"tracking.uri={server['uri']}",
            "sweep.name=smoke-server"]
    cmd = [sys.executable, "-m", "memlab.cli", "run", str(SMOKE)]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"browse {server['uri']}" in proc.stdout
    return {"study": load_study(SMOKE, sets), "tmp": tmp, "stdout": proc.stdout}


def test_sweep_logs_parent_and_child_runs_to_the_server(server, swept, tmp_path):
    from mlflow.tracking import MlflowClient

    study = swept["study"]

    client = MlflowClient(tracking_uri=server["uri"])
    exp = client.get_experiment_by_name("smoke-server")
    assert exp.artifact_location.startswith("mlflow-artifacts:")  # proxied by the server
    (parent,) = client.search_runs([exp.experiment_id], "tags.`memlab.role` = 'sweep'")
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["trials_finished"] == len(study.trials)
    children = client.search_runs(
        [exp.experiment_id], f"tags.`memlab.sweep_run_id` = '{parent.info.run_id}'")
    assert sorted(r.data.tags["trial_key"] for r in children) == \
        sorted(t.key for t in study.trials)
    for r in children:
        assert r.info.status == "FINISHED"
        assert {"exact_pct/member_dup4", "verbatim_pct/member", "heldout_ppl"} <= \
            set(r.data.metrics)
        assert len(client.get_metric_history(r.info.run_id, "train_loss")) == 9
    # artifacts went through the server into its artifact store, none into a local ./mlruns
    one = children[0]
    got = Path(client.download_artifacts(one.info.run_id, "result.json", str(tmp_path)))
    assert json.loads(got.read_text())["key"] == one.data.tags["trial_key"]
    stored = list((server["state"] / "artifacts").rglob("summary.parquet"))
    assert len(stored) == len(study.trials)
    assert list((server["state"] / "artifacts").rglob("results.png"))  # the parent's plot
    assert not list(swept["tmp"].rglob("mlruns")) and not (ROOT / "mlruns").exists()
    # the backend store is the PostgreSQL database: the runs are rows of its `runs` table
    import psycopg2

    with psycopg2.connect(host="127.0.0.1", port=server["pg_port"], user="mlflow",
                          dbname="mlflow") as db, db.cursor() as cur:
        cur.execute("SELECT count(*) FROM runs WHERE experiment_id = %s",
                    (int(exp.experiment_id),))
        assert cur.fetchone()[0] == len(study.trials) + 1


def test_mlflow_ui_in_headless_chromium_shows_the_sweep_and_its_trials(server, swept):
    """Drive the real UI at the URL the sweep printed: the sweep's run and every trial's run
    are rows of the runs list without a click (trials are top-level runs). The screenshot is
    kept in test-artifacts/."""
    import re

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.integration.conftest import chromium

    url = re.search(r"browse (\S+viewStateShareKey=memlab)", swept["stdout"])[1]
    assert url.startswith(server["uri"])
    names = [t.name for t in swept["study"].trials]
    shot = ROOT / "test-artifacts" / "mlflow-ui-sweep.png"
    shot.parent.mkdir(exist_ok=True)
    with chromium() as driver:
        try:
            driver.get(url)
            wait = WebDriverWait(driver, 60, poll_frequency=0.5)
            body = lambda: driver.find_element(By.TAG_NAME, "body").text  # noqa: E731
            wait.until(lambda _: all(n in body() for n in names + ["smoke-server"]))
            assert f"{len(names) + 1} matching runs" in body()
        finally:
            driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
