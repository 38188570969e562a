"""Probabilistic extraction (issue 35 part 1; METRICS.md section 7): the (n, p)-discoverability
estimator against a direct count, the per-document figures of a group's samples (most severe
plagiarism label, best similarity), and a study of one sample per prompt keeping its summary
and report as they were."""

import itertools
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from memlab.config.schema import ScoreSection, StudyConfig
from memlab.scoring import suite
from memlab.scoring.exact import discoverable


def direct(c: int, n: int, k: int) -> float:
    """The share of the k-subsets of n draws (c of them successes) holding a success."""
    draws = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(draws[i] for i in s) for s in subsets) / len(subsets)


def test_the_estimator_is_the_share_of_every_subset_of_the_draws_with_a_success():
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert discoverable(c, n, k) == pytest.approx(direct(c, n, k), abs=1e-12)
                assert discoverable(c, n, k) == pytest.approx(
                    1 - math.comb(n - c, k) / math.comb(n, k), abs=1e-12)


def test_edge_cases_k_one_is_the_fraction_and_k_n_is_any_success():
    c, n = np.array([0, 1, 3, 7, 7]), np.array([7, 7, 7, 7, 10])
    assert discoverable(c, n, 1) == pytest.approx(c / n)
    assert discoverable(c, np.full(5, 7), 7).tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]
    assert discoverable(0, 100, 100) == 0.0 and discoverable(1, 100, 100) == 1.0
    with pytest.raises(ValueError):
        discoverable(1, 5, 6)  # k > n: no unbiased estimate
    with pytest.raises(ValueError):
        discoverable(6, 5, 1)


def test_the_estimator_at_n_100_matches_resampling_with_a_fixed_seed():
    n, c, k = 100, 3, 10
    exact = 1 - math.comb(n - c, k) / math.comb(n, k)
    assert discoverable(c, n, k) == pytest.approx(exact, rel=1e-12)
    rng = np.random.default_rng(35)
    draws = np.zeros(n, dtype=bool)
    draws[:c] = True
    hits = np.mean([draws[rng.choice(n, k, replace=False)].any() for _ in range(20_000)])
    assert hits == pytest.approx(exact, abs=0.01)  # (3 sigma ~ 0.008)


def cols(sec: ScoreSection) -> dict:
    return {c.name: c for c in suite.columns(sec)}


def test_discoverability_of_a_group_per_document_and_only_up_to_its_n():
    sec = ScoreSection(discoverable_within=[1, 2, 4, 10])
    doc = pd.Series(["a"] * 4 + ["b"] * 4)
    exact = pd.Series([False, True, False, False] + [False] * 4)
    got = cols(sec)["exact_extracted"].per_doc.aggregate(exact, doc, sec)
    # doc a: c=1 of 4: 1/4, 1 - C(3,2)/C(4,2) = 1/2, 1; doc b: 0; k=10 > n: left out
    assert got == pytest.approx({"discoverable_n1_pct": 12.5, "discoverable_n2_pct": 25.0,
                                 "discoverable_n4_pct": 50.0, "exact_any_pct": 50.0,
                                 "exact_count_mean": 0.5})
    assert got["discoverable_n1_pct"] == 100 * exact.mean()  # n'=1: the per-sample rate
    scales = cols(sec)["exact_extracted"].scales(sec)
    assert scales["exact_any_pct"].share and scales["exact_any_pct"].of == "docs"
    assert scales["discoverable_n10_pct"].bounded and not scales["discoverable_n10_pct"].share


def test_a_document_counts_at_its_most_severe_sample_with_their_count():
    sec = ScoreSection()
    doc = pd.Series(["a"] * 4 + ["b"] * 4 + ["c"] * 4)
    labels = pd.Series(["none", "idea", "verbatim", "verbatim",
                        "paraphrase", "idea", "none", "paraphrase", "none", "none", "none",
                        "none"])
    got = cols(sec)["plag_label"].per_doc.aggregate(labels, doc, sec)
    assert got == pytest.approx({
        "verbatim_docs_pct": 100 / 3, "paraphrase_docs_pct": 100 / 3, "idea_docs_pct": 0.0,
        "plagiarism_any_docs_pct": 200 / 3, "verbatim_docs_count_mean": 2.0,
        "paraphrase_docs_count_mean": 2.0})  # (no document at idea: no count)


def test_a_document_counts_at_its_most_similar_sample():
    sec = ScoreSection(sim_thresholds=[0.8], headline_threshold=0.8)
    doc = pd.Series(["a", "a", "b", "b"])
    sim = pd.Series([0.2, 0.85, 0.5, 0.6])
    c = cols(sec)["sim_to_source"]
    assert c.per_doc.aggregate(sim, doc, sec) == pytest.approx(
        {"sim_src_max_mean": 0.725, "sim_src_max_ge_0.8_pct": 50.0})
    assert c.per_doc.report(sec) == {"sim_src_max_ge_0.8_pct": "sim_max>=0.8_%"}


def scores(n: int) -> pa.Table:
    """Score rows of 2 members (dup 1 and 4) and 2 non-members, n samples each: member m4
    extracts in its first sample only, m1 never; one non-member sample is paraphrase."""
    from memlab.io.shards import score_schema

    sec = ScoreSection()
    schema = score_schema([(c.name, c.type) for c in suite.columns(sec)])
    rows = []
    for doc, split, dup in (("m1", "member", 1), ("m4", "member", 4), ("x1", "nonmember", 1),
                            ("x2", "nonmember", 1)):
        for s in range(n):
            rows.append({
                "trial_key": "t", "sample_id": f"{doc}#{s}", "doc_id": doc, "split": split,
                "dup_count": dup, "sample_idx": s, "doc_nll": 2.0, "doc_tokens": 64,
                "exact_extracted": doc == "m4" and s == 0, "token_match_frac": 0.5,
                "lcs_tokens": 3, "sim_to_source": 0.9 if doc == "m4" and s == 0 else 0.1,
                "sim_to_corpus": 0.5,
                "plag_label": "paraphrase" if doc == "x1" and s == n - 1 else "none"})
    return pa.Table.from_pylist(rows, schema=schema)


def summary(table: pa.Table, cfg: StudyConfig) -> dict:
    from memlab.stages.score import summarize

    return {(r["split"], r["dup_count"], r["metric"]): r["value"]
            for r in summarize(table, cfg).to_pylist()}


def test_one_sample_per_prompt_keeps_its_summary_and_several_add_per_document_figures():
    cfg = StudyConfig()
    one = summary(scores(1), cfg)
    new = ("discoverable_", "_docs_", "exact_any", "exact_count", "_max_")
    assert not [k for k in one if any(p in k[2] for p in new)]
    assert one[("member", 4, "exact_pct")] == 100.0
    four = summary(scores(4), cfg)
    assert set(one) <= set(four)
    assert four[("member", 4, "exact_pct")] == 25.0  # per sample, as before
    assert four[("member", 4, "discoverable_n1_pct")] == 25.0
    assert ("member", 4, "discoverable_n10_pct") not in four  # 10 > n = 4
    assert four[("member", -1, "exact_any_pct")] == 50.0
    assert four[("member", -1, "exact_count_mean")] == 0.5
    assert four[("member", 4, "sim_src_max_ge_0.8_pct")] == 100.0
    assert four[("member", 4, "sim_src_ge_0.8_pct")] == 25.0
    assert four[("nonmember", -1, "paraphrase_docs_pct")] == 50.0
    assert four[("nonmember", -1, "paraphrase_docs_count_mean")] == 1.0
    assert four[("nonmember", -1, "paraphrase_pct")] == 12.5


def test_the_extraction_table_shows_discoverability_only_where_a_trial_has_it():
    from memlab.report.numbers import aggregate
    from memlab.report.tables import headings, registry_tables

    cfg = StudyConfig()

    def groups(n: int):
        rows = [{"split": s, "dup_count": d, "metric": m, "value": v}
                for (s, d, m), v in summary(scores(n), cfg).items()]
        rows += [{"split": "member", "dup_count": d, "metric": "docs", "value": v}
                 for d, v in ((1, 1.0), (4, 1.0), (-1, 2.0))]
        res = {"strategy": "full", "model": "m", "key": f"k{n}", "seed": 0}
        return aggregate([(res, rows)], [])

    secs = [cfg.score]
    assert headings(secs, groups(1)) == headings(secs)  # n = 1: the tables as they were
    heads = headings(secs, groups(4))
    extraction = [h for _, h, _ in heads["extraction"]]
    assert extraction[:3] == [h for _, h, _ in headings(secs)["extraction"]]
    assert extraction[3:] == ["disc@1_%", "exact_any_%", "sim_max>=0.8_%"]
    table = registry_tables(groups(4), heads, ["strategy", "model"])[0]
    assert "disc@1_%, exact_any_%: each document over its n samples" in table.legend
    from memlab.report.intervals import one_share

    got = groups(4)[0].get("member", -1, "exact_any_pct")  # 1 of its 2 documents
    assert (got.lo, got.hi) == pytest.approx(one_share(50.0, 2))
