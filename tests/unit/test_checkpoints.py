"""Issue 34 part 1: evaluation points (train.eval_at / eval_every / keep_checkpoints) as the
config sees them: the steps they resolve to, the keys of a checkpoint's own stages, what
`memlab validate` refuses, and the keys of every study under sweeps/, which neither setting
changes (adding evaluation points must not train again under a new key)."""

import dataclasses
import hashlib
import json
import subprocess

import pytest

from memlab.config.expand import load_study
from memlab.config.keys import checkpoint_keys, eval_steps
from memlab.config.schema import StudyConfig
from tests.conftest import ROOT, SWEEPS

# sha256 (16 hex) of the StageKeys of every trial of each study, in study order, as main had
# them before evaluation points existed (99affb7); dynamics.yaml, which has points of its own
# (train.eval_at: cleared where a case sets eval_every), came later: its keys as computed then;
# attacks.yaml (issue 35 part 1) likewise, as it is since its population, calibrated signals and
# sample-and-rank draws were added for issue 35's GPU record (its own keys changed then)
KEYS_BEFORE = {
    "arxiver.yaml": "4fbdabed041761d2",
    "attacks.yaml": "dd4ee95867b77625",
    "chatdoctor.yaml": "c09f6ca2e21956c8",
    "dynamics.yaml": "197305f98e0851bb",
    "gpu-1.yaml": "4fe289ead8d45ffc",
    "lora-design.yaml": "d706199a86896548",
    "paper.yaml": "81a57cd96149b8c3",
    "quickstart.yaml": "51d1e948433c9bff",
    "smoke.yaml": "ec80786084f9a842",
    "strategies.yaml": "9a0064dd9cc819bc",
}


def _digest(study: str, sets: list[str] = ()) -> str:
    trials = load_study(SWEEPS / study, list(sets)).trials
    blob = json.dumps([dataclasses.asdict(t.keys) for t in trials]).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def test_every_study_under_sweeps_is_pinned():
    assert set(KEYS_BEFORE) == {p.name for p in SWEEPS.glob("*.yaml")
                                if not p.name.startswith("_")}


@pytest.mark.parametrize("study", sorted(KEYS_BEFORE))
def test_evaluation_points_keep_every_key(study):
    assert _digest(study) == KEYS_BEFORE[study]  # the settings at their defaults
    for sets in (["train.eval_at=[0.25,0.5,0.75,1.0]", "train.keep_checkpoints=none"],
                 ["train.eval_at=[]", "train.eval_every=3", "train.keep_checkpoints=adapters"],
                 ["train.eval_at=[]", "train.eval_every=3", "train.stop_when.metric=heldout_ppl",
                  "train.stop_when.op=rising"]):
        assert _digest(study, sets) == KEYS_BEFORE[study], sets


def _cfg(**train) -> StudyConfig:
    cfg = StudyConfig()
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


def test_eval_steps():
    assert eval_steps(_cfg(), 9) == []  # the final model only, as before
    # ceil(fraction x steps); the last step is the final model, not a checkpoint
    assert eval_steps(_cfg(eval_at=[0.25, 0.5, 0.75, 1.0]), 9) == [3, 5, 7]
    assert eval_steps(_cfg(eval_at=[0.75, 0.25, 0.125, 0.875]), 9) == [2, 3, 7, 8]
    assert eval_steps(_cfg(eval_at=[0.01, 0.02]), 9) == [1]  # (at least step 1, once)
    assert eval_steps(_cfg(eval_at=[1 / 3]), 9) == [3]  # (no float fuzz past the step)
    assert eval_steps(_cfg(eval_every=3), 9) == [3, 6]
    assert eval_steps(_cfg(eval_every=4), 9) == [4, 8]
    assert eval_steps(_cfg(eval_every=20), 9) == []


def test_a_checkpoint_has_its_own_gen_and_score_keys_and_shares_the_rest():
    keys = load_study(SWEEPS / "smoke.yaml").trials[0].keys
    at3, at5 = checkpoint_keys(keys, 3), checkpoint_keys(keys, 5)
    for k in (at3, at5):
        assert (k.data, k.train, k.base) == (keys.data, keys.train, keys.base)
        assert k.gen != keys.gen and k.score != keys.score and k.trial == k.score
    assert at3.gen != at5.gen and at3.score != at5.score
    assert checkpoint_keys(keys, 3) == at3  # content-addressed: the same step, the same keys


@pytest.mark.parametrize("sets,key,starts", [
    (["train.eval_at=[0.5]", "train.eval_every=2"], "train.eval_every", "2 with train.eval_at"),
    (["train.eval_at=[0.5,1.5]"], "train.eval_at", ""),
    (["train.eval_at=[0]"], "train.eval_at", ""),
    (["train.eval_every=-1"], "train.eval_every", ""),
    (["train.keep_checkpoints=some"], "train.keep_checkpoints", ""),
])
def test_validate_refuses_bad_evaluation_points_in_one_line(memlab_cmd, sets, key, starts):
    args = [a for s in sets for a in ("--set", s)]
    r = subprocess.run([*memlab_cmd, "validate", str(SWEEPS / "smoke.yaml"), *args],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{key}: {starts}" in lines[0], r.stderr


def test_validate_takes_evaluation_points(memlab_cmd):
    r = subprocess.run([*memlab_cmd, "validate", str(SWEEPS / "smoke.yaml"), "--set",
                        "train.eval_at=[0.25,0.5,0.75,1.0]", "--set",
                        "train.keep_checkpoints=adapters"], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr


# -- part 2: the train stage exports the model at each evaluation point ----------------------

def _tree(folder):
    from memlab.config.digests import file_sha256

    return {str(p.relative_to(folder)): file_sha256(p) for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("strategy,saved", [("lora", "adapter"), ("head", "full_model"),
                                            ("full", "full_model")])
def test_the_train_stage_exports_each_point_and_trains_the_same(tmp_path, strategy, saved):
    """Each point's export in at/<step>/ (the strategy's adapter or full weights, a manifest
    that generation loads from); the final model is the one a training without points gives;
    an export lost is made again bit for bit (CPU, float32) by `reexport`, which writes
    nothing else."""
    from memlab.components.models import load_trained
    from memlab.io.shards import read_manifest
    from memlab.stages.train import WORK
    from memlab.stages.work import TrialContext
    from tests.conftest import stage
    from tests.unit.test_train_stage import _setup

    cfg, base, data = _setup(tmp_path, "llama", strategy, epochs=3)
    plain = stage("train", cfg, base=base, data=data, train=tmp_path / "plain").manifest
    assert plain["train_steps"] == 9 and not (tmp_path / "plain" / "at").exists()
    cfg.train.eval_at = [0.25, 0.5, 0.75, 1.0]
    train = tmp_path / "train"
    man = stage("train", cfg, base=base, data=data, train=train).manifest
    assert sorted(int(p.name) for p in (train / "at").iterdir()) == [3, 5, 7]
    for step in (3, 5, 7):
        at = read_manifest(train / "at" / str(step))
        assert (at["step"], at["saved"], at["base_model"]) == (step, saved, base)
        load_trained(train / "at" / str(step))  # (what the point's generate stage loads)
    assert _tree(train / "model") == _tree(tmp_path / "plain" / "model")
    assert (man["train_steps"], man["final_loss"]) == (9, plain["final_loss"])
    # an export lost (a point added later, or dropped): made again, the same, nothing else
    import shutil

    before = {p: p.stat().st_mtime_ns for p in train.rglob("*") if p.is_file()}
    five = _tree(train / "at" / "5")
    shutil.rmtree(train / "at" / "5")
    WORK.reexport(TrialContext(cfg, {"data": data, "train": train}, base_model=base), train,
                  [5])
    assert _tree(train / "at" / "5") == five
    others = {p: p.stat().st_mtime_ns for p in train.rglob("*") if p.is_file()}
    assert {p: t for p, t in others.items() if "/at/5/" not in str(p)} == \
        {p: t for p, t in before.items() if "/at/5/" not in str(p)}


# -- part 3: what stays of an export once its point is scored; its curves in MLflow ----------

@pytest.mark.parametrize("keep,saved,kept", [
    ("all", "full_model", True), ("all", "adapter", True),
    ("adapters", "adapter", True), ("adapters", "full_model", False),
    ("none", "adapter", False), ("none", "full_model", False)])
def test_keep_checkpoints_drops_the_weights_and_keeps_the_manifest(tmp_path, keep, saved,
                                                                   kept):
    from memlab.io.shards import manifest_digest, write_manifest
    from memlab.stages.runner import _keep_or_drop
    from memlab.stages.work import TrialContext

    at = tmp_path / "train" / "at" / "3"
    (at / "model").mkdir(parents=True)
    (at / "model" / "weights.safetensors").write_bytes(b"w" * 100)
    write_manifest(at, outputs=["model"], step=3, saved=saved, base_model="base")
    digest = manifest_digest(at)
    _keep_or_drop(TrialContext(_cfg(keep_checkpoints=keep), {"train": at}))
    assert (at / "model").exists() == kept
    assert manifest_digest(at) == digest  # (the point's generate stage was built from it)


def test_curves_put_each_headline_metric_against_the_step():
    from memlab.tracking.desk import curves

    def m(exact, auc, ppl):
        return {"exact_pct/member": exact, "exact_pct/nonmember": 0.0, "auc_ref/member": auc,
                "heldout_ppl": ppl, "sim_src_ge_0.8_pct/member": float("nan")}

    got = curves([(9, m(50.0, 0.9, 30.0)), (3, m(0.0, 0.6, 90.0)), (6, m(12.5, 0.7556, 40.0))],
                 0.8)
    assert got["exact_member"] == [(3, 0.0), (6, 12.5), (9, 50.0)]
    assert got["exact_floor"] == [(3, 0.0), (6, 0.0), (9, 0.0)]
    assert got["mia_auc"] == [(3, 0.6), (6, 0.756), (9, 0.9)]  # (rounded as the headline)
    assert got["heldout_ppl"] == [(3, 90.0), (6, 40.0), (9, 30.0)]
    assert "sim_member" not in got  # (no finite value: nothing to draw)
