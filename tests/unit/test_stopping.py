"""Issue 34 part 3: early stopping (train.stop_when). The rule's decision on known metrics
(memlab/tracking/stopping.py); the runner evaluates the points in step order up to the first
at which it fires and no later one, and a trial done up to there is done (the runner's loop
with its stages faked); what `memlab validate` refuses, in one line; no key changes."""

import math
import subprocess
from types import SimpleNamespace

import pytest

from memlab.config.schema import STOP_MEASURES, StopSection, StudyConfig
from memlab.stages import runner
from memlab.tracking import desk
from memlab.tracking.stopping import first_stop
from tests.conftest import ROOT, SWEEPS

T = 0.8  # score.headline_threshold
SIM, FLOOR = f"sim_src_ge_{T:g}_pct/member", f"sim_src_ge_{T:g}_pct/nonmember"


def _m(sim: float, floor: float = 1.0, ppl: float = 10.0) -> dict:
    return {SIM: sim, FLOOR: floor, "heldout_ppl": ppl, "exact_pct/member": 0.0}


def test_the_rule_names_are_the_headline_names():
    assert STOP_MEASURES == desk.HEADLINE


def test_a_threshold_fires_at_the_first_point_above_it():
    rule = StopSection("sim_member_minus_floor", ">", 5)
    points = [(2, _m(3)), (6, _m(9)), (4, _m(6.5)), (8, _m(20))]  # (any order: by step)
    assert first_stop(rule, points, T) == {"step": 4, "rule": "sim_member_minus_floor > 5",
                                           "value": 5.5}
    assert first_stop(StopSection("sim_member", ">=", 9), points, T)["step"] == 6
    assert first_stop(StopSection("sim_member", ">", 99), points, T) is None  # never
    assert first_stop(StopSection(), points, T) is None  # no rule


def test_rising_compares_with_the_previous_point_and_skips_a_missing_value():
    rule = StopSection("heldout_ppl", "rising")
    ppl = [(1, _m(0, ppl=30)), (2, _m(0, ppl=20)), (3, _m(0, ppl=math.nan)),
           (4, _m(0, ppl=19)), (5, _m(0, ppl=19.5)), (6, _m(0, ppl=40))]
    assert first_stop(rule, ppl, T) == {"step": 5, "rule": "heldout_ppl rising", "value": 19.5}
    assert first_stop(StopSection("heldout_ppl", "falling"), ppl, T)["step"] == 2
    assert first_stop(rule, ppl[:1], T) is None  # (the first point has nothing to rise from)
    assert first_stop(StopSection("mia_auc", "<", 1), ppl, T) is None  # (absent: never)


class _At(SimpleNamespace):
    pass


def _fake_trial(monkeypatch, metrics: dict[int, dict], rule: StopSection, done=()):
    """A trial with points `metrics` (step -> its metrics) whose stages are faked: returns
    its context and the (stage, step) evaluated, in order."""
    cfg = StudyConfig()
    cfg.train.stop_when = rule
    ran = []
    monkeypatch.setattr(runner, "checkpoint_steps", lambda ctx: sorted(metrics))
    monkeypatch.setattr(runner, "_export_missing", lambda at: at.step not in done)
    monkeypatch.setattr(runner, "_reexport", lambda ctx, steps: ran.append(("export", steps)))
    monkeypatch.setattr(runner, "_own", lambda at, reading=False: ["gen", "score"])
    monkeypatch.setattr(runner, "run_stage", lambda at, s: ran.append((s, at.step)) or s)
    monkeypatch.setattr(runner, "_keep_or_drop", lambda at: ran.append(("keep", at.step)))
    monkeypatch.setattr(runner, "point_metrics", lambda at: metrics[at.step])
    monkeypatch.setattr(runner, "finished", lambda ctx, stage: True)
    monkeypatch.setattr(runner, "_point_done", lambda at: at.step in done)
    ctx = SimpleNamespace(cfg=cfg, has=lambda s: True, at=lambda step: _At(cfg=cfg, step=step))
    return ctx, ran


def test_the_runner_stops_at_the_point_the_rule_names(monkeypatch):
    metrics = {2: _m(3), 4: _m(6.5), 6: _m(9), 8: _m(20)}
    rule = StopSection("sim_member_minus_floor", ">", 5)
    ctx, ran = _fake_trial(monkeypatch, metrics, rule, done=(2, 4, 6, 8))
    assert list(runner.run_checkpoints(ctx)) == [2, 4]
    # not 6, not 8; their exports kept or dropped as train.keep_checkpoints says
    assert ran == [("gen", 2), ("score", 2), ("keep", 2), ("gen", 4), ("score", 4),
                   ("keep", 4), ("keep", 6), ("keep", 8)]
    ctx, ran = _fake_trial(monkeypatch, metrics, StopSection())  # no rule: every point
    assert list(runner.run_checkpoints(ctx)) == [2, 4, 6, 8]
    assert ran[0] == ("export", [2, 4, 6, 8])  # (no export on disk: each made again)


def test_a_rerun_makes_no_export_again_past_the_stop_point(monkeypatch):
    metrics = {2: _m(3), 4: _m(6.5), 6: _m(9), 8: _m(20)}
    rule = StopSection("sim_member_minus_floor", ">", 5)
    ctx, ran = _fake_trial(monkeypatch, metrics, rule, done=(2, 4))  # (6, 8: no export)
    assert list(runner.run_checkpoints(ctx)) == [2, 4]
    assert not [r for r in ran if r[0] == "export"]
    ctx, ran = _fake_trial(monkeypatch, metrics, rule, done=(2,))  # not known yet: all
    runner.run_checkpoints(ctx)
    assert ran[0] == ("export", [4, 6, 8])


def test_a_trial_done_up_to_its_stop_point_is_done(monkeypatch):
    metrics = {2: _m(3), 4: _m(6.5), 6: _m(9)}
    rule = StopSection("sim_member_minus_floor", ">", 5)
    assert runner.chain_done(_fake_trial(monkeypatch, metrics, rule, done=(2, 4))[0])
    assert not runner.chain_done(_fake_trial(monkeypatch, metrics, StopSection(),
                                             done=(2, 4))[0])
    assert not runner.chain_done(_fake_trial(monkeypatch, metrics, rule, done=(2,))[0])


POINTS = "train.eval_at=[0.25,0.5,1.0]"


@pytest.mark.parametrize("sets,key,says", [
    (["train.stop_when.metric=sim_membr_minus_floor", "train.stop_when.value=5", POINTS],
     "train.stop_when.metric", "did you mean 'sim_member_minus_floor'"),
    (["train.stop_when.metric=heldout_ppl", "train.stop_when.op=up", POINTS],
     "train.stop_when.op", "'rising'"),
    (["train.stop_when.metric=heldout_ppl", "train.stop_when.op=rising"],
     "train.stop_when", "needs evaluation points"),
    (["train.stop_when.metric=sim_member", "train.stop_when.op='>'", POINTS],
     "train.stop_when.value", "needs a threshold"),
    (["train.stop_when.metric=heldout_ppl", "train.stop_when.op=rising",
      "train.stop_when.value=3", POINTS], "train.stop_when.value", "no value"),
])
def test_validate_refuses_a_bad_rule_in_one_line(memlab_cmd, sets, key, says):
    args = [a for s in sets for a in ("--set", s)]
    r = subprocess.run([*memlab_cmd, "validate", str(SWEEPS / "smoke.yaml"), *args],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{key}:" in lines[0] and says in lines[0], r.stderr


def test_validate_takes_a_rule(memlab_cmd):
    sets = ["train.stop_when.metric=sim_member_minus_floor", "train.stop_when.value=5", POINTS]
    r = subprocess.run([*memlab_cmd, "validate", str(SWEEPS / "smoke.yaml"),
                        *(a for s in sets for a in ("--set", s))],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
