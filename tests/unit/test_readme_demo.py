"""Issue 32, acceptance 3: what the README says of the demo holds against the tables it prints.

The README shows `make demo`'s output (a fenced block after "It ends like this") and then
describes it in sentences. Each claim below is a sentence of the README (it must still be
there, word for word) with the cells of the printed tables that make it true; a sentence
edited without its claim here, or a table pasted that contradicts it, fails.

With MEMLAB_DEMO_LOG naming a file that holds a demo's output (`make demo 2>&1 | tee
demo.log`), `test_the_readme_shows_the_tables_the_demo_prints` also compares the README's
tables with that run's, figure by figure (timings apart).
"""

import os
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def demo_block(text: str) -> str:
    start = text.index("```\n", text.index("It ends like this")) + 4
    return text[start:text.index("```", start)]


def tables(block: str) -> dict[str, list[dict[str, str]]]:
    """Title -> rows (column -> cell) of every table printed in `block` (tabulate's plain
    layout: a title line, a header, a dashed line, the rows)."""
    lines, out = block.splitlines(), {}
    for i, line in enumerate(lines):
        if i >= 2 and re.fullmatch(r"-+( +-+)+", line):
            title, head = lines[i - 2], lines[i - 1].split()
            rows = []
            for row in lines[i + 1:]:
                cells = re.split(r"\s{2,}", row.strip())
                if not row.strip() or len(cells) != len(head):
                    break
                rows.append(dict(zip(head, cells)))
            out[title] = rows
    return out


TABLES = tables(demo_block(README))


def cell(title: str, strategy: str, column: str, dup: str | None = None) -> str:
    (table,) = [rows for t, rows in TABLES.items() if t.startswith(title)]
    (row,) = [r for r in table if r["strategy"] == strategy and (dup is None or r["dup"] == dup)]
    return row[column]


def number(text: str) -> float:
    return float(text.split(" [")[0])


def above_floor(strategy: str, column: str, dup: str) -> float:
    """A member rate minus its non-member floor, in points (frontier.png's y)."""
    return number(cell(EXTRACTION, strategy, column, dup)) - \
        number(cell(EXTRACTION, strategy, f"floor_{column}", dup))


EXTRACTION, AUC, TPR, UTILITY = ("Extraction", "Membership inference: AUC",
                                 "Membership inference: TPR", "Utility")
DUPS = ("2", "8", "32")

CLAIMS = {
    "full fine-tuning gave back three quarters of the documents it saw 32 times token\nfor token":
        lambda: number(cell(EXTRACTION, "full", "exact_%", "32")) == 75.0,
    "100% at similarity >= 0.8":
        lambda: number(cell(EXTRACTION, "full", "sim>=0.8_%", "32")) == 100.0,
    "head-only and\nLoRA none, token for token":
        lambda: all(number(cell(EXTRACTION, s, "exact_%", d)) == 0.0
                    for s in ("head", "lora") for d in DUPS),
    "Every non-member floor of exact extraction, similarity and\nplagiarism is 0":
        lambda: all(number(cell(EXTRACTION, s, c, d)) == 0.0 for s in ("full", "head", "lora")
                    for d in DUPS for c in ("floor_exact_%", "floor_sim>=0.8_%")),
    "the\ntoken-match floor is not (6.6-7.2%":
        lambda: sorted(number(cell(EXTRACTION, s, "floor_match_%", "2"))
                       for s in ("full", "head", "lora")) == [6.6, 7.0, 7.2],
    "every document head-only\nfine-tuning saw, even twice, scores above every held-out one on "
    "min-k% and on the loss relative\nto the base model (AUC 1.00":
        lambda: all(number(cell(AUC, "head", s, d)) == 1.0 for s in ("mink", "ref")
                    for d in DUPS),
    "its TPR at 1% FPR is shown `n/r`: with 24 non-members the\nsmallest false-positive rate "
    "above 0 is 4.2%":
        lambda: all(cell(TPR, s, c, d) == "n/r" for s in ("full", "head", "lora")
                    for c in ("loss", "ref") for d in DUPS)
        and cell(EXTRACTION, "head", "nonmembers", "2") == "24",
    "LoRA's members\nare told apart from 8 copies on (ref: AUC 1.00)":
        lambda: [number(cell(AUC, "lora", "ref", d)) for d in DUPS][1:] == [1.0, 1.0]
        and number(cell(AUC, "lora", "ref", "2")) < 1.0,
    "perplexity next to the base model's (138.9): LoRA 91.2, head-only 116.5, full 143.8":
        lambda: [round(number(cell(UTILITY, s, c)), 1) for s, c in (
            ("full", "base_ppl"), ("lora", "heldout_ppl"), ("head", "heldout_ppl"),
            ("full", "heldout_ppl"))] == [138.9, 91.2, 116.5, 143.8],
    "(8 members per dup, 24 non-members: wide)":
        lambda: all(cell(EXTRACTION, s, "members", d) == "8" and
                    cell(EXTRACTION, s, "nonmembers", d) == "24"
                    for s in ("full", "head", "lora") for d in DUPS),
    "LoRA alone is on the similarity\nfrontier: the lowest held-out perplexity and the fewest "
    "members similar at 32 copies":  # (frontier.png: it beats head-only and full in both)
        lambda: all(number(cell(UTILITY, "lora", "heldout_ppl"))
                    < number(cell(UTILITY, s, "heldout_ppl"))
                    and above_floor("lora", "sim>=0.8_%", "32")
                    < above_floor(s, "sim>=0.8_%", "32") for s in ("head", "full")),
}


def test_the_readme_shows_the_demos_tables():
    assert {t.split(":")[0].split(" (")[0] for t in TABLES} >= {
        "Extraction", "Membership inference", "Utility"}
    assert len(TABLES[next(t for t in TABLES if t.startswith(EXTRACTION))]) == 9


@pytest.mark.parametrize("sentence", list(CLAIMS), ids=lambda s: s[:40])
def test_a_sentence_of_the_readme_holds_against_the_printed_tables(sentence):
    assert sentence in README, f"the README no longer says: {sentence!r}"
    assert CLAIMS[sentence](), f"the README's tables contradict: {sentence!r}"


def test_the_readme_shows_the_tables_the_demo_prints():
    """MEMLAB_DEMO_LOG=<a demo's output>: every figure of every README table equals that run's
    (the training seconds apart: timings differ from machine to machine)."""
    log = os.environ.get("MEMLAB_DEMO_LOG")
    if not log:
        pytest.skip("set MEMLAB_DEMO_LOG to a file holding `make demo`'s output")
    text = Path(log).read_text()
    ran = tables(text[text.index("Results of sweep 'quickstart'"):])
    for title, rows in TABLES.items():
        assert title in ran, title
        drop = lambda r: {k: v for k, v in r.items() if k != "train_s"}  # noqa: E731
        assert [drop(r) for r in rows] == [drop(r) for r in ran[title]], title
