"""A sweep logging to a real MLflow tracking server (PostgreSQL backend store, artifacts
proxied by the server) over HTTP, started with infra/mlflow/start-local.sh on 127.0.0.1."""

import json
import shutil
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
    return {"study": load_study(SMOKE, sets), "tmp": tmp}


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
    """Drive the real UI: open the experiment's runs page, expand the sweep's parent run, and
    find every trial's run name on the page. The screenshot is kept in test-artifacts/."""
    chromedriver = shutil.which("chromedriver")
    assert chromedriver, "needs Chromium and its driver: apt-get install chromium chromium-driver"
    from mlflow.tracking import MlflowClient
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    exp = MlflowClient(tracking_uri=server["uri"]).get_experiment_by_name("smoke-server")
    names = [t.name for t in swept["study"].trials]
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1600,1000"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(chromedriver), options=opts)
    shot = ROOT / "test-artifacts" / "mlflow-ui-sweep.png"
    shot.parent.mkdir(exist_ok=True)
    try:
        driver.get(f"{server['uri']}/#/experiments/{exp.experiment_id}/runs")
        wait = WebDriverWait(driver, 60, poll_frequency=0.5)
        body = lambda: driver.find_element(By.TAG_NAME, "body").text  # noqa: E731
        rows = lambda: driver.find_elements(By.CSS_SELECTOR, ".ag-row")  # noqa: E731
        wait.until(lambda _: any("smoke-server" in r.text for r in rows()))
        assert not any(n in body() for n in names)  # trials are nested under the sweep
        parent = next(r for r in rows()
                      if "smoke-server" in r.text and r.find_elements(By.TAG_NAME, "button"))
        parent.find_element(By.TAG_NAME, "button").click()  # expand the parent run
        wait.until(lambda _: all(n in body() for n in names))
        assert f"{len(names) + 1} matching runs" in body()
    finally:
        driver.save_screenshot(str(shot))
        driver.quit()
    assert shot.stat().st_size > 10_000
