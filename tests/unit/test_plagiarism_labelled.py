"""The hand-labelled set (tests/fixtures/plagiarism_labelled, bench/plagiarism_labelled.py), in
its two fixed parts: the calibration part (106 texts, where semantic.idea_window was chosen)
and the held-out part (46 texts, written before the choice and never used for it). The floors
are the figures measured at the choice (bench/results/plagiarism_labelled.json), so a change
that loses a found text fails here; they are NOT issue 35 part 6's acceptance (idea recall
>= 0.8 on held-out texts), which the held-out part does not meet (8 of 12)."""

import pytest

from bench.plagiarism_labelled import choose_window, evaluate, load_set


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    work = tmp_path_factory.mktemp("labelled")
    return {m: evaluate(m, work / m) for m in ("pan2014", "semantic")}


def test_the_parts_are_fixed_and_apart():
    _, texts = load_set()
    parts = {p: [t for t in texts if t["part"] == p] for p in ("calibration", "heldout")}
    assert (len(parts["calibration"]), len(parts["heldout"])) == (106, 46)
    assert not {t["id"] for t in parts["calibration"]} & {t["id"] for t in parts["heldout"]}
    assert {t["corpus"] for t in parts["heldout"]} == {"notes"}  # (sources of its own)
    assert "notes" not in {t["corpus"] for t in parts["calibration"]}


def test_semantic_on_the_calibration_part(results):
    r = results["semantic"]["calibration"]
    assert r["texts"] == 106
    assert r["verbatim_recall"] == 1.0
    assert r["paraphrase_recall"] >= 31 / 32
    assert r["idea_recall"] >= 13 / 14
    assert r["false_label_rate"] <= 0.05


def test_semantic_on_the_held_out_part(results):
    r = results["semantic"]["heldout"]
    assert r["texts"] == 46
    assert r["verbatim_recall"] == 1.0
    assert r["paraphrase_recall"] >= 0.85  # (issue 35 part 6: met, 10 of 10)
    assert r["idea_recall"] >= 8 / 12  # (the issue asks 0.8: not met)
    assert r["false_label_rate"] <= 0.05  # (met: 0 of 20)


def test_semantic_finds_more_than_pan2014_and_no_false_label_more(results):
    for part in ("calibration", "heldout"):
        pan, sem = results["pan2014"][part], results["semantic"][part]
        assert pan["verbatim_recall"] == 1.0 and pan["idea_recall"] == 0.0
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
