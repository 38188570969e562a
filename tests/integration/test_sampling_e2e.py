"""Probabilistic extraction end to end (issue 35 part 1): the smoke study's LoRA trial attacked
with 3 samples per prompt through `memlab run`; its summary's per-document figures agree with
a direct count over its score shards, and the report adds the discoverability columns."""

import csv
import itertools

import pandas as pd
import pytest

from memlab.io.paths import stage_dir
from memlab.io.shards import read_shards, read_summary
from tests.integration.conftest import SMOKE, run_sweep

N = 3
pytestmark = pytest.mark.slow  # a smoke sweep of its own (~80 s on 2 cores): CI's slow phase


@pytest.fixture(scope="module")
def sampled(tmp_path_factory):
    return run_sweep(SMOKE, tmp_path_factory.mktemp("runs"),
                     ["attack.decoding=sample", f"attack.samples_per_prompt={N}",
                      "attack.temperature=1.0", "grid.train.strategy=[lora]"])


def direct(c: int, n: int, k: int) -> float:
    """The share of the k-subsets of n draws, c of them successes, holding a success."""
    subsets = list(itertools.combinations([True] * c + [False] * (n - c), k))
    return sum(any(s) for s in subsets) / len(subsets)


def test_the_summary_counts_each_document_over_its_samples(sampled):
    (t,) = sampled["study"].trials
    score = stage_dir(t.config, "score", t.key)
    df = read_shards(score).to_pandas()
    assert (df.groupby("doc_id").size() == N).all()
    got = {(r["split"], r["dup_count"], r["metric"]): r["value"]
           for r in read_summary(score).to_pylist()}
    for split in ("member", "nonmember"):
        sel = df[df.split == split]
        c = sel.groupby("doc_id").exact_extracted.sum()
        assert got[(split, -1, "exact_pct")] == pytest.approx(100 * sel.exact_extracted.mean())
        assert got[(split, -1, "discoverable_n1_pct")] == pytest.approx(
            100 * pd.Series([direct(int(x), N, 1) for x in c]).mean())
        assert got[(split, -1, "exact_any_pct")] == pytest.approx(100 * (c > 0).mean())
        best = sel.groupby("doc_id").sim_to_source.max()
        assert got[(split, -1, "sim_src_max_mean")] == pytest.approx(best.mean())
        assert (split, -1, "discoverable_n10_pct") not in got  # 10 > n = 3
        sev = sel.plag_label.map({"verbatim": 0, "paraphrase": 1, "idea": 2, "none": 3})
        worst = sev.groupby(sel.doc_id).min()
        assert got[(split, -1, "plagiarism_any_docs_pct")] == pytest.approx(
            100 * (worst < 3).mean())


def test_the_report_shows_discoverability(sampled):
    out = sampled["stdout"]
    assert "disc@1_%" in out and "exact_any_%" in out and "any_docs_%" in out
    with open(sampled["runs"] / "smoke" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"disc@1_%_mean", "floor_disc@1_%_mean", "exact_any_%_lo"} <= set(rows[0])
    assert "disc@10_%_mean" not in rows[0]
