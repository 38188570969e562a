"""PAN-style text alignment of one (generated, candidate) pair (PLAGIARISM.md sections 3-5):
sentence seeds by tf-idf cosine and Dice, clusters of seeds, extension to fragments, filtering;
then the verbatim measure (the longest common run of words) and method=semantic's idea rule
(section 8). Each pair is a handful of small dense matrix products, not loops over sentence
pairs."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from memlab.config.schema import PlagiarismSection
from memlab.scoring.plagiarism.text import (
    Prepared,
    fact_found,
    facts,
    phrase_forms,
    scaled_facts,
    word_forms,
)

PLAIN_WORD = re.compile(r"\w+")


@dataclass
class Case:
    g0: int  # sentence range on the generated side, inclusive
    g1: int
    d0: int  # and on the candidate side
    d1: int
    gspan: tuple[int, int]
    dspan: tuple[int, int]

    @property
    def glen(self) -> int:
        return self.gspan[1] - self.gspan[0]

    @property
    def dlen(self) -> int:
        return self.dspan[1] - self.dspan[0]


class Pair:
    """tf-idf vectors, cosines and Dice of one (generated, candidate) pair."""

    def __init__(self, g: Prepared, d: Prepared, emb: np.ndarray | None = None):
        """emb (method=semantic): the embedding cosine of every (generated, source) sentence
        pair; None: the published pipeline."""
        self.g, self.d, self.emb = g, d, emb
        m, k = len(g.toks), len(d.toks)
        toks = g.toks + d.toks
        lens = np.array([len(t) for t in toks])
        allt = np.concatenate(toks) if lens.sum() else np.zeros(0, dtype=np.int64)
        uniq, inv = np.unique(allt, return_inverse=True)
        rows = np.repeat(np.arange(m + k), lens)
        counts = np.zeros((m + k, len(uniq)))
        np.add.at(counts, (rows, inv), 1.0)
        binary = counts > 0
        df = binary.sum(axis=0)
        idf = np.log((m + k) / np.maximum(df, 1))
        self.w = counts * idf
        self.m = m
        norms = np.linalg.norm(self.w, axis=1)
        wg, wd = self.w[:m], self.w[m:]
        denom = np.outer(norms[:m], norms[m:])
        dots = wg @ wd.T
        self.cos = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
        bg, bd = binary[:m].astype(float), binary[m:].astype(float)
        sizes = binary.sum(axis=1)
        inter = bg @ bd.T
        tot = np.add.outer(sizes[:m], sizes[m:])
        self.dice = np.divide(2 * inter, tot, out=np.zeros_like(inter), where=tot > 0)

    def seeds(self, p: PlagiarismSection) -> list[tuple[int, int]]:
        hit = (self.cos > p.seed_cosine) & (self.dice > p.seed_dice)
        if self.emb is not None:  # method=semantic: embedding-similar pairs seed as well
            hit |= self.emb >= p.semantic.seed
        ii, jj = np.nonzero(hit)
        return list(zip(ii.tolist(), jj.tolist()))

    def semantic_fragment(self, g0: int, g1: int, d0: int, d1: int) -> float:
        """Mean over the fragment's generated sentences of each one's best embedding cosine
        to the fragment's source sentences."""
        return float(self.emb[g0:g1 + 1, d0:d1 + 1].max(axis=1).mean())

    def fragment_cosine(self, g0: int, g1: int, d0: int, d1: int) -> float:
        a = self.w[g0:g1 + 1].sum(axis=0)
        b = self.w[self.m + d0:self.m + d1 + 1].sum(axis=0)
        na, nb = math.sqrt(a @ a), math.sqrt(b @ b)
        return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0

    def extend(self, seeds: list[tuple[int, int]], gap: int, p: PlagiarismSection) -> list[Case]:
        out: list[Case] = []
        for cl in _clusters(seeds, gap):
            g0, g1 = min(s[0] for s in cl), max(s[0] for s in cl)
            d0, d1 = min(s[1] for s in cl), max(s[1] for s in cl)
            if self.fragment_cosine(g0, g1, d0, d1) > p.fragment_cosine or (
                    self.emb is not None and
                    self.semantic_fragment(g0, g1, d0, d1) >= p.semantic.fragment):
                out.append(Case(g0, g1, d0, d1,
                                (int(self.g.spans[g0, 0]), int(self.g.spans[g1, 1])),
                                (int(self.d.spans[d0, 0]), int(self.d.spans[d1, 1]))))
            elif gap > 0:
                out.extend(self.extend(cl, gap - 1, p))
        return out

    def align(self, p: PlagiarismSection, max_gap: int | None = None) -> list[Case]:
        """Seeding, extension and filtering (PLAGIARISM.md sections 3-5)."""
        cases = self.extend(self.seeds(p), p.max_gap if max_gap is None else max_gap, p)
        cases.sort(key=lambda c: (-(c.glen + c.dlen), c.g0, c.d0))
        kept: list[Case] = []
        for c in cases:
            if all(c.g1 < k.g0 or c.g0 > k.g1 for k in kept):
                kept.append(c)
        kept.sort(key=lambda c: (c.g0, c.d0, c.g1, c.d1))
        return [c for c in kept if c.glen >= p.min_case_chars and c.dlen >= p.min_case_chars]


def _clusters(seeds: list[tuple[int, int]], gap: int) -> list[list[tuple[int, int]]]:
    """Connected components of seeds, adjacent when both coordinates are within gap + 1.
    (Smallest-label propagation over the dense adjacency: a pair has tens of seeds, where
    building a scipy.sparse graph per call cost more than the search.)"""
    if not seeds:
        return []
    xy = np.array(seeds)
    near = (np.abs(xy[:, None, 0] - xy[None, :, 0]) <= gap + 1) & \
        (np.abs(xy[:, None, 1] - xy[None, :, 1]) <= gap + 1)
    label = np.arange(len(seeds))
    while True:
        new = np.where(near, label[None, :], len(seeds)).min(axis=1)
        new = new[new]  # (pointer jumping: long chains of seeds take few passes)
        if np.array_equal(new, label):
            break
        label = new
    groups: dict[int, list] = {}
    for i, s in enumerate(seeds):
        groups.setdefault(int(label[i]), []).append(s)
    return sorted(groups.values(), key=lambda cl: min(cl))


def longest_common_word_run(a: str, b: str) -> int:
    """Character length of the longest common contiguous run of words of two texts."""
    wa, wb = PLAIN_WORD.findall(a.lower()), PLAIN_WORD.findall(b.lower())
    if not wa or not wb:
        return 0
    ids: dict[str, int] = {}
    xa = np.array([ids.setdefault(w, len(ids)) for w in wa])
    xb = np.array([ids.setdefault(w, len(ids)) for w in wb])
    wlen = np.array([len(w) + 1 for w in wb], dtype=np.int64)  # +1: the joining space
    prev = np.zeros(len(wb) + 1, dtype=np.int64)
    best = 0
    for x in xa:
        cur = np.zeros_like(prev)
        hit = xb == x
        cur[1:] = np.where(hit, prev[:-1] + wlen, 0)
        best = max(best, int(cur.max()))
        prev = cur
    return max(best - 1, 0)


def semantic_idea(text: str, g: Prepared, d: Prepared, emb: np.ndarray,
                  p: PlagiarismSection, windows: np.ndarray | None = None,
                  wemb: np.ndarray | None = None):
    """method=semantic's idea rule (PLAGIARISM.md section 8): a short source (at most
    idea_max_sentences sentences) each of whose sentences has a generated window (a run of at
    most idea_window consecutive generated sentences, embedded as one text) at cosine >=
    idea_cover (in any order), inside a generated passage (from the first to the last sentence
    at cosine >= idea_related to the source, widened to the covering windows) at least
    idea_ratio times the source's length, or (idea_added) adding at least idea_added times
    the source's length in sentences at cosine < idea_added_cosine to every source sentence
    (`added_chars`; inside the passage, or with idea_added_scope text anywhere in the
    generated text), the source's facts held by the passage or the whole generated text
    (idea_facts_scope, idea_fact_forms, idea_number_phrases: `_facts_held`). `windows`: the
    windows' inclusive sentence ranges, (n, 2); `wemb`: their cosines to the source's
    sentences (n, k); None: the sentences alone. Returns (length ratio, generated span, source
    span) or None."""
    s = p.semantic
    k = emb.shape[1]
    if k == 0 or k > s.idea_max_sentences or emb.shape[0] == 0:
        return None
    if windows is None:
        windows, wemb = np.stack([np.arange(emb.shape[0])] * 2, axis=1), emb
    if (wemb.max(axis=0) < s.idea_cover).any():
        return None
    cover = windows[wemb.argmax(axis=0)]  # (each source sentence's best window)
    related = np.nonzero(emb.max(axis=1) >= min(s.idea_related, s.idea_cover))[0]
    g0 = int(min(cover[:, 0].min(), related.min(initial=emb.shape[0])))
    g1 = int(max(cover[:, 1].max(), related.max(initial=-1)))
    gspan = (int(g.spans[g0, 0]), int(g.spans[g1, 1]))
    dspan = (int(d.spans[0, 0]), int(d.spans[-1, 1]))
    ratio = (gspan[1] - gspan[0]) / max(1, dspan[1] - dspan[0])
    a0, a1 = (0, emb.shape[0] - 1) if s.idea_added_scope == "text" else (g0, g1)
    if ratio < s.idea_ratio and (s.idea_added is None or added_chars(
            g, emb, a0, a1, s.idea_added_cosine) < s.idea_added * (dspan[1] - dspan[0])):
        return None
    if s.idea_facts and not _facts_held(text, gspan, d, s.idea_facts_scope, s.idea_fact_forms,
                                        s.idea_number_phrases):
        return None
    return ratio, gspan, dspan


def added_chars(g: Prepared, emb: np.ndarray, g0: int, g1: int, below: float) -> int:
    """semantic.idea_added: the material a generated passage (sentences g0..g1) adds to its
    source, in characters: its sentences whose embedding cosine to every source sentence
    (`emb`, (n, k)) is under `below` (idea_added_cosine). A paraphrase tells each of its
    sentences from some source sentence and adds none; an elaboration adds sentences of its
    own (a cause, a quote, what comes next)."""
    new = [i for i in range(g0, g1 + 1) if emb[i].max() < below]
    return int(sum(g.spans[i, 1] - g.spans[i, 0] for i in new))


def _facts_held(text: str, gspan: tuple[int, int], d: Prepared, scope: str,
                forms: bool, phrases: bool = False) -> bool:
    """semantic.idea_facts: each source sentence's own facts (its first word is no name) occur
    among the words of the generated passage (`scope` passage) or of the whole generated text
    (`scope` text); with `forms` (idea_fact_forms), under any of their word forms (a number
    written in words, a Porter stem; text.word_forms), else literally; with `phrases`
    (idea_number_phrases, with forms only), a number also as a phrase of number words (`a
    hundred and fifty` holds 150, `nine million` holds 9 million and 9,000,000:
    text.number_phrases)."""
    scoped = text[gspan[0]:gspan[1]] if scope == "passage" else text
    words = facts(scoped)[1]
    if not forms:
        return all(facts(d.text[a:b])[0] <= words for a, b in d.spans)
    held = word_forms(words)
    if not phrases:
        return all(fact_found(f, held) for a, b in d.spans for f in facts(d.text[a:b])[0])
    held |= phrase_forms(scoped)
    for a, b in d.spans:
        scaled = scaled_facts(d.text[a:b])
        if not all(fact_found(f, held) or scaled.get(f) in held for f in facts(d.text[a:b])[0]):
            return False
    return True
