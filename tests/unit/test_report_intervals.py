"""Issue 35, part 5: the report's intervals stay inside each metric's declared range
(memlab/report/intervals.py): one trial's share of samples by Wilson, the mean over seeds by
each method of score.intervals.over_seeds; the mean itself unchanged; the header names the
method."""

import math
import statistics

import pytest
from scipy import stats

from memlab.config.keys import config_identity
from memlab.config.schema import IntervalSection, ScoreSection, StudyConfig
from memlab.report import intervals
from memlab.report.intervals import Intervals, one_share, over_seeds
from memlab.report.numbers import aggregate
from memlab.report.render import render
from memlab.scoring import suite
from memlab.scoring.registry import PERCENT, SHARE, UNBOUNDED, UNIT, mean, percent

METHODS = ("logit", "bootstrap", "t")
EDGES = {  # seed values of a rate (percent) that a plain Student-t interval mishandles
    "all zero": [0.0, 0.0, 0.0],
    "all 100": [100.0, 100.0, 100.0],
    "n=2, 0 and 100": [0.0, 100.0],
    "the GPU study's 0.5 [-0.7, 1.7]": [0.0, 0.5, 1.0],
    "one seed far off": [0.0, 0.0, 90.0],
    "near 100": [97.0, 99.0, 100.0],
}


def wilson(k: int, n: int, z: float = stats.norm.ppf(0.975)) -> tuple[float, float]:
    """The Wilson score interval written out (Wilson 1927), as a fraction."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("k, n, lo, hi", [  # Newcombe 1998, Statist. Med. 17:857-872, Table
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605),  # II, method 3 (score, no
    (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)])          # continuity correction)
def test_wilson_gives_the_textbook_values(k, n, lo, hi):
    got = one_share(100.0 * k / n, n)
    assert (round(got[0] / 100, 4), round(got[1] / 100, 4)) == (lo, hi)
    assert got == tuple(pytest.approx(100 * x) for x in wilson(k, n))


def test_one_share_inside_0_100_at_both_ends_and_by_every_method():
    for method in ("wilson", "wilsoncc", "exact"):
        zero, full = one_share(0.0, 8, method), one_share(100.0, 8, method)
        assert zero[0] == 0.0 and 0 < zero[1] < 100 and full[1] == 100.0 and 0 < full[0] < 100
    assert one_share(0.0, 8) == pytest.approx((0.0, 32.44), abs=0.01)  # 0 of 8: rule of ~3/n
    assert one_share(12.5, 8)[0] > 0 and one_share(12.5, 8)[0] < 12.5 < one_share(12.5, 8)[1]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("edge", list(EDGES))
@pytest.mark.parametrize("samples", [8, 200, None])
def test_a_rate_over_seeds_stays_in_0_100_and_holds_its_mean(method, edge, samples):
    values = EDGES[edge]
    lo, hi = over_seeds(values, SHARE, samples, IntervalSection(over_seeds=method))
    assert 0.0 <= lo <= statistics.fmean(values) <= hi <= 100.0
    assert isinstance(lo, float) and isinstance(hi, float)


@pytest.mark.parametrize("method", METHODS)
def test_an_auc_over_seeds_stays_in_0_1(method):
    for values in ([1.0, 1.0, 1.0], [0.5, 1.0], [0.98, 1.0, 1.0], [0.0, 0.02]):
        lo, hi = over_seeds(values, UNIT, 8, IntervalSection(over_seeds=method))
        assert 0.0 <= lo <= statistics.fmean(values) <= hi <= 1.0


def test_the_gpu_studys_rate_no_longer_leaves_its_range_and_unbounded_ones_are_as_before():
    values = [0.0, 0.5, 1.0]  # the plain t interval: 0.5 [-0.74, 1.74]
    plain = intervals.t_interval(values)
    assert plain[0] < 0
    assert over_seeds(values, UNBOUNDED) == plain  # perplexity, exposure: as they were
    lo, hi = over_seeds(values, SHARE, 200)
    assert lo == 0.0 and hi > 1.0
    # t, cut: the Student-t interval intersected with [0, 100], its upper end kept
    assert over_seeds(values, SHARE, 200, IntervalSection(over_seeds="t")) == \
        (0.0, pytest.approx(plain[1]))


def test_logit_is_the_t_interval_of_the_shifted_logits_mapped_back():
    values, n = [20.0, 30.0, 45.0], 40
    shifted = [(v / 100 * n + 0.5) / (n + 1) for v in values]
    logits = [math.log(p / (1 - p)) for p in shifted]
    a, b = stats.t.interval(0.95, 2, loc=statistics.fmean(logits), scale=stats.sem(logits))
    back = [((1 / (1 + math.exp(-x))) * (n + 1) - 0.5) / n * 100 for x in (a, b)]
    assert over_seeds(values, SHARE, n) == tuple(pytest.approx(x) for x in back)
    assert back[1] - 31.67 > 31.67 - back[0]  # skewed away from the nearer bound


def test_bootstrap_over_seeds_is_reproducible_and_within_the_seeds_values():
    s = IntervalSection(over_seeds="bootstrap", resamples=500, seed=3)
    values = [10.0, 12.0, 30.0, 11.0]
    first = over_seeds(values, SHARE, 100, s)
    assert first == over_seeds(values, SHARE, 100, s)
    assert 10.0 <= first[0] < first[1] <= 30.0


def summary(seed_values: dict, samples: int) -> list[dict]:
    """Summary rows of a trial: (split, dup, metric) -> value, with each row's samples."""
    rows = [{"split": s, "dup_count": d, "metric": m, "value": v}
            for (s, d, m), v in seed_values.items()]
    rows += [{"split": s, "dup_count": d, "metric": "samples", "value": float(samples)}
             for s, d in {(s, d) for s, d, _ in seed_values}]
    return rows


def trial(seed: int, values: dict, samples: int = 8) -> tuple[dict, list[dict]]:
    res = {"strategy": "lora", "model": "tiny", "seed": seed, "key": f"lora-{seed}",
           "point": {"seed": seed}, "train": {"train_time_s": 1.0 + seed}}
    return res, summary(values, samples)


def test_one_seed_a_share_gets_wilson_a_mean_fraction_none_the_bootstrap_its_own():
    (g,) = aggregate([trial(0, {
        ("member", 4, "exact_pct"): 0.0, ("member", 8, "exact_pct"): 100.0,
        ("member", 4, "match_pct"): 6.6,  # a mean fraction: bounded, not k of n
        ("member", 4, "auc_loss"): 1.0, ("member", 4, "auc_loss_lo"): 1.0,
        ("member", 4, "auc_loss_hi"): 1.0,
        ("nonmember", -1, "ppl"): 90.0})], [])
    zero, full = g.get("member", 4, "exact_pct"), g.get("member", 8, "exact_pct")
    assert (zero.mean, zero.lo, zero.hi) == (0.0, 0.0, pytest.approx(32.44, abs=0.01))
    assert (full.mean, full.hi) == (100.0, 100.0) and full.lo == pytest.approx(67.56, abs=0.01)
    assert g.get("member", 4, "match_pct").lo is None
    assert (g.get("member", 4, "auc_loss").lo, g.get("member", 4, "auc_loss").hi) == (1.0, 1.0)
    assert g.get("nonmember", -1, "ppl").lo is None


def test_over_seeds_the_mean_is_unchanged_and_rates_stay_in_range_perplexity_not_bound():
    values = {0: (0.0, 0.0, 1.0, 80.0), 1: (0.0, 0.5, 1.0, 95.0), 2: (0.0, 1.0, 1.0, 99.0)}
    records = [trial(s, {("member", 4, "exact_pct"): a, ("member", 8, "exact_pct"): b,
                         ("member", 4, "auc_ref"): c, ("nonmember", -1, "ppl"): d},
                     samples=200) for s, (a, b, c, d) in values.items()]
    for method in METHODS:
        how = Intervals(IntervalSection(over_seeds=method), Intervals.of().scales)
        (g,) = aggregate(records, [], how)
        for i, (metric, dup, top) in enumerate((("exact_pct", 4, 100), ("exact_pct", 8, 100),
                                                ("auc_ref", 4, 1))):
            s = g.get("member", dup, metric)
            assert s.mean == statistics.fmean(v[i] for v in values.values())  # unchanged
            assert 0.0 <= s.lo <= s.mean <= s.hi <= top, (method, metric, dup)
        ppl = g.get("nonmember", -1, "ppl")
        t = intervals.t_interval([80.0, 95.0, 99.0])
        assert (ppl.lo, ppl.hi) == (pytest.approx(t[0]), pytest.approx(t[1]))


def test_the_registry_declares_every_reported_rate_and_auc_bounded():
    scales = suite.scales(ScoreSection())
    assert scales["exact_pct"] == SHARE and scales["match_pct"] == PERCENT
    assert scales["sim_src_ge_0.8_pct"] == SHARE and scales["verbatim_pct"] == SHARE
    assert scales["plagiarism_any_pct"] == SHARE
    assert scales["auc_ref"] == UNIT and scales["tpr1_loss"] == PERCENT
    assert scales["rougeL"] == PERCENT and scales["sim_to_source_mean"].lo == -1.0
    assert "lcs_tokens_mean" not in scales or not scales["lcs_tokens_mean"].bounded
    assert "flesch" not in scales and "ppl" not in scales  # unbounded: not declared
    # sample-and-rank's figures (no scorer's columns): shares in percent, counts unbounded
    assert scales["rank_precision_at_100"] == scales["rank_precision_at_10_ref"] == PERCENT
    assert scales["rank_verbatim_pct"] == PERCENT and "rank_unique" not in scales
    assert percent("x", share=True).scales(ScoreSection()) == {"x": SHARE}
    assert mean("y").scales(ScoreSection()) == {"y": UNBOUNDED}


def test_the_report_header_names_the_method(tmp_path):
    records = [trial(s, {("member", 4, "exact_pct"): 12.5 * s,
                         ("nonmember", -1, "exact_pct"): 0.0}) for s in (0, 1)]
    for method, words in (("logit", "logit scale"), ("bootstrap", "percentile bootstrap"),
                          ("t", "cut to the metric's range")):
        how = Intervals(IntervalSection(over_seeds=method), Intervals.of().scales)
        rep = render("demo", tmp_path / method, aggregate(records, [], how), [],
                     {"extraction": [("exact_pct", "exact_%", "")]}, how=how)
        assert words in rep.text and "Wilson score interval" in rep.text
        assert words in (tmp_path / method / "results.md").read_text()
        floor = rep.groups[0].get("nonmember", -1, "exact_pct")
        # (0 of 8 in both seeds: the pooled 0 of 16's interval, not a zero-width one)
        assert (floor.lo, floor.hi) == (0.0, pytest.approx(one_share(0.0, 16)[1]))


def test_the_interval_settings_are_in_no_key():
    a, b = StudyConfig(), StudyConfig()
    b.score.intervals = IntervalSection(over_seeds="bootstrap", one_seed="exact",
                                        continuity=1.0, resamples=10, seed=4)
    assert config_identity(a) == config_identity(b)


def test_a_share_of_many_samples_per_prompt_is_over_its_documents():
    """100 samples of each of 8 prompts: the samples of one document are not independent, so
    one seed's Wilson interval is over the 8 documents, not the 800 samples."""
    res, rows = trial(0, {("member", 4, "exact_pct"): 50.0}, samples=800)
    rows.append({"split": "member", "dup_count": 4, "metric": "docs", "value": 8.0})
    (g,) = aggregate([(res, rows)], [])
    s = g.get("member", 4, "exact_pct")
    assert (s.lo, s.hi) == pytest.approx(one_share(50.0, 8), abs=1e-9)
    assert s.hi - s.lo > 3 * (one_share(50.0, 800)[1] - one_share(50.0, 800)[0])


def test_a_share_the_same_in_every_seed_has_the_pooled_binomial_interval_not_zero_width():
    got = over_seeds([0.0, 0.0, 0.0], SHARE, 200)
    assert got == pytest.approx(one_share(0.0, 600)) and got[1] > 0.0
    assert over_seeds([100.0, 100.0], SHARE, 8)[0] < 100.0
    assert over_seeds([0.0, 0.0], UNBOUNDED) == (0.0, 0.0)  # (not a share: no count to pool)
