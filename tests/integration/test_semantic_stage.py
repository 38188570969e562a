"""score.plagiarism.method=semantic in the score stage: its corpus embeddings and document
index are prepared once per dataset next to the BM25 index, and the scorer types the smoke
sweep's generations with them (pan2014's keys unchanged by the new settings)."""

import dataclasses

import pyarrow.parquet as pq

from memlab.config.expand import load_study
from memlab.io.paths import stage_dir
from memlab.scoring.plagiarism.scorer import PlagiarismScorer, _prepare
from memlab.scoring.plagiarism.typer import LABELS
from memlab.scoring.registry import Context
from tests.integration.conftest import SMOKE


def test_semantic_scorer_on_the_smoke_sweeps_generations(smoke_sweep):
    t = smoke_sweep["study"].trials[0]
    cfg = t.config
    sem = dataclasses.replace(cfg, score=dataclasses.replace(
        cfg.score, plagiarism=dataclasses.replace(cfg.score.plagiarism, method="semantic")))
    data = stage_dir(cfg, "data", t.keys.data)
    prepared = _prepare(sem, data)
    assert prepared["semantic"].startswith(prepared["index"])  # (next to the BM25 index)
    assert _prepare(sem, data) == prepared  # built once
    rows = pq.read_table(next(stage_dir(cfg, "gen", t.keys.gen).glob("part-*.parquet")))
    rows = rows.to_pylist()
    got = PlagiarismScorer(Context(sem, prepared))(rows)
    assert len(got["plag_label"]) == len(rows) and set(got["plag_label"]) <= set(LABELS)
    pan = PlagiarismScorer(Context(cfg, _prepare(cfg, data)))(rows)
    # the verbatim rule is the same in both methods
    assert [x == "verbatim" for x in got["plag_label"]] == \
        [x == "verbatim" for x in pan["plag_label"]]


def test_semantic_changes_the_score_key_only():
    base = load_study(SMOKE)
    sem = load_study(SMOKE, ["score.plagiarism.method=semantic"])
    for a, b in zip(base.trials, sem.trials):
        assert (a.keys.train, a.keys.gen) == (b.keys.train, b.keys.gen)
        assert a.keys.score != b.keys.score
