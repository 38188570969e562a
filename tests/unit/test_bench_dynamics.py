"""bench/dynamics.py's headline (issue 34 part 5) from fake trials with evaluation points, no
training: known curves give the known checkpoints, onset steps and full fine-tuning's rate
minus the floor at the final model and at its lowest held-out perplexity."""

import json
import os

from bench.dynamics import SIM, headline, timings

LAST = 12  # the final model's step; the points: 2, 4, 6, 8, 10


def rows_of(member, ppl):
    """Summary rows of one seed: members at 1, 4 and 16 copies (16: `member`, with its
    bootstrap interval +- 2), the floor at 1.0 (interval 0 to 3), held-out perplexity."""
    values = {("member", 1, SIM): member / 4, ("member", 4, SIM): member / 2,
              ("member", 16, SIM): member, ("member", 16, f"{SIM}_lo"): member - 2,
              ("member", 16, f"{SIM}_hi"): member + 2, ("nonmember", -1, SIM): 1.0,
              ("nonmember", -1, f"{SIM}_lo"): 0.0, ("nonmember", -1, f"{SIM}_hi"): 3.0,
              ("nonmember", -1, "ppl"): ppl}
    return [{"split": s, "dup_count": d, "metric": m, "value": v}
            for (s, d, m), v in values.items()]


CURVES = {  # strategy: step -> (member rate at 16 copies, held-out ppl)
    "full": {2: (1, 30), 4: (4, 24), 6: (9, 20), 8: (20, 22), 10: (30, 25), LAST: (41, 27)},
    "head": {2: (1, 30), 4: (1, 29), 6: (2, 28), 8: (3, 27), 10: (5, 27), LAST: (8, 26)},
    "lora": {2: (1, 30), 4: (1, 29), 6: (1, 28), 8: (2, 27), 10: (2, 26), LAST: (3, 26)},
}


def fake():
    records, points = [], {}
    for strategy, steps in CURVES.items():
        res = {"strategy": strategy, "model": "tiny", "seed": 0, "key": f"{strategy}-0",
               "point": {"train.strategy": strategy, "seed": 0},
               "train": {"train_steps": LAST, "train_time_s": 10.0}}
        records.append((res, rows_of(*steps[LAST])))
        points[res["key"]] = {s: rows_of(*a) for s, a in steps.items() if s != LAST}
    return records, points


def test_headline_of_known_curves():
    h = headline(*fake())
    assert h["checkpoints"] == 6
    # onset: the member interval's bottom (rate - 2) above the floor's top (3); head: 5 - 2 = 3
    assert (h["full_onset_step"], h["head_onset_step"], h["lora_onset_step"]) == (6, LAST, -1)
    assert h["full_sim08_dup16_minus_floor_final"] == 40.0
    assert h["full_best_ppl_step"] == 6 and h["full_sim08_dup16_minus_floor_at_best_ppl"] == 8.0


def test_a_strategy_without_points_has_no_onset():
    records, points = fake()
    records = [r for r in records if r[0]["strategy"] != "lora"]
    h = headline(records, points)
    assert h["lora_onset_step"] == -1 and h["full_onset_step"] == 6


def test_timings_from_result_json_and_the_points_score_manifests(tmp_path, monkeypatch):
    """The median gap between consecutive points' score manifests; the mean train time."""
    import memlab.io.paths as paths

    class Trial:
        def __init__(self, key):
            self.key, self.config = key, key

    monkeypatch.setattr(paths, "sweep_root", lambda cfg: tmp_path / "runs")
    monkeypatch.setattr(paths, "stage_dir", lambda cfg, stage, key: tmp_path / stage / key)
    for i, key in enumerate(("a", "b")):
        cps = []
        for j, step in enumerate((2, 4, 6)):
            folder = tmp_path / "score" / f"{key}{step}"
            folder.mkdir(parents=True)
            (folder / "_MANIFEST.json").write_text("{}")
            os.utime(folder / "_MANIFEST.json", (1000 + j * (5 + i), 1000 + j * (5 + i)))
            cps.append({"step": step, "keys": {"score": f"{key}{step}"}})
        (tmp_path / "runs" / key).mkdir(parents=True)
        (tmp_path / "runs" / key / "result.json").write_text(json.dumps(
            {"train": {"train_time_s": 100.0 + 20 * i}, "checkpoints": cps}))

    class Study:
        trials = [Trial("a"), Trial("b")]

    assert timings(Study) == {"eval_s_per_checkpoint": 5.5, "train_s_per_trial": 110.0}
