"""Issue 31, acceptance 5: a fourth fine-tuning strategy from one file outside memlab/
(tests/fixtures/strategies/layernorm.py: LayerNorm-only fine-tuning), named in a smoke study by
`train.plugins` and `train.strategy`: it plans (with its memory estimate), trains, generates,
scores, and shows in the report and in MLflow, with no edit to memlab/."""

import json
import shutil
import subprocess

import pytest
import yaml

from memlab.io.paths import stage_dir
from tests.conftest import ROOT, SWEEPS
from tests.integration.conftest import memlab_exe, run_sweep

PLUGIN = ROOT / "tests" / "fixtures" / "strategies" / "layernorm.py"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The smoke study with LayerNorm-only fine-tuning as its one strategy, in a folder of its
    own (with the defaults it is merged over)."""
    folder = tmp_path_factory.mktemp("study")
    shutil.copy(SWEEPS / "_defaults.yaml", folder / "_defaults.yaml")
    smoke = yaml.safe_load((SWEEPS / "smoke.yaml").read_text())
    smoke["sweep"]["name"] = "layernorm"
    smoke["train"]["plugins"] = [str(PLUGIN)]
    smoke["train"]["layernorm"] = {"lr": 2.0e-2}
    smoke["resources"] = {"layernorm": {"cpu": 1}}
    smoke["grid"] = {"train.strategy": ["layernorm"]}
    path = folder / "layernorm.yaml"
    path.write_text(yaml.safe_dump(smoke))
    return path


def test_memlab_knows_nothing_of_it():
    assert not [p for p in (ROOT / "memlab").rglob("*.py") if '"layernorm"' in p.read_text()]


def test_it_plans_with_its_memory_estimate(study):
    out = subprocess.run(memlab_exe() + ["plan", str(study)], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    head = next(line for line in lines if line.startswith("trial_key"))
    row = next(line for line in lines if " layernorm " in line)
    cells = dict(zip(head.replace("train GiB/GPU", "train_GiB").replace("gen GiB", "gen_GiB")
                     .split(), row.split()))
    assert cells["params"].endswith("M") and float(cells["train_GiB"]) > 0 \
        and float(cells["gen_GiB"]) > 0, row
    assert "layernorm" in out.stdout.split("per model:")[1]  # its column in the model table
    assert "layernorm: the normalisation layers" in out.stdout  # what it trains


def test_an_unknown_setting_of_it_is_refused_naming_its_key(study):
    out = subprocess.run(memlab_exe() + ["validate", str(study), "--set",
                                         "train.layernorm.rate=1"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 2 and "train.layernorm.rate: unknown key" in out.stderr, out.stderr


def test_it_trains_generates_scores_reports_and_logs(study, tmp_path):
    from mlflow.tracking import MlflowClient

    got = run_sweep(study, tmp_path / "runs")
    (trial,) = got["study"].trials
    cfg, keys = trial.config, trial.keys
    train = json.loads((stage_dir(cfg, "train", keys.train) / "_MANIFEST.json").read_text())
    assert train["strategy"] == "layernorm" and train["setup"]["norm_tensors"] == 2 * 2 + 1
    assert train["trainable_params"] == 5 * cfg.model.tiny.hidden  # (tiny Llama: RMSNorm)
    assert train["final_loss"] < train["first_loss"]
    for name in ("gen", "score"):
        folder = stage_dir(cfg, name, getattr(keys, name))
        assert (folder / "_MANIFEST.json").is_file() and list(folder.glob("part-*.parquet"))
    result = json.loads((got["runs"] / "layernorm" / trial.key / "result.json").read_text())
    assert result["strategy"] == "layernorm" and result["metrics"]["heldout_ppl"] > 1
    assert any(line.startswith("layernorm ") for line in got["stdout"].splitlines())
    csv_rows = (got["runs"] / "layernorm" / "results.csv").read_text().splitlines()
    assert any(row.startswith("layernorm,") for row in csv_rows[1:])
    client = MlflowClient(tracking_uri=f"sqlite:///{got['runs']}/mlflow.db")
    exp = client.get_experiment_by_name("layernorm")
    (run,) = client.search_runs([exp.experiment_id], "tags.`memlab.role` = 'trial'")
    assert run.data.tags["strategy"] == "layernorm" and run.info.status == "FINISHED"
    assert run.data.params["train.norm_tensors"] == "5"
    assert run.data.params["train.layernorm.lr"] == "0.02"
    assert "exact_pct/member_dup4" in run.data.metrics
