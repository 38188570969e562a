"""A real CPU sweep of the smoke study (tiny Llama) through Ray Tune: three strategies, the
full one on a DeepSpeed engine; then a rerun after losing one generation shard, which must redo
that shard and nothing else."""

import csv
import subprocess

import pyarrow.parquet as pq
import pytest

from memlab.io.paths import stage_dir
from memlab.io.shards import GENERATION_SCHEMA, read_manifest, read_shards, score_schema
from memlab.scoring import suite
from tests.conftest import ROOT


def _mtimes(folder):
    return {p.relative_to(folder): p.stat().st_mtime_ns
            for p in folder.rglob("*") if p.is_file() and p.suffix in (".parquet", ".safetensors")}


@pytest.fixture(scope="module")
def sweep(smoke_sweep):
    return smoke_sweep


def test_sweep_prints_results_and_ui_command(sweep):
    out = sweep["stdout"]
    assert "Results of sweep 'smoke'" in out
    assert "Plagiarism typing of the generations" in out
    assert f"ui --backend-store-uri sqlite:///{sweep['runs']}/mlflow.db" in out
    assert "browse http://127.0.0.1:5000/#/experiments/" in out  # the runs list, memlab's view
    assert "/runs?workflowType=machine_learning&viewStateShareKey=memlab" in out
    with open(sweep["runs"] / "smoke" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6  # 3 strategies x 2 duplication levels
    assert {"verbatim_%_mean", "paraphrase_%_mean", "idea_%_mean", "any_%_mean",
            "floor_any_%_mean", "floor_any_%_lo", "auc_ref_mean", "auc_ref_lo",
            "tpr1_loss_hi"} <= set(rows[0])
    assert {r["strategy"] for r in rows} == {"full", "head", "lora"}
    assert {r["dup"] for r in rows} == {"1", "4"}
    assert (sweep["runs"] / "smoke" / "results.png").stat().st_size > 1000


def test_stage_outputs_schemas_and_row_counts(sweep):
    study = sweep["study"]
    n_docs = study.base.data.num_members + study.base.data.num_nonmembers
    schema = score_schema([(c.name, c.type) for c in suite.columns(study.base.score)])
    for t in study.trials:
        train = read_manifest(stage_dir(t.config, "train", t.keys.train))
        assert train["strategy"] == t.config.train.strategy
        # (6x1 + 6x4 + canaries 1 + 4) sequences / batch 4, the same for all
        assert train["train_steps"] == 9
        gen_dir = stage_dir(t.config, "gen", t.keys.gen)
        gen = read_shards(gen_dir, GENERATION_SCHEMA)
        scores = read_shards(stage_dir(t.config, "score", t.key), schema)
        assert gen.num_rows == scores.num_rows == n_docs * t.config.attack.samples_per_prompt
        # one per dataset shard (the canaries' own shard gives an empty one)
        assert len(list(gen_dir.glob("part-*.parquet"))) == 4
        assert not list(sweep["runs"].rglob("*.tmp"))
        s = scores.to_pandas()
        assert set(s.split) == {"member", "nonmember"}
        assert sorted(s[s.split == "member"].dup_count.unique()) == [1, 4]
        assert (s.trial_key == t.key).all()
        assert s.sim_to_source.between(-1, 1.0001).all()
        assert s.plag_label.isin(["verbatim", "paraphrase", "idea", "none"]).all()
        typed = s[s.plag_label != "none"]
        assert typed.plag_doc_id.notna().all() and (typed.plag_gen_span.map(len) == 2).all()
        assert s[s.plag_label == "none"].plag_doc_id.isna().all()
        g = gen.to_pandas()
        assert (g.prompt_ids.map(len) == t.config.attack.prefix_tokens).all()
        assert (g.gen_ids.map(len) <= t.config.attack.max_new_tokens).all()
        assert read_manifest(gen_dir)["engines"] == ["hf on cpu, float32"]  # what ran
        # one ladder per sample: every stage's rows of a sample share its sample_id
        assert s.sample_id.is_unique and set(s.sample_id) == set(g.sample_id)
        joined = g.merge(s, on="sample_id", suffixes=("", "_s"))
        assert len(joined) == len(g) and (joined.doc_id == joined.doc_id_s).all()
        for c in ("mia_loss", "mia_zlib", "mia_mink", "mia_minkpp", "mia_ref", "base_nll"):
            assert s[c].notna().all(), c
        held_out = s.split == "nonmember"  # utility: on the held-out documents
        assert s[held_out].rougeL.notna().all() and s[~held_out].bleu.isna().all()
        assert (s.mia_loss == -s.doc_nll).all()
        summary = pq.read_table(stage_dir(t.config, "score", t.key) / "summary.parquet")
        got = {(r["split"], r["dup_count"], r["metric"]): r["value"]
               for r in summary.to_pylist()}
        for dup in (-1, 1, 4):
            for m in ("auc_ref", "auc_ref_lo", "auc_ref_hi", "tpr1_loss", "tpr01_minkpp_hi"):
                assert ("member", dup, m) in got, (dup, m)
            assert 0 <= got[("member", dup, "auc_loss")] <= 1
        assert got[("nonmember", -1, "base_ppl")] > 1
        assert {k[1] for k in got if k[0] == "canary"} == {0, 1, 4}
        assert got[("canary", 4, "exposure_cap")] == 6  # log2(63 + 1)
        assert got[("canary", 4, "canaries")] == 1
    full = next(t for t in study.trials if t.config.train.strategy == "full")
    man = read_manifest(stage_dir(full.config, "train", full.keys.train))
    assert man["engine"] == "deepspeed-zero2"
    head = next(t for t in study.trials if t.config.train.strategy == "head")
    man = read_manifest(stage_dir(head.config, "train", head.keys.train))
    assert any("untied" in n for n in man["notes"])  # the tiny Llama ties its head
    assert man["trainable_params"] == 64 * man["vocab_size"]  # exactly the head


def test_mlflow_runs_hold_metrics_params_artifacts(sweep):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{sweep['runs']}/mlflow.db")
    exp = client.get_experiment_by_name("smoke")
    runs = client.search_runs([exp.experiment_id], "tags.`memlab.role` = 'trial'")
    study = sweep["study"]
    assert sorted(r.data.tags["trial_key"] for r in runs) == sorted(t.key for t in study.trials)
    (parent,) = client.search_runs([exp.experiment_id], "tags.`memlab.role` = 'sweep'")
    assert parent.info.status == "FINISHED" and parent.info.run_name == "smoke"
    assert parent.data.params["grid.train.strategy"] == '["full", "head", "lora"]'
    assert parent.data.metrics["trials_finished"] == len(study.trials)
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "summary")} == \
        {f"summary/{f}" for f in ("results.csv", "results.md", "results.png", "results.html",
                                  "scale.png", "roc.png", "frontier.png")}
    for r in runs:
        assert r.data.tags["memlab.sweep_run_id"] == parent.info.run_id
        assert r.info.status == "FINISHED"
        m = r.data.metrics
        for key in ("exact_pct/member", "exact_pct/member_dup1", "exact_pct/member_dup4",
                    "exact_pct/nonmember", "sim_src_ge_0.8_pct/member_dup4", "heldout_ppl",
                    "trainable_params", "train_time_s", "lcs_tokens_mean/member",
                    "verbatim_pct/member_dup4", "paraphrase_pct/member", "idea_pct/nonmember",
                    "plagiarism_any_pct/nonmember", "ppl/member", "match_pct/nonmember"):
            assert key in m, key
        assert m["heldout_ppl"] > 1
        hist = client.get_metric_history(r.info.run_id, "train_loss")
        assert len(hist) == 9
        assert r.data.params["train.strategy"] == r.data.tags["strategy"]
        assert r.data.params["data.dup_mix"] == "[1, 4]"
        for tag in ("git_sha", "version.torch", "data_sha256", "model.source", "data_key",
                    "train_key", "gen_key", "score_key"):
            assert tag in r.data.tags
        assert r.data.tags["score_key"] == r.data.tags["trial_key"]  # a trial is a leaf
        arts = {a.path for a in client.list_artifacts(r.info.run_id)}
        # (the demo corpus: log_text on, so its examples are logged)
        assert {"config.json", "result.json", "scores", "plots", "train", "examples"} <= arts
        assert [a.path for a in client.list_artifacts(r.info.run_id, "scores")] == \
            ["scores/summary.parquet"]


def test_mlflow_desk_through_the_api(sweep):
    """What the UI's comparison desk reads (issue 20): the experiment marked as model training
    with memlab's saved view; trials top-level, tied to the sweep's run, with their grouping
    tags, their dataset as an MLflow dataset input (digest = the dataset's key), headline
    metrics equal to the full ones they stand for, memorization against duplication as a
    history over the copies; the study figures as images on the sweep's run."""
    import json

    from mlflow.tracking import MlflowClient

    from memlab.config.labels import model_label

    client = MlflowClient(tracking_uri=f"sqlite:///{sweep['runs']}/mlflow.db")
    exp = client.get_experiment_by_name("smoke")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    view = json.loads(exp.tags["mlflow.sharedViewState.memlab"])
    assert {"tags.`strategy`", "tags.`model`", "metrics.`exact_member`",
            "metrics.`plag_floor`"} <= set(view["selectedColumns"])
    (parent,) = client.search_runs([exp.experiment_id], "tags.`memlab.role` = 'sweep'")
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "images")}  # figures
    by_key = {t.key: t for t in sweep["study"].trials}
    runs = client.search_runs([exp.experiment_id], "tags.`memlab.role` = 'trial'")
    assert sorted(r.data.tags["trial_key"] for r in runs) == sorted(by_key)
    for r in runs:
        t, tags, m = by_key[r.data.tags["trial_key"]], r.data.tags, r.data.metrics
        assert "mlflow.parentRunId" not in tags  # a top-level row of the runs list
        assert tags["memlab.sweep_run_id"] == parent.info.run_id
        assert r.info.run_name == t.name == \
            f"{t.config.train.strategy}-tiny-llama-64x2-x1-4-s0"  # (copies: dup_mix [1, 4])
        assert (tags["strategy"], tags["model"], tags["dup_factor"], tags["seed"]) == \
            (t.config.train.strategy, model_label(t.config), "1", "0")
        (ds,) = r.inputs.dataset_inputs
        assert ds.dataset.digest == t.keys.data
        data = read_manifest(stage_dir(t.config, "data", t.keys.data))
        assert ds.dataset.name == data["source_ref"] == "demo(num_docs=300,seed=0)"
        assert {(x.key, x.value) for x in ds.tags} == {("mlflow.data.context", "train")}
        assert json.loads(ds.dataset.profile)["rows"] > 0
        for short, full in (("exact_member", "exact_pct/member"),
                            ("exact_floor", "exact_pct/nonmember"),
                            ("plag_member", "plagiarism_any_pct/member"),
                            ("plag_floor", "plagiarism_any_pct/nonmember"),
                            ("sim_member", "sim_src_ge_0.8_pct/member"),
                            ("sim_floor", "sim_src_ge_0.8_pct/nonmember"),
                            ("mia_auc", "auc_ref/member")):
            assert m[short] == round(m[full], 3 if short == "mia_auc" else 2), short
        hist = client.get_metric_history(r.info.run_id, "vs_dup/exact_member")
        assert [(h.step, h.value) for h in sorted(hist, key=lambda h: h.step)] == \
            [(1, m["exact_pct/member_dup1"]), (4, m["exact_pct/member_dup4"])]


def test_mlflow_ui_in_headless_chromium_opens_on_the_trials(sweep, ui):
    """Issue 20, acceptance 1: the URL the demo prints, on the `mlflow ui` it prints, opens on
    the runs list; every trial's row shows its name, strategy, model and headline metric
    values without a click; "Group by" offers the strategy tag; the chart view shows the
    headline section. Screenshots go to test-artifacts/."""
    import re

    from mlflow.tracking import MlflowClient
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from memlab.config.labels import model_label
    from tests.integration.conftest import chromium

    printed = re.search(r"browse http://127\.0\.0\.1:5000(/\S+)", sweep["stdout"])[1]
    assert "/runs?" in printed and "viewStateShareKey=memlab" in printed
    client = MlflowClient(tracking_uri=f"sqlite:///{sweep['runs']}/mlflow.db")
    runs = {r.info.run_name: r for r in client.search_runs(
        [client.get_experiment_by_name("smoke").experiment_id], "tags.`memlab.role` = 'trial'")}
    js = lambda v: repr(v)[:-2] if v == int(v) else repr(v)  # noqa: E731  (how the UI prints)
    shots = ROOT / "test-artifacts"
    shots.mkdir(exist_ok=True)
    with chromium(width=2400, height=1100) as driver:
        driver.get(ui["base"] + printed)
        wait = WebDriverWait(driver, 90, poll_frequency=0.5)
        body = lambda: driver.find_element(By.TAG_NAME, "body").text  # noqa: E731

        def row_text(name: str) -> str:  # (AG Grid splits a row: pinned name, the rest)
            for el in driver.find_elements(By.CSS_SELECTOR, ".ag-row"):
                if name in el.text:
                    idx = el.get_attribute("row-index")
                    return " ".join(r.text for r in driver.find_elements(
                        By.CSS_SELECTOR, f'.ag-row[row-index="{idx}"]'))
            return ""

        wait.until(lambda _: all(n in body() for n in runs) and "exact_member" in body())
        assert "/runs" in driver.current_url and "Detect issues" not in body()
        for close in driver.find_elements(By.CSS_SELECTOR, "button[aria-label='Close']"):
            close.click()  # (the assistant panel, for a wider table)
        for t in sweep["study"].trials:
            m = runs[t.name].data.metrics
            want = [t.config.train.strategy, model_label(t.config)] + \
                [js(m[k]) for k in ("exact_member", "exact_floor", "plag_member", "plag_floor",
                                    "sim_member", "sim_floor", "mia_auc", "heldout_ppl")]
            wait.until(lambda _, t=t, want=want: all(
                w in row_text(t.name).split() for w in want))
        driver.save_screenshot(str(shots / "mlflow-ui-runs.png"))
        # "Group by" offers the trials' tags (an option of its menu, not the table's column)
        driver.find_element(By.XPATH, "//button[contains(., 'Group by')]").click()
        menu = "[not(ancestor::*[contains(@class, 'ag-root')])]"
        for tag in ("strategy", "model", "dup_factor", "seed"):
            wait.until(lambda _, tag=tag: driver.find_elements(
                By.XPATH, f"//*[normalize-space(text())='{tag}']{menu}"))
        driver.save_screenshot(str(shots / "mlflow-ui-group-by.png"))
        # the chart view: memorization against duplication and the loss curves, per trial
        driver.get(ui["base"] + printed.replace("/runs?", "/runs?compareRunsMode=CHART&"))
        search = wait.until(lambda _: driver.find_element(
            By.CSS_SELECTOR, "input[placeholder='Search metric charts']"))
        # (charts render once scrolled to: fold the study's figures, which fill the window)
        wait.until(lambda _: driver.find_elements(
            By.XPATH, "//*[normalize-space(text())='study']"))[0].click()
        for metric in ("vs_dup", "train_loss"):
            search.send_keys(Keys.CONTROL, "a")  # (clear() does not reach React's state)
            search.send_keys(Keys.BACKSPACE, metric)
            wait.until(lambda _, metric=metric: metric in body() and
                       all(n in body() for n in runs))
            driver.save_screenshot(str(shots / f"mlflow-ui-charts-{metric}.png"))
    for f in ("mlflow-ui-runs.png", "mlflow-ui-group-by.png", "mlflow-ui-charts-vs_dup.png",
              "mlflow-ui-charts-train_loss.png"):
        assert (shots / f).stat().st_size > 20_000


def test_rerun_redoes_nothing_but_a_lost_shard(sweep):
    """Lose one generation shard of one trial and rerun the sweep: only that shard is redone
    (nothing else is rewritten: no shard, score or model); what it holds is the same (greedy
    decoding), so the scores built from it stay valid and are kept."""
    root = sweep["runs"]
    before = _mtimes(root)
    t = sweep["study"].trials[1]
    lost = stage_dir(t.config, "gen", t.keys.gen) / "part-00001.parquet"
    lost.unlink()
    third = subprocess.run(sweep["cmd"], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert third.returncode == 0, third.stderr[-3000:]
    after = _mtimes(root)
    changed = {p for p in after if after[p] != before.get(p)}
    assert changed == {lost.relative_to(root)}
    assert pq.read_metadata(lost).num_rows > 0


def test_finished_trials_need_no_placement_check(sweep):
    """A rerun of finished trials (to log, to report) starts no Ray and checks no placement:
    labels no node of this machine has do not refuse it; a trial left to run does."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    placed = ["--set", "resources.lora.labels={memlab/role: small}"]
    again = subprocess.run(sweep["cmd"] + placed, capture_output=True, text=True, cwd=ROOT,
                           env=env, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 to run on Ray Tune" in again.stderr
    new = subprocess.run(sweep["cmd"] + placed + ["--set", "train.lora.r=2"],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert new.returncode == 2, new.stdout[-2000:] + new.stderr[-2000:]
    (line,) = [x for x in new.stderr.splitlines() if x.startswith("error:")]  # (one refusal
    assert line.startswith("error: resources.lora.labels {memlab/role: small}: no node "  # line)
                           "of the local Ray instance"), new.stderr


@pytest.fixture(scope="module")
def ui(sweep):
    """The `mlflow ui` command the demo prints, over the finished smoke sweep, on a free port;
    yields its base URL and a JSON caller of its REST API."""
    import json
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mlflow = ROOT / ".venv" / "bin" / "mlflow"
    proc = subprocess.Popen([str(mlflow) if mlflow.exists() else "mlflow", "ui",
                             "--backend-store-uri", f"sqlite:///{sweep['runs']}/mlflow.db",
                             "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def call(path, body=None):
        req = urllib.request.Request(base + path, data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    try:
        deadline = time.time() + 90
        while True:
            try:
                call("/api/2.0/mlflow/experiments/get-by-name?experiment_name=smoke")
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise
                time.sleep(1)
        yield {"base": base, "call": call}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_mlflow_ui_serves_the_runs(sweep, ui):
    """The UI command the demo prints serves one run per trial with metrics, params and
    artifacts (checked through the same REST API the UI's pages call)."""
    import urllib.request

    call = ui["call"]
    exp = call("/api/2.0/mlflow/experiments/get-by-name?experiment_name=smoke")
    runs = call("/api/2.0/mlflow/runs/search",
                {"experiment_ids": [exp["experiment"]["experiment_id"]],
                 "filter": "tags.`memlab.role` = 'trial'"})["runs"]
    assert len(runs) == len(sweep["study"].trials)
    names = {r["info"]["run_name"] for r in runs}
    assert names == {t.name for t in sweep["study"].trials}
    for r in runs:
        metrics = {m["key"] for m in r["data"]["metrics"]}
        params = {p["key"] for p in r["data"]["params"]}
        assert {"exact_pct/member", "heldout_ppl", "train_loss"} <= metrics
        assert {"train.strategy", "data.dup_mix", "attack.prefix_tokens"} <= params
        arts = call(f"/api/2.0/mlflow/artifacts/list?run_id={r['info']['run_id']}")
        assert {"config.json", "scores", "plots"} <= {f["path"] for f in arts["files"]}
    with urllib.request.urlopen(ui["base"] + "/", timeout=10) as page:
        assert b"MLflow" in page.read()
