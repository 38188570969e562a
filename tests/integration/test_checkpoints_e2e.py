"""Issue 34, acceptance 1 (CPU): memorization through training, through real sweeps.

A smoke study (tiny Llama, LoRA: 9 optimizer steps) with 4 evaluation points
(train.eval_at [0.25, 0.5, 0.75, 1.0]: steps 3, 5, 7 and the final model at 9):
- each point's model is exported into at/<step>/ of the train folder, and gets generate and
  score stages of its own (keys.checkpoint_keys), whose summary is in result.json;
- each point's headline metrics are on the trial's MLflow run with step = the optimizer step,
  the final model's at step 9;
then a rerun with 2 more points (0.125 and 0.875: steps 2 and 8) computes only those: their
exports (training again up to step 8, said in the log), generations and scores; every stage
of the first run is reused (same files, same mtimes); a third run finds every stage done.
"""

import contextlib
import csv
import json
import subprocess
import sys

import pytest
import yaml

from memlab.config.expand import load_study
from memlab.config.keys import checkpoint_keys
from memlab.io.paths import stage_dir
from memlab.io.shards import flat_metrics, read_summary
from tests.conftest import ROOT, SWEEPS
from tests.integration.conftest import SMOKE

pytestmark = pytest.mark.slow

FOUR = "train.eval_at=[0.25,0.5,0.75,1.0]"
SIX = "train.eval_at=[0.125,0.25,0.5,0.75,0.875,1.0]"
CURVES = ("exact_member", "sim_member", "plag_member", "mia_auc", "heldout_ppl", "sim_floor")


def run_sweep(study_file, runs, sets: list[str]) -> dict:
    """`memlab run` as conftest's run_sweep, through this interpreter's `-m memlab.cli` (the
    memlab of the checkout it runs in, installed or not)."""
    cmd = [sys.executable, "-m", "memlab.cli", "run", str(study_file), "--set",
           f"sweep.runs_root={runs}", *(a for s in sets for a in ("--set", s))]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1500)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    with contextlib.chdir(ROOT):
        study = load_study(study_file, [f"sweep.runs_root={runs}", *sets])
    return {"study": study, "stdout": out.stdout, "stderr": out.stderr}


def _mtimes(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def lora_smoke(tmp_path_factory, name: str):
    """The smoke study on LoRA alone, named `name`, in a folder of its own (with the
    defaults); returns its path."""
    study_dir = tmp_path_factory.mktemp(f"{name}-study")
    (study_dir / "_defaults.yaml").write_text((SWEEPS / "_defaults.yaml").read_text())
    study = yaml.safe_load(SMOKE.read_text())
    study["sweep"]["name"] = name
    study["grid"] = {"train.strategy": ["lora"]}
    path = study_dir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


@pytest.fixture(scope="module")
def points(tmp_path_factory):
    path = lora_smoke(tmp_path_factory, "points")
    runs = tmp_path_factory.mktemp("runs")
    first = run_sweep(path, runs, [FOUR])
    (trial,) = first["study"].trials
    before = {s: _mtimes(runs / "stages" / s) for s in ("train", "gen", "score")}
    second = run_sweep(path, runs, [SIX])
    third = run_sweep(path, runs, [SIX])
    return {"runs": runs, "trial": trial, "first": first, "second": second, "third": third,
            "before": before}


def _log(run: dict) -> str:
    return run["stdout"] + run["stderr"]


def test_each_point_is_exported_and_scored(points):
    t, runs = points["trial"], points["runs"]
    train = stage_dir(t.config, "train", t.keys.train)
    assert sorted(int(p.name) for p in (train / "at").iterdir()) == [2, 3, 5, 7, 8]
    result = json.loads((runs / "points" / t.key / "result.json").read_text())
    assert result["train"]["train_steps"] == 9
    got = {p["step"]: p for p in result["checkpoints"]}
    final = flat_metrics(read_summary(stage_dir(t.config, "score", t.keys.score)))
    assert sorted(got) == [2, 3, 5, 7, 8]  # (9 is the final model: the trial's own stages)
    for step, p in got.items():
        keys = checkpoint_keys(t.keys, step)
        assert p["keys"] == {"gen": keys.gen, "score": keys.score}
        assert (stage_dir(t.config, "score", keys.score) / "summary.parquet").is_file()
        assert set(p["metrics"]) == set(final)  # the final model's metrics, each
    assert (stage_dir(t.config, "score", t.keys.score) / "summary.parquet").is_file()
    log = _log(points["first"])
    for step in (3, 5, 7):
        assert f"gen@{step} {checkpoint_keys(t.keys, step).gen} computed" in log
    assert "not on disk" not in log  # (the first run exported while it trained)


def test_points_are_mlflow_histories_over_the_step(points):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{points['runs']}/mlflow.db")
    exp = client.get_experiment_by_name("points")
    (run,) = client.search_runs([exp.experiment_id], "tags.`memlab.role` = 'trial'")
    result = json.loads((points["runs"] / "points" / points["trial"].key /
                         "result.json").read_text())
    for name in CURVES:
        hist = {m.step: m.value for m in client.get_metric_history(run.info.run_id, name)}
        assert sorted(hist) == [2, 3, 5, 7, 8, 9], name
        at5 = next(p for p in result["checkpoints"] if p["step"] == 5)["metrics"]
        if name == "heldout_ppl":
            assert hist[5] == pytest.approx(at5["heldout_ppl"])
            assert hist[9] == pytest.approx(result["metrics"]["heldout_ppl"])
    assert run.data.metrics["heldout_ppl"] == pytest.approx(result["metrics"]["heldout_ppl"])


def test_a_rerun_with_two_more_points_computes_only_those(points):
    t, runs, log = points["trial"], points["runs"], _log(points["second"])
    assert "the model at step(s) 2, 8 is not on disk" in log  # trained again to export them
    for step in (2, 8):
        keys = checkpoint_keys(t.keys, step)
        assert f"gen@{step} {keys.gen} computed" in log
        assert f"score@{step} {keys.score} computed" in log
    for step in (3, 5, 7):
        keys = checkpoint_keys(t.keys, step)
        assert f"gen@{step} {keys.gen} reused" in log
        assert f"score@{step} {keys.score} reused" in log
    assert f"gen {t.keys.gen} reused" in log and f"score {t.keys.score} reused" in log
    after = {s: _mtimes(runs / "stages" / s) for s in ("train", "gen", "score")}
    for s, files in points["before"].items():  # every file of the first run, untouched
        assert {p: after[s].get(p) for p in files} == files, s
    new = {p.relative_to(runs / "stages" / "train").parts[1:3]
           for p in set(after["train"]) - set(points["before"]["train"])}
    assert new == {("at", "2"), ("at", "8")}  # (the new exports alone)


def test_a_third_run_finds_every_stage_done(points):
    log = _log(points["third"])
    assert "1 trial(s) with every stage done" in log and " computed" not in log


def test_the_report_draws_every_point_and_the_final_model(points):
    """The sweep's report (issue 34 part 2): dynamics.csv a row per step, the final model's at
    the last; dynamics.png; the table in what `memlab run` printed."""
    root = points["runs"] / "points"
    with open(root / "dynamics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [2, 3, 5, 7, 8, 9]
    assert [r["final"] for r in rows] == ["False"] * 5 + ["True"]
    assert {r["best_step"] for r in rows} <= {"2", "3", "5", "7", "8", "9"}
    assert all(r["heldout_ppl_mean"] for r in rows)
    assert (root / "dynamics.png").read_bytes()[:4] == b"\x89PNG"
    assert "Through training" in points["third"]["stdout"]


def test_validate_refuses_both_ways_at_once(memlab_cmd):
    r = subprocess.run([*memlab_cmd, "validate", str(SMOKE), "--set", FOUR, "--set",
                        "train.eval_every=2"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
