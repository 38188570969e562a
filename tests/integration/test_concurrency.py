"""Trials that run at once compute what they compute alone: the smoke sweep with one trial at
a time ends with every metric of every trial equal to the same sweep run with trials side by
side (the session's reference run: two at once on two CPUs)."""

import json

import pytest

from tests.integration.conftest import SMOKE, run_sweep

TIMING = {"train_time_s", "train_tokens_per_s"}  # how long it took, not what it computed


@pytest.mark.slow  # a second smoke sweep: ~3 min on 2 cores (CI runs it)
def test_one_trial_at_a_time_gives_the_same_results(tmp_path, smoke_sweep):
    alone = run_sweep(SMOKE, tmp_path / "runs", ["sweep.max_concurrent_trials=1",
                                                      "sweep.order=grid"])
    # (sweep.* is in no key: the same trials)
    assert [t.key for t in alone["study"].trials] == [t.key for t in smoke_sweep["study"].trials]
    for t in smoke_sweep["study"].trials:
        got = json.loads((tmp_path / "runs" / "smoke" / t.key / "result.json").read_text())
        want = json.loads((smoke_sweep["runs"] / "smoke" / t.key / "result.json").read_text())
        strip = lambda m: {k: v for k, v in m.items() if k not in TIMING}  # noqa: E731
        assert strip(got["metrics"]) == strip(want["metrics"]), t.name
        assert len(got["metrics"]) > 50  # every family: extraction, plagiarism, membership, ...
