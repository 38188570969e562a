"""The hand-labelled set (tests/fixtures/plagiarism_labelled, bench/plagiarism_labelled.py), in
its six fixed parts: the calibration part (106 texts, where semantic.idea_window was chosen),
the first four held-out parts (46, 55, 57 and 57 texts; each read after it measured a rule, so
calibration data since, where the idea settings were chosen with the calibration part) and
the fifth held-out part (57 texts, written and committed before that choice and never used
for it). The floors are the figures measured at the choice
(bench/results/plagiarism_labelled.json), so a change that loses a found text fails here; they
are NOT issue 35 part 6's acceptance (idea recall >= 0.8 on held-out texts), which the fifth
held-out part does not meet (11 of 17)."""

from collections import Counter

import pytest

from bench.plagiarism_labelled import IDEA_ROUND4, choose_idea, choose_window, evaluate, load_set


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    work = tmp_path_factory.mktemp("labelled")
    return {m: evaluate(m, work / m) for m in ("pan2014", "semantic")}


def test_the_parts_are_fixed_and_apart():
    _, texts = load_set()
    names = ("calibration", "heldout1", "heldout2", "heldout3", "heldout4", "heldout5")
    parts = {p: [t for t in texts if t["part"] == p] for p in names}
    assert [len(x) for x in parts.values()] == [106, 46, 55, 57, 57, 57]
    ids = [{t["id"] for t in x} for x in parts.values()]
    assert sum(map(len, ids)) == len(set().union(*ids))  # (no text in two parts)
    corpora = [{t["corpus"] for t in x} for x in parts.values()]
    # (each held-out part against sources of its own)
    assert corpora[1:] == [{"notes"}, {"notes2"}, {"notes3"}, {"notes4"}, {"notes5"}]
    assert not corpora[0] & set().union(*corpora[1:])
    # (heldout4's and heldout5's 17 idea texts, 11 paraphrases, 5 verbatim copies, 24 texts
    # without reuse)
    for part in ("heldout4", "heldout5"):
        assert Counter(t["label"] for t in parts[part]) == {
            "idea": 17, "paraphrase": 11, "verbatim": 5, "none": 24}


def test_semantic_on_the_calibration_data(results):
    r = results["semantic"]["calibration"]
    assert r["texts"] == 106
    assert r["verbatim_recall"] == 1.0
    assert r["paraphrase_recall"] == 1.0  # (32 of 32 since the fifth round; 31 before)
    assert r["idea_recall"] == 1.0  # (14 of 14)
    assert r["false_label_rate"] <= 0.05
    r = results["semantic"]["heldout1"]
    assert (r["texts"], r["verbatim_recall"], r["paraphrase_recall"]) == (46, 1.0, 1.0)
    assert r["idea_recall"] >= 11 / 12 and r["false_label_rate"] <= 0.05
    r = results["semantic"]["heldout2"]
    assert (r["texts"], r["verbatim_recall"], r["paraphrase_recall"]) == (55, 1.0, 1.0)
    assert r["idea_recall"] == 1.0 and r["false_label_rate"] <= 0.05  # (16 of 16)
    r = results["semantic"]["heldout3"]  # (calibration data since the fourth round)
    assert (r["texts"], r["verbatim_recall"], r["paraphrase_recall"]) == (57, 1.0, 1.0)
    assert r["idea_recall"] >= 14 / 17 and r["false_label_rate"] <= 0.05
    r = results["semantic"]["heldout4"]  # (calibration data since the fifth round: its
    # paraphrase found by paraphrase_facts text, one idea text more by idea_added_scope text)
    assert (r["texts"], r["verbatim_recall"], r["paraphrase_recall"]) == (57, 1.0, 1.0)
    assert r["idea_recall"] >= 14 / 17 and r["false_label_rate"] <= 0.05


def test_semantic_on_the_held_out_part(results):
    r = results["semantic"]["heldout5"]  # (the held-out part since the fifth round)
    assert r["texts"] == 57
    assert r["verbatim_recall"] == 1.0
    assert r["paraphrase_recall"] >= 10 / 11  # (issue 35 part 6 asks 0.85: met, 10 of 11)
    assert r["idea_recall"] >= 11 / 17  # (the issue asks 0.8: not met, 0.65)
    assert r["false_label_rate"] <= 0.05  # (met: 0 of 24)


def test_semantic_finds_more_than_pan2014_and_no_false_label_more(results):
    for part in ("calibration", "heldout1", "heldout2", "heldout3", "heldout4", "heldout5"):
        pan, sem = results["pan2014"][part], results["semantic"][part]
        # (pan2014 types one of heldout3's 17 idea texts idea, none of heldout4's or heldout5's)
        assert pan["verbatim_recall"] == 1.0 and pan["idea_recall"] <= 1 / 17
        assert sem["paraphrase_recall"] >= pan["paraphrase_recall"]
        assert sem["idea_recall"] > pan["idea_recall"]
        assert sem["false_label_rate"] <= pan["false_label_rate"] + 0.05


def test_the_default_window_is_the_calibration_parts_choice(tmp_path):
    """The default idea_window is what choose_window picks on the calibration part alone;
    single sentences (the rule before) find fewer idea texts there."""
    from memlab.config.schema import SemanticSection

    chosen, tried = choose_window(tmp_path, widths=(1, 2))
    assert chosen == {"idea_window": SemanticSection().idea_window}
    assert tried["window 2"]["idea_recall"] > tried["window 1"]["idea_recall"]


def test_the_default_idea_settings_are_the_calibration_datas_choice(tmp_path):
    """The default idea settings are what choose_idea picks on the calibration data alone
    (here on a smaller grid around the fifth round's choice: idea_added_scope and
    paraphrase_facts at idea_added 0.2; the settings earlier rounds chose at their defaults);
    they find more idea texts and more paraphrases there than the fourth round's settings
    (added material in the passage, facts per sentence pair), with no more false labels.
    (Updated in the fifth round: the defaults it pins moved from the fourth round's.)"""
    from memlab.config.schema import SemanticSection

    grid = {"idea_added": (0.2,), "idea_added_scope": ("passage", "text"),
            "paraphrase_facts": ("pair", "text")}
    chosen, tried = choose_idea(tmp_path, grid)
    d = SemanticSection()
    assert chosen == {k: getattr(d, k) for k in grid}
    name = lambda c: ", ".join(f"{k} {c[k]}" for k in grid)  # noqa: E731
    new, before = tried[name(chosen)], tried[name({k: IDEA_ROUND4[k] for k in grid})]
    assert new["idea_recall"] > before["idea_recall"]
    assert new["false_label_rate"] <= before["false_label_rate"]
    assert new["paraphrase_recall"] > before["paraphrase_recall"]
