"""Plagiarism typing on a hand-labelled set: recall per type and false labels, per method, on
calibration data and a held-out part.

The set (tests/fixtures/plagiarism_labelled/, written by hand for this measurement), in four
fixed parts:
- calibration (texts.jsonl, 106 texts, written for issue 18): against 30 documents of memlab's
  built-in demo corpus (generate_demo_corpus(30, seed=7), frozen in corpus_demo.jsonl) and 16
  short news briefs (corpus_briefs.jsonl): demo: 15 verbatim copies, 18 paraphrases (two
  sentences of a document in other words, with the same facts), 20 with no reuse (10 in the
  corpus's own templates with other facts, 10 on other subjects); briefs: 10 verbatim, 14
  paraphrases of a whole brief, 14 idea elaborations (a brief told at 2-4 times its length, in
  other words, with its facts), 15 with no reuse (8 on a brief's topic with other facts, 7
  other; all one sentence). Its idea misses were read to find why they were missed (issue 35
  part 6), so it is no measurement of the rule chosen from them.
- heldout1 (texts_heldout.jsonl, 46 texts, issue 35 part 6): against 12 short notes
  (corpus_notes.jsonl): 4 verbatim, 10 paraphrases, 12 idea elaborations, 20 with no reuse
  (12 of two or three sentences on a note's topic with other facts, 8 other). Written and
  committed (3ff590e) before the window rule was chosen; it measured that rule (idea 8/12),
  and then its misses were read, so it can no longer measure a rule changed after it: it is
  CALIBRATION DATA now (its figures stay in the results under `heldout1`).
- heldout2 (texts_heldout2.jsonl, 55 texts, issue 35 part 6's second round): against 12 new
  notes on new subjects (corpus_notes2.jsonl): 5 verbatim, 11 paraphrases, 16 idea
  elaborations (about 1.8 to 3.8 times their note's length in words, some writing a fact in
  other forms: `two million` for 2 million, `four-kilometre` for 4 kilometres), 23 with no
  reuse (13 on a note's topic with other facts, 10 other). Written and committed (e319965)
  before any change to the typer and before any text of it was typed; it measured the second
  round's settings once (idea 12/16), and then its misses were read: CALIBRATION DATA since
  the third round (its figures stay in the results under `heldout2`).
- heldout3 (texts_heldout3.jsonl, 57 texts, issue 35 part 6's third round): against 12 new
  notes on new subjects (corpus_notes3.jsonl): 5 verbatim, 11 paraphrases, 17 idea
  elaborations (about 1.4 to 3.7 times their note's length in words, five of them second
  elaborations of a note in another style; some fold a note's short closing sentence into
  another, some write a fact in other forms: `a hundred and fifty` for 150, `nine million
  pounds`, `thirty-four kilometres`), 24 with no reuse (12 on a note's topic with other
  facts, 12 other). Written and committed (5da6ef9) before any change to the typer and
  before any text of it was typed; no setting is chosen on it. Typed once with the settings
  chosen in the third round (committed, f446aaa, before): idea 10/17, paraphrase 11/11, false
  labels 0/24 (issue 35 part 6 asks idea >= 0.8: not met). The headline is its figures
  (HELDOUT); the other parts' are under their names (`semantic_heldout2_*`, ...).
A text counts as found when its label AND its document are right; a `none` text counts as a
false label when it gets any other label. Every text is typed with memlab's own code (the
`memlab plagiarism` path: a corpus index per corpus, the embedding judge), once per method.

Settings chosen here are chosen on the calibration data only (`--calibrate`): method=semantic's
idea_window on the calibration part (`choose_window`), then its idea settings on
CALIBRATION_DATA = calibration + heldout1 + heldout2 (`choose_idea`; in the second round on
calibration + heldout1); the defaults are these choices.

    python bench/plagiarism_labelled.py [--methods pan2014,semantic] [--calibrate]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SET = ROOT / "tests" / "fixtures" / "plagiarism_labelled"
TYPES = ("verbatim", "paraphrase", "idea")
PARTS = {"calibration": "texts.jsonl", "heldout1": "texts_heldout.jsonl",
         "heldout2": "texts_heldout2.jsonl", "heldout3": "texts_heldout3.jsonl"}
# (the parts settings are chosen on: every part read so far)
CALIBRATION_DATA = ("calibration", "heldout1", "heldout2")
HELDOUT = "heldout3"  # (the part the headline measures; never used for a choice)
CORPORA = ("demo", "briefs", "notes", "notes2", "notes3")
# score.plagiarism.semantic's idea settings before issue 35 part 6's second round (choose_window
# types with them; a comparison in the results)
IDEA_BEFORE = {"idea_ratio": 2.0, "idea_related": 0.40, "idea_facts_scope": "passage",
               "idea_fact_forms": False, "idea_cover": 0.60}
# ... and those the second round chose (the defaults before the third round; choose_idea's
# paraphrase floor, and a comparison in the results)
IDEA_ROUND2 = {"idea_ratio": 1.75, "idea_related": 0.40, "idea_facts_scope": "text",
               "idea_fact_forms": True, "idea_cover": 0.60}


def load_set(parts=tuple(PARTS)) -> tuple[dict[str, list[dict]], list[dict]]:
    """(corpus name -> its documents, the texts of `parts`, each with its `part`)."""
    read = lambda p: [json.loads(x) for x in p.read_text().splitlines() if x.strip()]  # noqa: E731
    corpora = {c: read(SET / f"corpus_{c}.jsonl") for c in CORPORA}
    return corpora, [{**t, "part": part} for part in parts for t in read(SET / PARTS[part])]


def figures(rows: list[dict]) -> dict:
    """Recall per type, false labels on `none` texts, confusion and misses of typed rows."""
    out: dict = {"texts": len(rows)}
    for lab in TYPES:
        of = [r for r in rows if r["label"] == lab]
        out[f"{lab}_recall"] = sum(r["found"] for r in of) / len(of) if of else None
        out[f"{lab}_n"] = len(of)
    none = [r for r in rows if r["label"] == "none"]
    out["false_label_rate"] = sum(r["got"] != "none" for r in none) / len(none) if none else None
    out["none_n"] = len(none)
    out["confusion"] = {f"{a}->{b}": n for (a, b), n in
                        sorted(Counter((r["label"], r["got"]) for r in rows).items())}
    out["misses"] = [{k: r[k] for k in ("id", "label", "source", "got", "got_doc")}
                     for r in rows if not r["found"]]
    return out


def evaluate(method: str, work: Path, overrides: dict | None = None,
             parts=tuple(PARTS), judge=None) -> dict:
    """Type every labelled text of `parts` with `method` (`overrides`: settings of
    score.plagiarism.semantic; `judge`: a Judge to reuse, its embeddings cached); figures per
    part, over the calibration data (`calibration_data`, where both its parts are typed) and
    over all of them."""
    from memlab.config.schema import PlagiarismSection
    from memlab.scoring.plagiarism.index import CorpusIndex, SemanticIndex, ensure_index
    from memlab.scoring.plagiarism.judge import Judge
    from memlab.scoring.plagiarism.typer import type_texts

    p = PlagiarismSection(method=method)
    for k, v in (overrides or {}).items():
        setattr(p.semantic, k, v)
    corpora, texts = load_set(parts)
    judge = judge or Judge(p.judge, p.judge_kind)
    got: dict[str, dict] = {}
    for name, docs in corpora.items():
        mine = [t for t in texts if t["corpus"] == name]
        if not mine:
            continue
        folder = ensure_index([d["doc_id"] for d in docs], [d["text"] for d in docs],
                              work / f"index-{name}", p)
        index = CorpusIndex(folder, p)
        sem = SemanticIndex(SemanticIndex.build(index, folder, judge), index) \
            if method == "semantic" else None
        for t, r in zip(mine, type_texts([t["text"] for t in mine], index, judge, sem)):
            got[t["id"]] = r
    rows = [{**t, "got": got[t["id"]]["label"], "got_doc": got[t["id"]]["doc_id"],
             "found": got[t["id"]]["label"] == t["label"] and
             (t["label"] == "none" or got[t["id"]]["doc_id"] == t["source"])} for t in texts]
    out: dict = {"method": method, "settings": dict(overrides or {})}
    for part in parts:
        out[part] = figures([r for r in rows if r["part"] == part])
    if set(CALIBRATION_DATA) <= set(parts):
        out["calibration_data"] = figures([r for r in rows if r["part"] in CALIBRATION_DATA])
    out["all"] = figures(rows)
    return out


def choose_window(work: Path, widths=(1, 2, 3)) -> tuple[dict, dict]:
    """method=semantic's idea_window, chosen on the calibration part alone: the width with the
    highest idea recall whose false-label rate is <= 0.05 and whose paraphrase recall is no
    lower than that of width 1 (single sentences, the rule before); ties: the smallest width
    (fewer windows to embed, fewer chances of a chance match). Typed with the idea settings
    it was chosen at (IDEA_BEFORE; choose_idea then chooses those at the chosen width).
    Returns ({"idea_window": the chosen width}, each width's calibration figures by name)."""
    tried = {f"window {w}": evaluate("semantic", work / f"window{w}",
                                     {**IDEA_BEFORE, "idea_window": w},
                                     parts=("calibration",))["calibration"] for w in widths}
    base = tried[f"window {widths[0]}"]["paraphrase_recall"]
    ok = [w for w in widths if tried[f"window {w}"]["false_label_rate"] <= 0.05
          and tried[f"window {w}"]["paraphrase_recall"] >= base]
    best = max(ok, key=lambda w: (tried[f"window {w}"]["idea_recall"], -w))
    return {"idea_window": best}, tried


IDEA_GRID = {"idea_ratio": (2.0, 1.75, 1.5, 1.25), "idea_cover": (0.60, 0.55, 0.50),
             "idea_related": (0.40, 0.30, 0.20), "idea_facts_scope": ("passage", "text"),
             "idea_fact_forms": (True, False)}


def choose_idea(work: Path, grid: dict = IDEA_GRID, window: int | None = None,
                judge=None) -> tuple[dict, dict]:
    """method=semantic's idea settings (idea_ratio, idea_cover, idea_related,
    idea_facts_scope, idea_fact_forms), chosen on the calibration data alone (the calibration
    part, the first and the second held-out parts, CALIBRATION_DATA), each combination of
    `grid` typed at idea_window `window` (None: its default): the combination with the
    highest idea recall whose false-label rate is <= 0.05 and whose paraphrase recall is no
    lower than that of the second round's settings (IDEA_ROUND2); ties: the fewest false
    labels, then the most conservative, i.e. the highest idea_ratio, then the highest
    idea_cover, then the highest idea_related (a shorter passage), then facts in the passage
    before the whole text; then word forms before literal facts (a number in words is the
    same fact). (The second round's rule, on calibration + heldout1 with idea_ratio in
    {2.0, 1.75, 1.5} and idea_cover 0.60, had no false-label step: every combination had
    none.) Returns (the chosen settings, each combination's calibration-data figures)."""
    from itertools import product

    from memlab.scoring.plagiarism.judge import Judge

    judge = judge or Judge()
    names = list(grid)
    combos = [dict(zip(names, v)) for v in product(*grid.values())]
    for must in (IDEA_BEFORE, IDEA_ROUND2):
        if {k: must[k] for k in names} not in combos:
            combos.append({k: must[k] for k in names})
    win = {} if window is None else {"idea_window": window}
    name = lambda c: ", ".join(f"{k} {c[k]}" for k in names)  # noqa: E731
    tried = {name(c): evaluate("semantic", work, {**c, **win}, parts=CALIBRATION_DATA,
                               judge=judge)["calibration_data"] for c in combos}
    base = tried[name(IDEA_ROUND2)]["paraphrase_recall"]
    ok = [c for c in combos if tried[name(c)]["false_label_rate"] <= 0.05
          and tried[name(c)]["paraphrase_recall"] >= base]
    best = max(ok, key=lambda c: (tried[name(c)]["idea_recall"],
                                  -tried[name(c)]["false_label_rate"], c["idea_ratio"],
                                  c.get("idea_cover", 0.0), c["idea_related"],
                                  c["idea_facts_scope"] == "passage", c["idea_fact_forms"]))
    return best, tried


def _say(name: str, r: dict) -> None:
    print(f"{name}: " + ", ".join(f"{lab} recall {r[f'{lab}_recall']:.2f} ({r[f'{lab}_n']})"
                                  for lab in TYPES) +
          f", false labels on none {r['false_label_rate']:.3f} ({r['none_n']})")
    for x in r["misses"]:
        print(f"   miss {x['id']}: {x['label']} ({x['source']}) typed {x['got']} "
              f"({x['got_doc']})")


def _calibrate(work: Path, judge) -> tuple[dict, dict]:
    """choose_window on the calibration part, then choose_idea on the calibration data at the
    chosen width: (the chosen settings, the record of both choices)."""
    short = lambda tried: {n: {k: f[k] for k in ("idea_recall", "paraphrase_recall",  # noqa: E731
                                                 "false_label_rate")} for n, f in tried.items()}
    window, tried_w = choose_window(work / "window")
    idea, tried_i = choose_idea(work / "idea", window=window["idea_window"], judge=judge)
    for what, tried in (("calibration part", tried_w), ("calibration data", tried_i)):
        for n, f in tried.items():
            print(f"{what}, {n}: idea {f['idea_recall']:.3f}, paraphrase "
                  f"{f['paraphrase_recall']:.3f}, false labels {f['false_label_rate']:.3f}")
    over = {**window, **idea}
    print(f"chosen on the calibration data: {over}")
    return over, {
        "settings": {f"score.plagiarism.semantic.{k}": v for k, v in over.items()},
        "idea_window": {"rule": choose_window.__doc__.split("Returns")[0].strip(),
                        "tried": short(tried_w)},
        "idea": {"rule": choose_idea.__doc__.split("Returns")[0].strip(),
                 "tried": short(tried_i)}}


def main() -> int:
    from bench._common import write_result
    from memlab.scoring.plagiarism.judge import Judge

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="pan2014,semantic")
    ap.add_argument("--calibrate", action="store_true",
                    help="choose semantic.idea_window (choose_window) and the idea settings "
                         "(choose_idea) on the calibration data first and record the choice; "
                         "without it: the defaults")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "plagiarism_labelled.json"))
    args = ap.parse_args()
    results: dict = {}
    details: dict = {}
    judge = Judge()
    parts = (*PARTS, "calibration_data", "all")
    with tempfile.TemporaryDirectory() as tmp:
        over = None
        if args.calibrate:
            over, details["calibration_choice"] = _calibrate(Path(tmp) / "calibrate", judge)
        for m in args.methods.split(","):
            r = results[m] = evaluate(m, Path(tmp) / m, over if m == "semantic" else None,
                                      judge=judge)
            for part in parts:
                _say(f"{m} {part}", r[part])
        if "semantic" in results:  # (earlier rounds' idea settings, for comparison; no headline)
            win = {k: v for k, v in (over or {}).items() if k == "idea_window"}
            for key, what, settings in (("semantic_before", "the idea settings before",
                                         IDEA_BEFORE),
                                        ("semantic_round2", "the second round's settings",
                                         IDEA_ROUND2)):
                r = results[key] = evaluate("semantic", Path(tmp) / key, {**settings, **win},
                                            judge=judge)
                for part in parts:
                    _say(f"semantic, {what}, {part}", r[part])
    keys = (*(f"{lab}_recall" for lab in TYPES), "false_label_rate")
    head = {}
    for m, r in results.items():
        if m in ("semantic_before", "semantic_round2"):
            continue
        head.update({f"{m}_{k}": r[HELDOUT][k] for k in keys})
        for part in ("heldout2", "heldout1", "calibration", "calibration_data", "all"):
            head.update({f"{m}_{part}_{k}": r[part][k] for k in keys})
    write_result(args.out, "plagiarism_labelled.py", head, **details, results=results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
