"""Bundle axes: one grid axis setting several fields at once (a model with the resources it
needs, a dataset with its format), shown by its label."""

import pytest

from memlab.config.expand import load_study
from memlab.config.load import ConfigError
from memlab.sweep.run import sweep_params

STUDY = """
sweep: {name: bundles}
model: {source: tiny}
grid:
  train.strategy: [full, lora]
  base_model:
    - {label: small, model.tiny.hidden: 32}
    - {label: big, model.tiny.hidden: 64, resources.full.workers: 2, train.full.zero_stage: 3}
"""


def _study(tmp_path, text):
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return load_study(path, [])


def test_a_bundle_sets_its_fields_together_and_is_shown_by_its_label(tmp_path):
    study = _study(tmp_path, STUDY)
    assert len(study.trials) == 4
    by = {(t.config.train.strategy, t.point["base_model"]): t.config for t in study.trials}
    big = by[("full", "big")]
    assert (big.model.tiny.hidden, big.resources.full.workers, big.train.full.zero_stage) \
        == (64, 2, 3)
    small = by[("full", "small")]
    assert (small.model.tiny.hidden, small.resources.full.workers) == (32, 1)
    assert by[("lora", "big")].model.tiny.hidden == 64
    params = sweep_params(study)
    assert "model.tiny.hidden" not in params and "grid.base_model" in params  # varied


@pytest.mark.parametrize("axis, message", [
    ("base_model: [{model.tiny.hiden: 3}]", "grid.base_model[0].model.tiny.hiden: unknown key"),
    ("base_model: [{model.tiny.hidden: big}]", "grid.base_model[0].model.tiny.hidden"),
    ("base_model: [{resources.full.cpu: 2}]", "changes only where or how a trial runs"),
    ("base_model: [{label: a, seed: 1}, {label: a, seed: 2}]", "labels must differ"),
    ("model: [{name: x}]", "names a section, not a field"),
])
def test_bad_bundles_are_refused_with_the_key(tmp_path, axis, message):
    with pytest.raises(ConfigError) as e:
        _study(tmp_path, f"model: {{source: tiny}}\ngrid:\n  {axis}\n")
    assert message in str(e.value)


@pytest.mark.parametrize("grid, sets, message", [
    ("base_model: [{model.tiny.hidden: 32}, {model.tiny.hidden: 64}]", ["model.tiny.hidden=48"],
     "--set model.tiny.hidden: grid axis base_model sets it"),
    ("seed: [0, 1]", ["seed=5"], "--set seed: grid axis seed sets it"),
    ("seed: [0, 1]\n  other: [{seed: 2}, {seed: 3}]", [], "sets seed, which grid axis seed"),
    ("strategy: [{train.strategy: full}]", [], "a bundle axis cannot be named one of"),
])
def test_a_field_set_twice_is_refused_not_silently_dropped(tmp_path, grid, sets, message):
    path = tmp_path / "study.yaml"
    path.write_text(f"model: {{source: tiny}}\ngrid:\n  {grid}\n")
    with pytest.raises(ConfigError) as e:
        load_study(path, sets)
    assert message in str(e.value)
