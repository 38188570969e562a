"""The sweep report over seeds (memlab/report/), on synthetic trials: aggregation,
intervals, the tables, the figures' contents and the self-contained HTML page."""

import base64
import csv
import re
import statistics

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from memlab.config.schema import ScoreSection
from memlab.report.numbers import FPR_GRID, aggregate, roc_curves
from memlab.report.render import FIGURES, FILES, render
from memlab.report.tables import (
    canary_table,
    fmt,
    headings,
    layout,
    membership_tables,
    utility_table,
)
from memlab.scoring.membership import tpr_at_fpr

HEADS = {  # what headings() gives, two registry tables cut down to a column or so
    **headings([ScoreSection()]),
    "extraction": [("exact_pct", "exact_%", "samples whose suffix came back token for token")],
    "plagiarism": [("verbatim_pct", "verbatim_%", "")],
}
STRATEGY_RATE = {"full": 40.0, "head": 10.0, "lora": 25.0}  # member rate at dup 4, seed 0
STRATEGY_FLOOR = {"full": 3.0, "head": 1.0, "lora": 2.0}


def record(strategy, seed, model="tiny", point=None, extra=(), shift=0.0):
    """(result.json, summary rows) of a synthetic trial: members at dup 1 and 4, the
    non-member floor, membership AUC / TPR of loss and zlib, utility metrics."""
    rate, floor = STRATEGY_RATE[strategy] + shift, STRATEGY_FLOOR[strategy] + shift
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
           "train": {"trainable_params": 1000.0, "train_time_s": 5.0 + seed,
                     "total_params": 5000.0 if model == "tiny" else 9000.0}}
    rows = [{"split": s, "dup_count": d, "metric": m, "value": v}
            for (s, d, m), v in values.items()]
    return res, rows


def t_interval(values):
    return stats.t.interval(0.95, len(values) - 1, loc=np.mean(values),
                            scale=stats.sem(values))


def test_two_seeds_give_the_mean_and_the_student_t_interval_with_n_2():
    records = [record("lora", 0), record("lora", 1, shift=3.0)]
    (g,) = aggregate(records, [])
    assert g.seeds == [0, 1] and len(g.trial_keys) == 2
    s = g.get("member", 4, "exact_pct")
    assert s.mean == pytest.approx(statistics.fmean([25.0, 28.0]))
    lo, hi = t_interval([25.0, 28.0])
    assert (s.lo, s.hi) == (pytest.approx(lo), pytest.approx(hi))
    assert s.lo < 25.0 and s.hi > 28.0  # wider than the two values (t with 1 dof)
    floor = g.get("nonmember", -1, "exact_pct")
    assert (floor.lo, floor.hi) == tuple(pytest.approx(x) for x in t_interval([2.0, 5.0]))
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
        tuple(pytest.approx(x) for x in t_interval([40.0, 41.0]))
    assert float(full4["floor_exact_%_mean"]) == pytest.approx(3.5)
    assert full4["seeds"] == "0 1"
    assert "Results of sweep 'demo' (model tiny; seeds 0, 1;" in rep.text


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
    assert (s.lo, s.hi) == tuple(pytest.approx(x) for x in t_interval([0.64, 0.66]))


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
    dup = figures["results.png"]
    models = ["tiny", "big"]  # by parameter count (result.json train.total_params)
    assert list(dup) == [f"{h}, {m}" for m in models for h in ("exact_%",)]
    for m in models:
        panel = dup[f"exact_%, {m}"]
        assert panel["lines"] == ["full", "head", "lora"]  # one line per (strategy, model)
        assert panel["bands"] == ["full", "head", "lora"]
        shift = 10.0 if m == "big" else 0.0
        assert panel["floors"] == {  # each strategy's own floor: its mean over seeds
            s: pytest.approx(STRATEGY_FLOOR[s] + shift + 0.5) for s in ("full", "head", "lora")}
    scale = figures["scale.png"]
    assert list(scale) == ["exact_%, members at dup 4", "exact_%, all members"]
    for panel in scale.values():
        assert panel["lines"] == ["full", "head", "lora"]
        assert panel["floors"]["head"] == [pytest.approx(1.5), pytest.approx(11.5)]
    roc_desc = figures["roc.png"]
    assert roc_desc == {s: ["tiny", "big"] for s in ("full", "head", "lora")}


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
    assert len(images) == 3
    for data, name in zip(images, FIGURES):
        assert base64.b64decode(data) == (tmp_path / name).read_bytes()
    assert page.count("<table>") == 5 and "Membership inference: AUC" in page
    assert "loss: loss of the fine-tuned model" in page and "AUC 0.5 = chance" in page
    assert "<script" not in page and 'src="results.png"' not in page
    md = (tmp_path / "results.md").read_text()
    assert "![roc.png](roc.png)" in md and "| strategy" in md


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
    assert rep.figures["roc.png"] == {}
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
