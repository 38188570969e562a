"""Measure the built-in demo corpus (memlab/components/corpus.py) for text shared between documents.

Figures (defaults: 2,400 documents, seed 0):
- templates: the longest fixed literal text between two slots / alternatives (chars, words), and
  the longest run of words without a slot in any expansion of a template (words);
- generation time of the corpus (best of 3) and the 7-gram guard's redraws / dropped sentences;
- word 7-grams (words: [a-z0-9]+ of the lowercased text) shared by two documents;
- same-genre document pairs (a seeded sample) sharing a common word run > 50 characters (the
  plagiarism metric's verbatim test), and pairs with an alignment case of the plagiarism
  scorer (PLAGIARISM.md sections 3-5: what the judge then types as paraphrase when in range);
- with --typing N: the last N documents are non-members, the others members; each non-member's
  words 60-160 (what a model that never saw it might continue it with, at best) are typed
  against the members by the real scorer (BM25 + MiniLM judge): the share typed verbatim /
  paraphrase / idea -- a floor that no memorization is needed for.

    python bench/corpus_stats.py [--module path/to/corpus.py] [--pairs 2000] [--typing 300]
                                 [--set paraphrase_entities=false]
"""

from __future__ import annotations

import argparse
import importlib.util
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


def load(path: str | None):
    if path is None:
        from memlab.components import corpus
        return corpus
    spec = importlib.util.spec_from_file_location("corpus_under_test", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---------------------------------------------------------------- templates
def templates(mod) -> list[str]:
    out = []
    for spec in mod.GENRES.values():
        for key in ("title", "header", "first", "last", "lead", "tail", "body"):
            v = spec.get(key)
            if v is not None:
                out += [v] if isinstance(v, str) else list(v)
        for fact in spec.get("facts", []):
            out += fact
    return out


def parse(t: str, macros: dict) -> list:
    """Items: str literal, ('slot',), or [alternative sequences]."""
    while "<" in t and macros:
        t = re.sub(r"<(\w+)>", lambda m: macros[m.group(1)], t)
    pos = 0

    def seq(stops):
        nonlocal pos
        items, buf = [], ""
        while pos < len(t) and t[pos] not in stops:
            c = t[pos]
            if c == "{":
                end = t.index("}", pos)
                items += [buf] if buf else []
                buf = ""
                items.append((t[pos + 1:end],))
                pos = end + 1
            elif c == "[":
                items += [buf] if buf else []
                buf = ""
                pos += 1
                alts = []
                while True:
                    alts.append(seq("|]"))
                    pos += 1
                    if t[pos - 1] == "]":
                        break
                items.append(alts)
            else:
                buf += c
                pos += 1
        items += [buf] if buf else []
        return items
    return seq("")


def literal_pieces(items) -> list[str]:
    out = []
    for x in items:
        if isinstance(x, str):
            out.append(x)
        elif isinstance(x, list):
            for alt in x:
                out += literal_pieces(alt)
    return out


NEG = float("-inf")


def slot_free_run(items) -> tuple:
    """(pass, pre, suf, best): words of the longest slot-free run over all expansions
    (pass: words when the whole sequence is slot-free, else -inf)."""
    acc = (0, 0, 0, 0)
    for x in items:
        if isinstance(x, str):
            n = len(WORD.findall(x.lower()))
            cur = (n, n, n, n)
        elif isinstance(x, tuple):
            cur = (NEG, 0, 0, 0)
        else:
            subs = [slot_free_run(a) for a in x]
            cur = tuple(max(s[i] for s in subs) for i in range(4))
        a, b = acc, cur
        acc = (a[0] + b[0], max(a[1], a[0] + b[1]), max(b[2], b[0] + a[2]),
               max(a[3], b[3], a[2] + b[1]))
    return acc


def template_stats(mod) -> dict:
    macros = getattr(mod, "MACROS", {})
    longest_fixed, longest_t, run_t = "", "", ""
    longest_run = 0
    for t in templates(mod):
        items = parse(t, macros)
        for piece in literal_pieces(items):
            piece = piece.strip(" ,;:()")
            if len(piece) > len(longest_fixed):
                longest_fixed, longest_t = piece, t
        run = slot_free_run(items)[3]
        if run > longest_run:
            longest_run, run_t = run, t
    return {"templates": len(templates(mod)),
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
    ap.add_argument("--module", help="a corpus.py to measure instead of memlab's")
    ap.add_argument("--docs", type=int, default=2400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pairs", type=int, default=2000)
    ap.add_argument("--typing", type=int, default=0)
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=JSON",
                    help="score.plagiarism fields for --typing, e.g. paraphrase_entities=false")
    args = ap.parse_args()
    mod = load(args.module)
    out: dict = {"templates": template_stats(mod)}
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        docs = mod.generate_demo_corpus(args.docs, args.seed)
        times.append(time.perf_counter() - t0)
    out["generate_seconds"] = round(min(times), 3)
    try:
        stats: dict = {}
        mod.generate_demo_corpus(args.docs, args.seed, stats=stats)
        out["guard"] = stats
    except TypeError:
        pass
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
