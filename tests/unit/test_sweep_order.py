"""Issue 36 part 2: trials of different strategies start interleaved (sweep.order)."""

from types import SimpleNamespace

import pytest

from memlab.config.expand import load_study
from memlab.sweep.run import start_order
from tests.conftest import ROOT


def plan(strategy: str, seed: int):
    cfg = SimpleNamespace(train=SimpleNamespace(strategy=strategy))
    return SimpleNamespace(config=cfg, key=f"{strategy}{seed}")


def test_interleave_takes_one_trial_of_each_strategy_in_turn():
    plans = [plan(s, i) for s in ("full", "head", "lora") for i in range(3)]
    assert [p.key for p in start_order(plans, "interleave")] == [
        "full0", "head0", "lora0", "full1", "head1", "lora1", "full2", "head2", "lora2"]
    assert start_order(plans, "grid") == plans


def test_interleave_with_strategies_of_unequal_counts_keeps_every_trial_once():
    plans = [plan("full", 0), plan("full", 1), plan("full", 2), plan("lora", 0)]
    got = [p.key for p in start_order(plans, "interleave")]
    assert got == ["full0", "lora0", "full1", "full2"]
    assert start_order([], "interleave") == []


@pytest.mark.parametrize("order", ["interleave", "grid"])
def test_the_order_enters_no_key(order):
    study = load_study(ROOT / "sweeps" / "quickstart.yaml", [f"sweep.order={order}"])
    base = load_study(ROOT / "sweeps" / "quickstart.yaml", [])
    assert [t.key for t in study.trials] == [t.key for t in base.trials]


def test_an_unknown_order_is_refused():
    from memlab.config.load import ConfigError

    with pytest.raises(ConfigError, match="sweep.order"):
        load_study(ROOT / "sweeps" / "quickstart.yaml", ["sweep.order=random"])
