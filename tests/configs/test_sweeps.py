"""Every study under sweeps/ validates and expands."""

import pytest

from memlab.config.expand import load_study
from tests.conftest import SWEEPS

STUDIES = sorted(p for p in SWEEPS.rglob("*.yaml") if not p.name.startswith("_"))


def test_there_are_studies():
    assert any(p.name == "quickstart.yaml" for p in STUDIES)


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: str(p.relative_to(SWEEPS)))
def test_study_validates(path):
    study = load_study(path)
    assert study.trials
    assert len({t.key for t in study.trials}) == len(study.trials)
