"""Literal, per-pair reference implementation of memlab/scoring/PLAGIARISM.md.

This is the slow oracle the fast scorer (memlab/scoring/plagiarism/) is checked against.
It follows the published-pipeline shape (Sanchez-Perez et al., PAN 2014; Lee et al., WWW 2023):
for every (generated text, candidate) pair both texts are re-processed from scratch, tf-idf is
computed over the sentences of that pair only, and seeding, extension, filtering and typing are
done in plain Python with dicts as sparse vectors. Nothing is cached across pairs except the
BM25 index (section 1), which is not what this reference is about.

Readings chosen where PLAGIARISM.md leaves room are marked "READING:".
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from nltk.stem.porter import PorterStemmer

_STEMMER = PorterStemmer(mode=PorterStemmer.ORIGINAL_ALGORITHM)
_stem = functools.cache(_STEMMER.stem)  # a pure function of the word: computed once per word
_SPLIT_RE = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\-]*")


@dataclass
class RefParams:
    """Defaults exactly as in PLAGIARISM.md."""
    n_candidates: int = 10
    min_sentence_words: int = 3
    seed_cosine: float = 0.30
    seed_dice: float = 0.33
    max_gap: int = 4
    fragment_cosine: float = 0.34
    min_case_chars: int = 50
    verbatim_chars: int = 50
    idea_max_gap: int = 24
    idea_ratio: float = 3.0
    paraphrase_low: float = 0.80  # the embedding judge's calibrated window
    paraphrase_high: float = 0.99
    paraphrase_entities: bool = True


@dataclass
class Sentence:
    start: int
    end: int
    words: list[str]  # stems, in order


@dataclass
class Case:
    gen_range: tuple[int, int]    # inclusive sentence indices on the gen side
    doc_range: tuple[int, int]    # inclusive sentence indices on the candidate side
    gen_span: tuple[int, int]     # [start, end) character offsets in the gen text
    doc_span: tuple[int, int]     # [start, end) character offsets in the candidate text

    @property
    def gen_len(self) -> int:
        return self.gen_span[1] - self.gen_span[0]

    @property
    def doc_len(self) -> int:
        return self.doc_span[1] - self.doc_span[0]


# ------------------------------------------------------------------ section 1: retrieval
_BM25_CACHE: dict[int, tuple[list[str], object]] = {}


def ref_retrieve(gen_text: str, corpus_ids: list[str], corpus_texts: list[str], n: int) -> list[str]:
    """Section 1: BM25 (k1=1.2, b=0.75, Lucene variant) top-n with score > 0, best first,
    ties by lower corpus index. The index is cached per corpus_texts object id."""
    import bm25s

    key = id(corpus_texts)
    cached = _BM25_CACHE.get(key)
    if cached is None or cached[0] is not corpus_texts:
        tokens = bm25s.tokenize(corpus_texts, stopwords="en", stemmer=None,
                                return_ids=False, show_progress=False)
        index = bm25s.BM25(k1=1.2, b=0.75)
        index.index(tokens, show_progress=False)
        cached = _BM25_CACHE[key] = (corpus_texts, index)
    index = cached[1]
    query = bm25s.tokenize([gen_text], stopwords="en", stemmer=None,
                           return_ids=False, show_progress=False)[0]
    if not query:
        return []
    scores = [float(s) for s in index.get_scores(query)]
    order = sorted(range(len(scores)), key=lambda k: (-scores[k], k))
    return [corpus_ids[k] for k in order[:n] if scores[k] > 0]


# ------------------------------------------------------------------ section 2: pre-processing
def split_sentences(text: str) -> list[tuple[int, int]]:
    """Section 2.1: pieces between matches of the split regex, stripped, empty ones dropped."""
    spans, pos = [], 0
    for m in list(_SPLIT_RE.finditer(text)) + [None]:
        end = m.start() if m is not None else len(text)
        piece = text[pos:end]
        stripped = piece.strip()
        if stripped:
            s = pos + (len(piece) - len(piece.lstrip()))
            spans.append((s, s + len(stripped)))
        if m is not None:
            pos = m.end()
    return spans


def sentence_words(sentence: str) -> list[str]:
    """Section 2.2: word regex, lowercase, keep len > 2, original Porter stem."""
    words = [w.lower() for w in _WORD_RE.findall(sentence)]
    return [_stem(w) for w in words if len(w) > 2]


def preprocess(text: str, p: RefParams) -> list[Sentence]:
    """Sections 2.1-2.3: sentences with spans and stems, short sentences merged."""
    raw = [Sentence(s, e, sentence_words(text[s:e])) for s, e in split_sentences(text)]
    out: list[Sentence] = []
    pending: Sentence | None = None
    for sent in raw:
        if pending is not None:  # a short sentence is merged into the next one
            sent = Sentence(pending.start, sent.end, pending.words + sent.words)
            pending = None
        if len(sent.words) < p.min_sentence_words:
            pending = sent
        else:
            out.append(sent)
    if pending is not None:  # the last one is still short: merge into the previous one
        if out:
            prev = out[-1]
            out[-1] = Sentence(prev.start, pending.end, prev.words + pending.words)
        else:  # the whole text has fewer than 3 words: it stays one sentence
            out.append(pending)
    return out


def tfidf_vectors(gen: list[Sentence], doc: list[Sentence]) -> tuple[list[dict], list[dict]]:
    """Section 2.4: idf over the N sentences of this pair; weight = count * ln(N / df)."""
    sentences = gen + doc
    n = len(sentences)
    df: Counter = Counter()
    for s in sentences:
        df.update(set(s.words))
    vecs = []
    for s in sentences:
        vecs.append({t: c * math.log(n / df[t]) for t, c in Counter(s.words).items()})
    return vecs[:len(gen)], vecs[len(gen):]


def cosine(a: dict, b: dict) -> float:
    """A zero vector has cosine 0 (section 3)."""
    if len(a) > len(b):
        a, b = b, a
    dot = sum(w * b[t] for t, w in a.items() if t in b)
    na = math.sqrt(sum(w * w for w in a.values()))
    nb = math.sqrt(sum(w * w for w in b.values()))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return dot / (na * nb)


def dice(a: set, b: set) -> float:
    """READING: two empty stem sets have Dice 0 (0/0)."""
    if not a and not b:
        return 0.0
    return 2 * len(a & b) / (len(a) + len(b))


# ------------------------------------------------------------------ section 3: seeding
def find_seeds(gen: list[Sentence], doc: list[Sentence], gv: list[dict], dv: list[dict],
               p: RefParams) -> list[tuple[int, int]]:
    seeds = []
    for i, gs in enumerate(gen):
        for j, ds in enumerate(doc):
            if cosine(gv[i], dv[j]) > p.seed_cosine and dice(set(gs.words), set(ds.words)) > p.seed_dice:
                seeds.append((i, j))
    return seeds


# ------------------------------------------------------------------ section 4: extension
def group_seeds(seeds: list[tuple[int, int]], gap: int) -> list[list[tuple[int, int]]]:
    """Section 4.1: connected components under |di| <= gap+1 and |dj| <= gap+1."""
    seeds = sorted(seeds)
    seen = [False] * len(seeds)
    clusters = []
    for k in range(len(seeds)):
        if seen[k]:
            continue
        seen[k], stack, comp = True, [k], []
        while stack:
            a = stack.pop()
            comp.append(seeds[a])
            for b in range(len(seeds)):
                if not seen[b] and abs(seeds[a][0] - seeds[b][0]) <= gap + 1 \
                        and abs(seeds[a][1] - seeds[b][1]) <= gap + 1:
                    seen[b] = True
                    stack.append(b)
        clusters.append(sorted(comp))
    return clusters


def summed(vecs: list[dict], lo: int, hi: int) -> dict:
    out: dict = {}
    for v in vecs[lo:hi + 1]:
        for t, w in v.items():
            out[t] = out.get(t, 0.0) + w
    return out


def extend(seeds, gen, doc, gv, dv, gap: int, p: RefParams) -> list[Case]:
    """Section 4.2-4.3: a valid cluster is a case; an invalid one is re-grouped with gap-1
    (its own seeds only), down to gap 0 where an invalid cluster is dropped."""
    cases = []
    for cluster in group_seeds(seeds, gap):
        i0, i1 = min(s[0] for s in cluster), max(s[0] for s in cluster)
        j0, j1 = min(s[1] for s in cluster), max(s[1] for s in cluster)
        if cosine(summed(gv, i0, i1), summed(dv, j0, j1)) > p.fragment_cosine:
            cases.append(Case((i0, i1), (j0, j1), (gen[i0].start, gen[i1].end),
                              (doc[j0].start, doc[j1].end)))
        elif gap > 0:
            cases.extend(extend(cluster, gen, doc, gv, dv, gap - 1, p))
    return cases


# ------------------------------------------------------------------ section 5: filtering
def _order(c: Case) -> tuple:
    return (c.gen_range[0], c.doc_range[0], c.gen_range[1], c.doc_range[1])


def filter_cases(cases: list[Case], p: RefParams) -> list[Case]:
    """Section 5.1 then 5.2: walk the cases from the largest summed character length down
    (ties: gen start, then candidate start) and keep each one whose gen-side sentence range
    intersects no case kept before it; then drop cases shorter than min_case_chars."""
    order = sorted(cases, key=lambda c: (-(c.gen_len + c.doc_len), c.gen_range[0],
                                         c.doc_range[0]))
    kept: list[Case] = []
    for c in order:
        if all(c.gen_range[1] < k.gen_range[0] or c.gen_range[0] > k.gen_range[1]
               for k in kept):
            kept.append(c)
    return [c for c in kept if c.gen_len >= p.min_case_chars and c.doc_len >= p.min_case_chars]


def ref_align_pair(gen_text: str, doc_text: str, p: RefParams,
                   max_gap: int | None = None) -> list[Case]:
    """Sections 2-5 for one (gen, candidate) pair, everything recomputed from the texts."""
    gen, doc = preprocess(gen_text, p), preprocess(doc_text, p)
    if not gen or not doc:
        return []
    gv, dv = tfidf_vectors(gen, doc)
    seeds = find_seeds(gen, doc, gv, dv, p)
    gap = p.max_gap if max_gap is None else max_gap
    return sorted(filter_cases(extend(seeds, gen, doc, gv, dv, gap, p), p), key=_order)


# ------------------------------------------------------------------ section 6: typing
def longest_common_run_chars(a: str, b: str) -> int:
    """Section 6 verbatim: char length sum(len(w)) + (n-1) of the longest common contiguous
    run of \\w+ words. READING: "longest" is measured in characters (the quantity compared)."""
    wa, wb = re.findall(r"\w+", a.lower()), re.findall(r"\w+", b.lower())
    best, prev = 0, [0] * (len(wb) + 1)
    for x in wa:
        cur = [0] * (len(wb) + 1)
        for k, y in enumerate(wb):
            if x == y:
                cur[k + 1] = prev[k] + len(x) + 1
                best = max(best, cur[k + 1])
        prev = cur
    return max(best - 1, 0)


def _norm(s: str) -> str:
    return " ".join(s.lower().split())


def _numbers(s: str) -> set[str]:
    return {m.group(0).rstrip(".,:/").replace(",", "")
            for m in re.finditer(r"[0-9]+([.,:/][0-9]+)*", s)}


def _words(s: str) -> list[str]:
    """Letter-initial words, without a trailing possessive 's or apostrophe / hyphen."""
    out = []
    for m in re.finditer(r"[A-Za-z][A-Za-z0-9'\-]*", s):
        w = m.group(0).rstrip("'-")
        out.append(w[:-2] if w.endswith("'s") else w)
    return out


def _facts(s: str) -> set[str]:
    """Section 6's entities: numbers, and capitalised words after the first (not I, I'm...)."""
    words = _words(s)
    caps = {w.lower() for w in words[1:] if w[0].isupper() and w.split("'")[0] != "I"}
    return _numbers(s) | caps


def _tokens(s: str) -> set[str]:
    return _numbers(s) | {w.lower() for w in _words(s)}


def type_case(case: Case, gen_text: str, doc_text: str, p: RefParams,
              judge: Callable[[str, str], float], idea_cases: Callable[[], list[Case]]) -> tuple[str, float]:
    """Section 6: (type, case score) of one surviving case, checked verbatim, idea, paraphrase."""
    run = longest_common_run_chars(gen_text[case.gen_span[0]:case.gen_span[1]],
                                   doc_text[case.doc_span[0]:case.doc_span[1]])
    if run > p.verbatim_chars:
        return "verbatim", float(run)
    # READING: "some resulting case" is any case of the gap-24 alignment of the pair, not
    # necessarily one overlapping this case; the score is the largest qualifying ratio.
    ratios = [c.gen_len / c.doc_len for c in idea_cases() if c.gen_len >= p.idea_ratio * c.doc_len]
    if ratios:
        return "idea", max(ratios)
    gen, doc = preprocess(gen_text, p), preprocess(doc_text, p)
    best = None
    for i in range(case.gen_range[0], case.gen_range[1] + 1):
        for j in range(case.doc_range[0], case.doc_range[1] + 1):
            a = gen_text[gen[i].start:gen[i].end]
            b = doc_text[doc[j].start:doc[j].end]
            if _norm(a) == _norm(b):
                continue
            if p.paraphrase_entities and not (_facts(a) <= _tokens(b) and _facts(b) <= _tokens(a)):
                continue  # the two sentences do not carry the same numbers and names
            score = float(judge(a, b))  # one call per sentence pair, no batching
            if p.paraphrase_low <= score <= p.paraphrase_high and (best is None or score > best):
                best = score
    if best is not None:
        return "paraphrase", best
    return "none", 0.0


# ------------------------------------------------------------------ section 7: per text
SEVERITY = {"verbatim": 3, "paraphrase": 2, "idea": 1, "none": 0}


def ref_type_text(gen_text: str, corpus: dict[str, str], candidates: list[str],
                  judge: Callable[[str, str], float], p: RefParams) -> dict:
    """Section 7: the most severe case over all candidates (ranked best first); ties by
    higher case score, then better-ranked candidate, then earlier case."""
    best_key, best = None, None
    for rank, doc_id in enumerate(candidates):
        doc_text = corpus[doc_id]
        cases = ref_align_pair(gen_text, doc_text, p)
        idea_memo: list = []

        def idea_cases(doc_text=doc_text, memo=idea_memo):  # the pair's gap-24 alignment
            if not memo:
                memo.append(ref_align_pair(gen_text, doc_text, p, max_gap=p.idea_max_gap))
            return memo[0]

        for pos, case in enumerate(cases):
            label, score = type_case(case, gen_text, doc_text, p, judge, idea_cases)
            if label == "none":
                continue
            key = (SEVERITY[label], score, -rank, -pos)
            if best_key is None or key > best_key:
                best_key = key
                best = {"label": label, "doc_id": doc_id, "gen_span": list(case.gen_span),
                        "doc_span": list(case.doc_span), "score": score}
    if best is None:
        return {"label": "none", "doc_id": None, "gen_span": None, "doc_span": None, "score": 0.0}
    return best


def ref_score_text(gen_text: str, corpus_ids: list[str], corpus_texts: list[str],
                   judge: Callable[[str, str], float], p: RefParams | None = None) -> dict:
    """Sections 1-7 end to end for one generated text."""
    p = p or RefParams()
    candidates = ref_retrieve(gen_text, corpus_ids, corpus_texts, p.n_candidates)
    return ref_type_text(gen_text, dict(zip(corpus_ids, corpus_texts)), candidates, judge, p)
