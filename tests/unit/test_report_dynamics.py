"""The report through training (issue 34 part 2): fake trials with evaluation points, no
training. Known curves give the known onset step and best-utility checkpoint; without points
the report is what it was (no dynamics.png, no dynamics.csv, no table)."""

import csv

import pytest

from memlab.config.schema import ScoreSection
from memlab.report.dynamics import Headline, curves_of
from memlab.report.numbers import aggregate
from memlab.report.render import DYNAMICS, FILES, render
from memlab.report.tables import headings

HEADS = headings([ScoreSection()])
SIM = "sim_src_ge_0.8_pct"
LAST = 8  # the final model's step; the points: 2, 4, 6


def rows_of(member, floor, ppl, auc, bounds=None):
    """Summary rows: members at dup 1 and 4 (the headline level), the floor, the held-out
    perplexity, the loss AUC; `bounds`: ((member lo, hi), (floor lo, hi)), a one-seed
    trial's bootstrap interval of the rate."""
    values = {("member", 1, SIM): member / 2, ("member", 4, SIM): member,
              ("nonmember", -1, SIM): floor, ("nonmember", -1, "ppl"): ppl,
              ("nonmember", -1, "base_ppl"): 40.0, ("member", 4, "auc_loss"): auc,
              ("member", 1, "auc_loss"): auc}
    if bounds:
        (mlo, mhi), (flo, fhi) = bounds
        values |= {("member", 4, f"{SIM}_lo"): mlo, ("member", 4, f"{SIM}_hi"): mhi,
                   ("nonmember", -1, f"{SIM}_lo"): flo, ("nonmember", -1, f"{SIM}_hi"): fhi}
    return [{"split": s, "dup_count": d, "metric": m, "value": v}
            for (s, d, m), v in values.items()]


def trial(strategy, seed, steps: dict):
    """(result.json, final rows) and {step: rows} of its points: `steps` step -> rows_of
    arguments, the last step being the final model."""
    res = {"strategy": strategy, "model": "tiny", "seed": seed, "key": f"{strategy}-{seed}",
           "point": {"train.strategy": strategy, "seed": seed},
           "train": {"trainable_params": 10.0 if strategy == "lora" else 100.0,
                     "train_steps": LAST, "train_time_s": 1.0}}
    points = {s: rows_of(*a) for s, a in steps.items() if s != LAST}
    return (res, rows_of(*steps[LAST])), points


FLOOR = (0.0, 3.0)
ONE_SEED = {  # full: rises above the floor at step 6; ppl lowest at step 4
    "full": {2: (1.0, 1.0, 30.0, 0.5, ((0.0, 4.0), FLOOR)),
             4: (5.0, 1.0, 22.0, 0.55, ((1.0, 9.0), FLOOR)),
             6: (20.0, 1.0, 25.0, 0.7, ((12.0, 28.0), FLOOR)),
             LAST: (40.0, 1.0, 28.0, 0.8, ((30.0, 50.0), FLOOR))},
    # lora: never clear of the floor (its interval always reaches below the floor's top)
    "lora": {2: (1.0, 1.0, 30.0, 0.5, ((0.0, 4.0), FLOOR)),
             4: (2.0, 1.0, 27.0, 0.5, ((0.0, 5.0), FLOOR)),
             6: (3.0, 1.0, 26.0, 0.52, ((1.0, 6.0), FLOOR)),
             LAST: (4.0, 1.0, 25.0, 0.53, ((2.5, 7.0), FLOOR))},
}


def setup(table=ONE_SEED, seeds=(0,)):
    records, points = [], {}
    for strategy, steps in table.items():
        for seed in seeds:
            shifted = {s: (a[0] + seed * a[0] / 10, a[1] + seed / 5, *a[2:]) if seeds != (0,)
                       else a for s, a in steps.items()}
            rec, own = trial(strategy, seed, shifted)
            records.append(rec)
            points[rec[0]["key"]] = own
    groups = aggregate(records, [])
    return records, points, groups, curves_of(records, points, groups, [])


def test_one_seed_onset_from_the_trials_bootstrap_bounds_and_the_best_step():
    *_, groups, curves = setup()
    h = Headline.of(groups, 0.8)
    assert (h.dup, h.sim, h.auc) == (4, SIM, "auc_loss")  # no auc_ref anywhere
    by = {c.group.key["strategy"]: c for c in curves}
    assert by["full"].steps == by["lora"].steps == [2, 4, 6, LAST]
    assert by["full"].onset(h) == 6 and by["lora"].onset(h) == -1
    assert by["full"].steps[by["full"].best()] == 4
    assert by["lora"].steps[by["lora"].best()] == LAST
    assert by["full"].at[-1].get("member", 4, SIM).mean == 40.0  # the final model


def test_over_seeds_the_onset_uses_the_student_t_intervals():
    table = {"full": {2: (1.0, 1.0, 30.0, 0.5), 4: (10.0, 1.0, 22.0, 0.6),
                      6: (20.0, 1.0, 24.0, 0.7), LAST: (30.0, 1.0, 26.0, 0.8)}}
    # seeds 0 and 1: members a and 1.1 a, floor 1 and 1.2: at step 2 the members' interval
    # (1 and 1.1) is narrow but not above the floor's (1 and 1.2); at 4 it is
    *_, groups, curves = setup(table, seeds=(0, 1))
    (c,) = curves
    h = Headline.of(groups, 0.8)
    member, floor = c.at[0].get("member", 4, SIM), c.at[0].get("nonmember", -1, SIM)
    assert member.n == floor.n == 2 and member.lo < floor.hi
    assert c.onset(h) == 4 and c.steps[c.best()] == 4


def test_table_figure_and_csv_with_points(tmp_path):
    records, points, groups, curves = setup()
    rep = render("demo", tmp_path, groups, [], HEADS, dynamics=curves)
    assert {p.name for p in tmp_path.iterdir()} == set(FILES) | set(DYNAMICS)
    (table,) = [t for t in rep.tables if t.title.startswith("Through training")]
    cells = {g.key["strategy"]: {k: f(g, None) for k, f in table.extra.items()}
             for g, _ in table.rows}
    assert cells == {"full": {"points": "4", "onset": "6", "best": "4", "stopped": "-"},
                     "lora": {"points": "4", "onset": "-1", "best": str(LAST),
                              "stopped": "-"}}
    get = {m.name: m.get for m in table.metrics}
    full = next(g for g, _ in table.rows if g.key["strategy"] == "full")
    assert get["sim_minus_floor_best"](full, None).mean == pytest.approx(4.0)
    assert get["sim_minus_floor_final"](full, None).mean == pytest.approx(39.0)
    assert get["heldout_ppl_best"](full, None).mean == 22.0
    assert get["auc_loss_final"](full, None).mean == 0.8
    assert "Through training" in rep.text and "dynamics.png" in rep.text
    page = (tmp_path / "results.html").read_text()
    assert page.count("data:image/png;base64,") == 5 and "Through training" in page

    fig = rep.figures["dynamics.png"]["panels"]
    rate = fig[f"full: {SIM} (%), members at dup 4"]
    assert rate["points"]["full"] == [(2, 1.0), (4, 5.0), (6, 20.0), (LAST, 40.0)]
    assert rate["floor_points"]["full"] == [(s, 1.0) for s in (2, 4, 6, LAST)]
    assert rate["bands"] == rate["floor_bands"] == ["full"] and rate["onset"] == {"full": 6}
    assert fig["lora: held-out perplexity (non-members)"]["best"] == {"lora": LAST}
    assert fig["full: membership auc_loss, members at dup 4"]["points"]["full"][-1] == (LAST, 0.8)

    with open(tmp_path / "dynamics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["strategy"], r["step"], r["final"]) for r in rows] == [
        (s, str(step), str(step == LAST)) for s in ("lora", "full") for step in (2, 4, 6, LAST)]
    assert {r["onset_step"] for r in rows if r["strategy"] == "full"} == {"6"}
    assert {r["best_step"] for r in rows if r["strategy"] == "full"} == {"4"}
    assert float(rows[-1]["sim_minus_floor_mean"]) == pytest.approx(39.0)


def test_without_points_the_report_is_unchanged(tmp_path):
    records, _, groups, _ = setup()
    assert curves_of(records, {}, groups, []) == []
    before = render("demo", tmp_path / "a", groups, [], HEADS)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "dynamics.png").write_bytes(b"stale")  # a report when it had points
    after = render("demo", tmp_path / "b", groups, [], HEADS, dynamics=[])
    assert {p.name for p in (tmp_path / "b").iterdir()} == set(FILES)
    assert after.text == before.text.replace(str(tmp_path / "a"), str(tmp_path / "b"))
    assert set(after.figures) == set(before.figures) and "dynamics.png" not in after.figures
    for name in ("results.csv", "results.md"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()


def test_the_table_says_where_each_seed_stopped_and_why():
    """train.stop_when (issue 34 part 3): the table names each seed's stop step and the rule;
    a seed that never stopped is `-`."""
    records, points, groups, _ = setup(seeds=(0, 1))
    rule = "sim_member_minus_floor > 5"
    for res, _ in records:
        if res["strategy"] == "full" and res["seed"] == 0:
            res["stopped"] = {"step": 6, "rule": rule, "value": 19.0}
    (full,) = [c for c in curves_of(records, points, groups, [])
               if c.group.key["strategy"] == "full"]
    (lora,) = [c for c in curves_of(records, points, groups, [])
               if c.group.key["strategy"] == "lora"]
    assert full.stops() == f"6, - ({rule})" and lora.stops() == "-"

