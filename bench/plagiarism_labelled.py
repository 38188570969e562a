"""Plagiarism typing on a hand-labelled set: recall per type and false labels, per method.

The set (tests/fixtures/plagiarism_labelled/, written by hand for this measurement): 106 texts
against two corpora: 30 documents of memlab's built-in demo corpus (generate_demo_corpus(30,
seed=7), frozen in corpus_demo.jsonl) and 16 short news briefs (corpus_briefs.jsonl). Each text
has a label (verbatim, paraphrase, idea or none) and, unless none, the document it reuses:
- demo: 15 verbatim copies, 18 paraphrases (two sentences of a document in other words, with
  the same facts), 20 with no reuse (10 in the corpus's own templates with other facts, 10 on
  other subjects);
- briefs: 10 verbatim, 14 paraphrases of a whole brief, 14 idea elaborations (a brief told at
  2-4 times its length, in other words, with its facts), 15 with no reuse (8 on a brief's
  topic with other facts, 7 other).
A text counts as found when its label AND its document are right; a `none` text counts as a
false label when it gets any other label. Every text is typed with memlab's own code (the
`memlab plagiarism` path: a corpus index per corpus, the embedding judge), once per method.

    python bench/plagiarism_labelled.py [--methods pan2014,semantic]
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


def load_set() -> tuple[dict[str, list[dict]], list[dict]]:
    read = lambda p: [json.loads(x) for x in p.read_text().splitlines() if x.strip()]  # noqa: E731
    corpora = {"demo": read(SET / "corpus_demo.jsonl"), "briefs": read(SET / "corpus_briefs.jsonl")}
    return corpora, read(SET / "texts.jsonl")


def evaluate(method: str, work: Path, overrides: dict | None = None) -> dict:
    """Type every labelled text with `method`; recall per type, false labels, each text's
    result."""
    from memlab.config.schema import PlagiarismSection
    from memlab.scoring.plagiarism.index import CorpusIndex, SemanticIndex, ensure_index
    from memlab.scoring.plagiarism.judge import Judge
    from memlab.scoring.plagiarism.typer import type_texts

    p = PlagiarismSection(method=method)
    for k, v in (overrides or {}).items():
        setattr(p.semantic, k, v)
    corpora, texts = load_set()
    judge = Judge(p.judge, p.judge_kind)
    got: dict[str, dict] = {}
    for name, docs in corpora.items():
        folder = ensure_index([d["doc_id"] for d in docs], [d["text"] for d in docs],
                              work / f"index-{name}", p)
        index = CorpusIndex(folder, p)
        sem = SemanticIndex(SemanticIndex.build(index, folder, judge), index) \
            if method == "semantic" else None
        mine = [t for t in texts if t["corpus"] == name]
        for t, r in zip(mine, type_texts([t["text"] for t in mine], index, judge, sem)):
            got[t["id"]] = r
    rows = [{**t, "got": got[t["id"]]["label"], "got_doc": got[t["id"]]["doc_id"],
             "found": got[t["id"]]["label"] == t["label"] and
             (t["label"] == "none" or got[t["id"]]["doc_id"] == t["source"])} for t in texts]
    out = {"method": method, "texts": len(rows)}
    for lab in TYPES:
        of = [r for r in rows if r["label"] == lab]
        out[f"{lab}_recall"] = sum(r["found"] for r in of) / len(of)
        out[f"{lab}_n"] = len(of)
    none = [r for r in rows if r["label"] == "none"]
    out["false_label_rate"] = sum(r["got"] != "none" for r in none) / len(none)
    out["none_n"] = len(none)
    out["confusion"] = {f"{a}->{b}": n for (a, b), n in
                        sorted(Counter((r["label"], r["got"]) for r in rows).items())}
    out["misses"] = [{k: r[k] for k in ("id", "label", "source", "got", "got_doc")}
                     for r in rows if not r["found"]]
    return out


def main() -> int:
    from bench._common import write_result

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="pan2014,semantic")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "plagiarism_labelled.json"))
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for m in args.methods.split(","):
            r = results[m] = evaluate(m, Path(tmp) / m)
            print(f"{m}: " + ", ".join(f"{lab} recall {r[f'{lab}_recall']:.2f} ({r[f'{lab}_n']})"
                                       for lab in TYPES) +
                  f", false labels on none {r['false_label_rate']:.3f} ({r['none_n']})")
            for x in r["misses"]:
                print(f"   miss {x['id']}: {x['label']} ({x['source']}) typed {x['got']} "
                      f"({x['got_doc']})")
    head = {f"{m}_{k}": r[k] for m, r in results.items()
            for k in (*(f"{lab}_recall" for lab in TYPES), "false_label_rate")}
    write_result(args.out, "plagiarism_labelled.py", head, results=results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
