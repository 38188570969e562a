"""Stages keyed by what they compute, through a real sweep: a grid of 2 attack settings x 2
score settings x 3 strategies, run over the runs root of the finished smoke sweep, whose 3
trials are this grid's first attack and score settings. The second score setting is a new
metric: a scorer plugin (tests/integration/scorer_plugin.py) named in `score.plugins`.

- Nothing trains again: the 12 trials share the smoke sweep's 3 trainings (one per strategy),
  whose files are untouched, and the log holds no training step.
- The smoke's own settings reuse every stage; a changed attack field regenerates and rescores
  (3 new generations, one per strategy, each shared by both score settings); the new metric
  rescores only.
- The plugin's scorer is a score-shard column, an MLflow metric and a report column, with no
  other edit.
"""

import csv
import subprocess

import pyarrow.parquet as pq
import pytest
import yaml

from memlab.config.expand import load_study
from memlab.io.paths import stage_dir
from memlab.io.shards import read_shards
from tests.conftest import ROOT, SWEEPS
from tests.integration.conftest import SMOKE, memlab_exe

PLUGIN = ROOT / "tests" / "integration" / "scorer_plugin.py"


def _files(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def grid(smoke_sweep, tmp_path_factory):
    runs = smoke_sweep["runs"]
    study_dir = tmp_path_factory.mktemp("grid-study")
    (study_dir / "_defaults.yaml").write_text((SWEEPS / "_defaults.yaml").read_text())
    study = yaml.safe_load(SMOKE.read_text())
    study["sweep"]["name"] = "reuse"
    study["grid"] = {"train.strategy": ["full", "head", "lora"],
                     "attack.max_new_tokens": [24, 20],  # smoke: 24
                     "score.plugins": [[], [str(PLUGIN)]]}  # smoke: none
    path = study_dir / "grid.yaml"
    path.write_text(yaml.safe_dump(study))
    sets = [f"sweep.runs_root={runs}"]
    before = {s: _files(runs / "stages" / s) for s in ("train", "gen", "score")}
    cmd = memlab_exe() + ["run", str(path)] + [a for s in sets for a in ("--set", s)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    return {"runs": runs, "study": load_study(path, sets), "before": before,
            "log": proc.stdout + proc.stderr, "smoke": smoke_sweep["study"],
            "smoke_log": smoke_sweep["stdout"] + smoke_sweep["stderr"]}


def test_the_grid_trains_three_times_and_nothing_again(grid):
    study, runs = grid["study"], grid["runs"]
    assert len(study.trials) == 12
    train_keys = {t.keys.train for t in study.trials}
    assert len(train_keys) == 3  # one training per strategy ...
    assert train_keys == {t.keys.train for t in grid["smoke"].trials}  # ... the smoke's
    assert {p.name for p in (runs / "stages" / "train").iterdir() if p.is_dir()} == train_keys
    assert _files(runs / "stages" / "train") == grid["before"]["train"]  # untouched
    for strategy in ("full", "head", "lora"):
        assert f"train {strategy}:" not in grid["log"]  # no training step was logged
        assert f"train {strategy}: 9/9 steps" in grid["smoke_log"]  # (as the smoke sweep did)


def test_a_changed_attack_regenerates_and_a_new_metric_only_rescores(grid):
    study, runs, smoke = grid["study"], grid["runs"], grid["smoke"]
    smoke_gen = {t.config.train.strategy: t.keys.gen for t in smoke.trials}
    smoke_keys = {t.key for t in smoke.trials}
    new_gen = set()
    for t in study.trials:
        same_attack = t.config.attack.max_new_tokens == 24
        assert (t.keys.gen == smoke_gen[t.config.train.strategy]) == same_attack
        if not same_attack:
            new_gen.add(t.keys.gen)
        assert (runs / "stages" / "score" / t.key / "_MANIFEST.json").is_file()
        # the smoke's own settings are the smoke's trials; any other setting is new scores
        assert (t.key in smoke_keys) == (same_attack and not t.config.score.plugins)
    assert len(new_gen) == 3  # one generation per strategy, shared by both score settings
    gen_now = _files(runs / "stages" / "gen")
    assert {p: gen_now[p] for p in grid["before"]["gen"]} == grid["before"]["gen"]
    assert {p.parent.name for p in gen_now if p.name == "_MANIFEST.json"} == \
        set(smoke_gen.values()) | new_gen
    score_now = _files(runs / "stages" / "score")
    assert {p: score_now[p] for p in grid["before"]["score"]} == grid["before"]["score"]
    assert len([p for p in score_now if p.name == "_MANIFEST.json"]) == 12


def test_a_registered_plugin_scorer_is_a_column_a_metric_and_a_report_column(grid):
    from mlflow.tracking import MlflowClient

    study, runs = grid["study"], grid["runs"]
    with_plugin = [t for t in study.trials if t.config.score.plugins]
    assert len(with_plugin) == 6
    for t in study.trials:
        scores = read_shards(stage_dir(t.config, "score", t.key)).to_pandas()
        assert ("covers_suffix" in scores) == (t in with_plugin)
        if t in with_plugin:  # the plugin's column, computed on the trial's generations
            gen = read_shards(stage_dir(t.config, "gen", t.keys.gen)).to_pandas()
            want = [len(g) >= len(s) for g, s in zip(gen.gen_ids, gen.suffix_ids)]
            assert scores.covers_suffix.tolist() == want
            assert pq.read_schema(next(stage_dir(t.config, "score", t.key)
                                       .glob("part-*.parquet"))).names[-1] == "covers_suffix"
    client = MlflowClient(tracking_uri=f"sqlite:///{runs}/mlflow.db")
    exp = client.get_experiment_by_name("reuse")
    runs_ = client.search_runs([exp.experiment_id], "tags.`memlab.role` = 'trial'")
    assert len(runs_) == 12
    for r in runs_:
        scores = read_shards(runs / "stages" / "score" / r.data.tags["trial_key"]).to_pandas()
        if r.data.params["score.plugins"] == "[]":
            assert not any(m.startswith("covers_pct") for m in r.data.metrics)
            continue
        assert r.data.params["score.plugins"] == f"['{PLUGIN}']"
        members = scores[scores.split == "member"]
        assert r.data.metrics["covers_pct/member"] == pytest.approx(
            100 * members.covers_suffix.mean())
        assert "covers_pct/member_dup4" in r.data.metrics
    assert "covers_%" in grid["log"] and "floor_covers_%" in grid["log"]
    with open(runs / "reuse" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 24 and \
        {"covers_%_mean", "floor_covers_%_mean", "score.plugins"} <= set(rows[0])
    assert {r["covers_%_mean"] != "" for r in rows} == {True, False}  # the plugin's trials only


@pytest.mark.slow  # a fresh two-trial sweep with a longer training: ~2 min on 2 cores (CI)
def test_two_tune_trials_sharing_a_training_started_at_once_train_once(tmp_path):
    """Two LoRA trials that differ in a score setting only, both fitting on the machine at
    once (half a CPU each, plus their actor): Tune starts them together; one trains, the other
    waits for the training's manifest and reuses it."""
    (tmp_path / "_defaults.yaml").write_text((SWEEPS / "_defaults.yaml").read_text())
    study = yaml.safe_load(SMOKE.read_text())
    study["sweep"]["name"] = "together"
    study["train"]["epochs"] = 100  # 800 steps: long enough for both to be there at once
    study["resources"] = {"lora": {"cpu": 0.5}}
    study["grid"] = {"train.strategy": ["lora"], "score.plugins": [[], [str(PLUGIN)]]}
    path = tmp_path / "together.yaml"
    path.write_text(yaml.safe_dump(study))
    runs = tmp_path / "runs"
    proc = subprocess.run(memlab_exe() + ["run", str(path), "--set", f"sweep.runs_root={runs}"],
                          capture_output=True, text=True, cwd=ROOT, timeout=1200)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    trials = load_study(path, [f"sweep.runs_root={runs}"]).trials
    (key,) = {t.keys.train for t in trials}
    assert [p.name for p in (runs / "stages" / "train").iterdir() if p.is_dir()] == [key]
    assert log.count(f"train {key} computed") == 1
    assert log.count(f"train {key} reused, after waiting") == 1  # it was there at once
    assert all((runs / "together" / t.key / "result.json").is_file() for t in trials)
