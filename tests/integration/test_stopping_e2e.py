"""Issue 34 part 3, acceptance 1 (CPU): early stopping stops a trial at the evaluation point
its rule names. A smoke study (tiny Llama, LoRA: 9 optimizer steps) with points at steps 3, 5,
7 (and the final model at 9) and a rule that holds at any point (`exact_member >= 0`): it
fires at the first, step 3; the points at 5 and 7 are not evaluated, result.json, the log and
the MLflow run say where and why, and a rerun finds the trial done."""

import json

import pytest

from memlab.config.keys import checkpoint_keys
from tests.integration.test_checkpoints_e2e import FOUR, lora_smoke, run_sweep

pytestmark = pytest.mark.slow

RULE = ["train.stop_when.metric=exact_member", "train.stop_when.op='>='",
        "train.stop_when.value=0"]


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    path = lora_smoke(tmp_path_factory, "stop")
    runs = tmp_path_factory.mktemp("runs")
    first = run_sweep(path, runs, [FOUR, *RULE])
    again = run_sweep(path, runs, [FOUR, *RULE])
    (trial,) = first["study"].trials
    return {"runs": runs, "trial": trial, "first": first, "again": again}


def test_the_trial_stops_at_the_point_its_rule_names(stopped):
    t, runs = stopped["trial"], stopped["runs"]
    result = json.loads((runs / "stop" / t.key / "result.json").read_text())
    assert [p["step"] for p in result["checkpoints"]] == [3]
    stop = result["stopped"]
    assert (stop["step"], stop["rule"]) == (3, "exact_member >= 0")
    assert stop["value"] == pytest.approx(result["checkpoints"][0]["metrics"]["exact_pct/member"])
    log = stopped["first"]["stdout"] + stopped["first"]["stderr"]
    assert "stopped at step 3 of 9 (train.stop_when: exact_member >= 0" in log
    assert f"score@3 {checkpoint_keys(t.keys, 3).score} computed" in log
    for step in (5, 7):  # not evaluated
        assert f"@{step} " not in log
        assert not (runs / "stages" / "score" / checkpoint_keys(t.keys, step).score).exists()


def test_mlflow_says_where_and_why(stopped):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{stopped['runs']}/mlflow.db")
    exp = client.get_experiment_by_name("stop")
    (run,) = client.search_runs([exp.experiment_id], "tags.`memlab.role` = 'trial'")
    assert run.data.tags["stopped_at"] == "3"
    assert run.data.tags["stopped_rule"] == "exact_member >= 0"
    assert "stopped_value" in run.data.metrics
    hist = client.get_metric_history(run.info.run_id, "heldout_ppl")
    assert sorted(m.step for m in hist) == [3, 9]  # (the final model is still the trial's own)


def test_a_rerun_finds_the_stopped_trial_done(stopped):
    log = stopped["again"]["stdout"] + stopped["again"]["stderr"]
    assert "1 trial(s) with every stage done" in log and " computed" not in log
