"""Measure the built-in demo corpus (memlab/components/corpus.py) for text shared between documents.

Figures (defaults: 2,400 documents, seed 0):
- templates: the longest fixed literal text between two slots / alternatives (chars, words), and
  the longest run of words without a slot in any expansion of a template (words), both read
  from the templates as the generator compiles them;
- generation time of the corpus (best of 3) and the 7-gram guard's redraws / dropped sentences;
- word 7-grams (words: [a-z0-9]+ of the lowercased text) shared by two documents;
- same-genre document pairs (a seeded sample) sharing a common word run > 50 characters (the
  plagiarism metric's verbatim test), and pairs with an alignment case of the plagiarism
  scorer (PLAGIARISM.md sections 3-5: what the judge then types as paraphrase when in range);
- with --typing N: the last N documents are non-members, the others members; each non-member's
  words 60-160 (what a model that never saw it might continue it with, at best) are typed
  against the members by the real scorer (BM25 + MiniLM judge): the share typed verbatim /
  paraphrase / idea -- a floor that no memorization is needed for.

--templates measures a draft of memlab/components/corpus_templates.yaml (same format) with
memlab's generator instead of the packaged file.

    python bench/corpus_stats.py [--templates draft.yaml] [--pairs 2000] [--typing 300]
                                 [--set paraphrase_entities=false]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORD = re.compile(r"[a-z0-9]+")


# ---------------------------------------------------------------- templates
# Compiled templates as memlab/components/corpus.py makes them: items are str (literal text),
# tuple (alternatives of plain text), list (alternatives, each a list of items), or anything
# else: a slot (a fresh value, or a per-document one; its _Const is a str subclass).
def literal_pieces(items) -> list[str]:
    out = []
    for x in items:
        if type(x) is str:
            out.append(x)
        elif type(x) is tuple:
            out += [s for s in x if s]
        elif type(x) is list:
            for alt in x:
                out += literal_pieces(alt)
    return out


NEG = float("-inf")


def slot_free_run(items) -> tuple:
    """(pass, pre, suf, best): words of the longest slot-free run over all expansions
    (pass: words when the whole sequence is slot-free, else -inf)."""
    acc = (0, 0, 0, 0)
    for x in items:
        if type(x) is str:
            n = len(WORD.findall(x.lower()))
            cur = (n, n, n, n)
        elif type(x) is tuple:
            n = max(len(WORD.findall(s.lower())) for s in x)
            cur = (n, n, n, n)
        elif type(x) is list:
            subs = [slot_free_run(a) for a in x]
            cur = tuple(max(s[i] for s in subs) for i in range(4))
        else:
            cur = (NEG, 0, 0, 0)
        a, b = acc, cur
        acc = (a[0] + b[0], max(a[1], a[0] + b[1]), max(b[2], b[0] + a[2]),
               max(a[3], b[3], a[2] + b[1]))
    return acc


def template_stats(tpl) -> dict:
    longest_fixed, longest_t, run_t = "", "", ""
    longest_run = 0
    for t, items in tpl.sources:
        for piece in literal_pieces(items):
            piece = piece.strip(" ,;:()")
            if len(piece) > len(longest_fixed):
                longest_fixed, longest_t = piece, t
        run = slot_free_run(items)[3]
        if run > longest_run:
            longest_run, run_t = run, t
    return {"templates": len(tpl.sources),
            "longest_fixed_chars": len(longest_fixed),
            "longest_fixed_words": len(WORD.findall(longest_fixed.lower())),
            "longest_fixed": longest_fixed, "longest_fixed_in": longest_t,
            "longest_slot_free_run_words": int(longest_run), "longest_slot_free_run_in": run_t}


# ---------------------------------------------------------------- corpus
def shared_7grams(docs) -> tuple[int, str | None]:
    first: dict[str, str] = {}
    shared, example = 0, None
    for d in docs:
        w = WORD.findall(d["text"].lower())
        for g in {" ".join(w[i:i + 7]) for i in range(len(w) - 6)}:
            if g in first:
                shared += 1
                example = example or f"{g!r} in {first[g]} and {d['doc_id']}"
            else:
                first[g] = d["doc_id"]
    return shared, example


def longest_common_run_chars(a: str, b: str) -> int:
    """The verbatim test's measure: longest common run of \\w+ words, sum(len) + (n - 1)."""
    wa, wb = re.findall(r"\w+", a.lower()), re.findall(r"\w+", b.lower())
    where: dict[str, list[int]] = {}
    for j, w in enumerate(wb):
        where.setdefault(w, []).append(j)
    best, prev = 0, {}
    for w in wa:
        cur = {}
        for j in where.get(w, ()):
            c = prev.get(j - 1, -1) + len(w) + 1
            cur[j] = c
            best = max(best, c)
        prev = cur
    return max(best - 1, 0)


def pair_stats(docs, n_pairs: int) -> dict:
    from memlab.config.schema import PlagiarismSection
    from memlab.scoring.plagiarism.align import Pair
    from memlab.scoring.plagiarism.text import Stemmer, Vocab, prepare

    rng = random.Random(0)
    by_genre: dict[str, list[dict]] = {}
    for d in docs:
        by_genre.setdefault(d["genre"], []).append(d)
    genres = sorted(by_genre)
    p, stem, vocab = PlagiarismSection(), Stemmer(), Vocab()
    prep: dict[str, object] = {}
    verbatim = aligned = 0
    runs = []
    for _ in range(n_pairs):
        a, b = rng.sample(by_genre[rng.choice(genres)], 2)
        run = longest_common_run_chars(a["text"], b["text"])
        runs.append(run)
        verbatim += run > p.verbatim_chars
        for d in (a, b):
            if d["doc_id"] not in prep:
                prep[d["doc_id"]] = prepare(d["text"], p, stem, vocab)
        aligned += bool(Pair(prep[a["doc_id"]], prep[b["doc_id"]]).align(p))
    runs.sort()
    return {"pairs": n_pairs, "share_common_run_gt_50_chars": verbatim / n_pairs,
            "median_longest_common_run_chars": runs[len(runs) // 2], "max": runs[-1],
            "share_with_alignment_case": aligned / n_pairs}


def typing_stats(docs, n: int, tmp: Path, overrides: list[str]) -> dict:
    from memlab.config.schema import PlagiarismSection
    from memlab.scoring.plagiarism.index import CorpusIndex
    from memlab.scoring.plagiarism.judge import Judge
    from memlab.scoring.plagiarism.typer import type_texts

    p = PlagiarismSection()
    for kv in overrides:  # e.g. paraphrase_entities=false
        key, value = kv.split("=", 1)
        setattr(p, key, json.loads(value))
    members, nonmembers = docs[:-n], docs[-n:]
    folder = CorpusIndex.build([d["doc_id"] for d in members], [d["text"] for d in members],
                               tmp / "index", p)
    index, judge = CorpusIndex(folder, p), Judge("all-MiniLM-L6-v2", device="cpu")
    texts = [" ".join(d["text"].split(" ")[60:160]) for d in nonmembers]
    labels: Counter[str] = Counter()
    for i in range(0, len(texts), 64):
        labels.update(r["label"] for r in type_texts(texts[i:i + 64], index, judge))
    return {"texts": n, **{k: labels[k] / n for k in ("verbatim", "paraphrase", "idea", "none")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--templates", help="a draft of corpus_templates.yaml to measure instead")
    ap.add_argument("--docs", type=int, default=2400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pairs", type=int, default=2000)
    ap.add_argument("--typing", type=int, default=0)
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=JSON",
                    help="score.plagiarism fields for --typing, e.g. paraphrase_entities=false")
    args = ap.parse_args()
    from memlab.components.corpus import default_templates, generate_demo_corpus, parse_templates

    if args.templates:
        tpl = parse_templates(Path(args.templates).read_text(encoding="utf-8"), args.templates)
    else:
        tpl = default_templates()
    out: dict = {"templates": template_stats(tpl)}
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        docs = generate_demo_corpus(args.docs, args.seed, templates=tpl)
        times.append(time.perf_counter() - t0)
    out["generate_seconds"] = round(min(times), 3)
    stats: dict = {}
    generate_demo_corpus(args.docs, args.seed, stats=stats, templates=tpl)
    out["guard"] = stats
    words = [len(d["text"].split()) for d in docs]
    out["words"] = {"min": min(words), "mean": round(sum(words) / len(words), 1), "max": max(words)}
    out["shared_7grams"], out["shared_7gram_example"] = shared_7grams(docs)
    out["same_genre_pairs"] = pair_stats(docs, args.pairs)
    if args.typing:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            out["nonmember_typing"] = typing_stats(docs, args.typing, Path(tmp), args.set)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
