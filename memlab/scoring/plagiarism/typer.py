"""The typer (PLAGIARISM.md sections 1-7; method=semantic: section 8): each generated text of a
batch against its candidates from the corpus, each (text, candidate) pair aligned and its cases
typed verbatim or idea at once; the cases that may be paraphrase wait, so that the judge scores
every sentence pair of the batch in one call. A text keeps its most severe finding."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memlab.config.schema import PlagiarismSection
from memlab.scoring import ann
from memlab.scoring.plagiarism.align import Case, Pair, longest_common_word_run, semantic_idea
from memlab.scoring.plagiarism.index import CorpusIndex, SemanticIndex
from memlab.scoring.plagiarism.judge import Judge
from memlab.scoring.plagiarism.text import (
    Prepared,
    facts_agree,
    facts_within,
    normalise,
    prepare,
    text_facts,
)

SEVERITY = {"verbatim": 3, "paraphrase": 2, "idea": 1, "none": 0}
LABELS = ("verbatim", "paraphrase", "idea", "none")


@dataclass
class _Pending:
    """A case waiting for the paraphrase judge."""

    text_idx: int
    cand_rank: int
    case_idx: int
    case: Case
    doc_id: str
    pairs: list[tuple[str, str]]  # its (generated, source) sentence pairs for the judge


class _Best:
    """Each text's finding so far: the most severe label wins, then the higher score, then the
    better-ranked candidate, then the earlier case. A finding's `score` is its label's own
    measure (verbatim: the common word run in characters; paraphrase: the judge's score; idea:
    generated / source length); it is also given typed, as `run_chars` and `judge_score`
    (None where another label's), with the spans' lengths `gen_chars` and `doc_chars`."""

    def __init__(self, n: int):
        self.keys: list[tuple] = [(0, 0.0, 0, 0)] * n
        self.found: list[dict | None] = [None] * n

    def offer(self, ti: int, label: str, score: float, rank: int, ci: int, doc_id: str,
              gspan, dspan) -> None:
        key = (SEVERITY[label], score, -rank, -ci)
        if self.found[ti] is None or key > self.keys[ti]:
            self.keys[ti] = key
            self.found[ti] = {"label": label, "doc_id": doc_id, "gen_span": list(gspan),
                              "doc_span": list(dspan), "score": float(score),
                              "gen_chars": int(gspan[1] - gspan[0]),
                              "doc_chars": int(dspan[1] - dspan[0]),
                              "run_chars": int(score) if label == "verbatim" else None,
                              "judge_score": float(score) if label == "paraphrase" else None}

    def severity(self, ti: int) -> int:
        return self.keys[ti][0]

    def results(self) -> list[dict]:
        none = {"label": "none", "doc_id": None, "gen_span": None, "doc_span": None,
                "score": 0.0, "gen_chars": None, "doc_chars": None, "run_chars": None,
                "judge_score": None}
        return [f if f is not None else dict(none) for f in self.found]


def type_texts(texts: list[str], index: CorpusIndex, judge: Judge,
               semantic: SemanticIndex | None = None) -> list[dict]:
    """Type a batch of generated texts against the corpus (PLAGIARISM.md sections 1-7; with
    `semantic`, method=semantic: section 8)."""
    p = index.p
    cands = index.retrieve(texts)
    preps = [prepare(t, p, index.stem, index.vocab) for t in texts]
    gvecs: list[np.ndarray | None] = [None] * len(texts)
    wins: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(texts)
    if semantic is not None:
        cands, gvecs = _dense_candidates(preps, cands, judge, semantic, p)
        wins = _windows(preps, gvecs, judge, p.semantic.idea_window)
    best = _Best(len(texts))
    pending: list[_Pending] = []
    for ti, g in enumerate(preps):
        for rank, di in enumerate(cands[ti]):
            pending += _type_pair(best, ti, g, gvecs[ti], wins[ti], rank, di, index, semantic)
    _judge_paraphrases(best, pending, judge, p)
    return best.results()


def _dense_candidates(preps: list[Prepared], cands: list[list[int]], judge: Judge,
                      semantic: SemanticIndex, p: PlagiarismSection):
    """method=semantic: every text's sentences embedded in one call; each text's candidates are
    its BM25 ones, then its dense ones (nearest documents to the unit mean of its sentences)
    not among them. Returns (candidates, each text's sentence vectors)."""
    sents = [[g.text[a:b] for a, b in g.spans] for g in preps]
    flat = judge.vectors([x for ss in sents for x in ss])
    dim = semantic.sent.shape[1]
    gvecs: list[np.ndarray | None] = []
    at = 0
    for ss in sents:
        gvecs.append(flat[at:at + len(ss)].reshape(len(ss), dim))
        at += len(ss)
    query = ann.unit_means(flat, np.cumsum([0] + [len(ss) for ss in sents]))
    dense = semantic.retrieve(query, p.semantic.dense_candidates)
    return [c + [x for x in dn if x not in c] for c, dn in zip(cands, dense)], gvecs


def _windows(preps: list[Prepared], gvecs: list, judge: Judge,
             width: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """method=semantic's idea windows of each text: every run of 1 to `width` consecutive
    sentences, as (inclusive sentence ranges (n, 2), unit vectors (n, dim)); a run of one
    sentence is that sentence's vector, a longer run is embedded as one text (a source
    sentence an elaboration spreads over several of its sentences matches the run, where no
    one of them alone does). Runs of all texts embedded in one call."""
    runs = [[(i, i + w - 1) for w in range(2, width + 1) for i in range(len(g.spans) - w + 1)]
            for g in preps]
    texts = [g.text[g.spans[a, 0]:g.spans[b, 1]] for g, rr in zip(preps, runs) for a, b in rr]
    flat = judge.vectors(texts) if texts else None
    out, at = [], 0
    for g, v, rr in zip(preps, gvecs, runs):
        single = [(i, i) for i in range(len(g.spans))]
        ranges = np.array(single + rr, dtype=np.int64).reshape(-1, 2)
        out.append((ranges, np.concatenate([v, flat[at:at + len(rr)]]) if rr else v))
        at += len(rr)
    return out


def _type_pair(best: _Best, ti: int, g: Prepared, gvec: np.ndarray | None,
               win: tuple[np.ndarray, np.ndarray] | None, rank: int, di: int,
               index: CorpusIndex, semantic: SemanticIndex | None) -> list[_Pending]:
    """Align text `ti` with its candidate `di`: verbatim and idea findings are offered at once;
    the cases that may be paraphrase are returned, for the batch's one judge call."""
    p, text = index.p, g.text
    d, doc_id = index.doc(di), index.doc_ids[di]
    dsent = None if semantic is None else semantic.doc_sentences(di)
    emb = None if dsent is None else gvec @ dsent.T
    pair = Pair(g, d, emb)
    cases = pair.align(p)
    covered = None
    if emb is not None and 0 < len(dsent) <= p.semantic.idea_max_sentences:
        covered = semantic_idea(text, g, d, emb, p, win[0], win[1] @ dsent.T)
    if covered:
        ratio, gspan, dspan = covered
        best.offer(ti, "idea", ratio, rank, len(cases), doc_id, gspan, dspan)
    pending: list[_Pending] = []
    idea_case = None  # (the pair's widest idea case: looked for once, when a case needs it)
    for ci, c in enumerate(cases):
        run = longest_common_word_run(text[c.gspan[0]:c.gspan[1]],
                                      d.text[c.dspan[0]:c.dspan[1]])
        if run > p.verbatim_chars:
            best.offer(ti, "verbatim", run, rank, ci, doc_id, c.gspan, c.dspan)
            continue
        if covered:  # (idea reuse of this source, as the published rule types it)
            continue
        if idea_case is None:
            idea_case = _idea_case(pair, p)
        if idea_case:
            ratio, w = idea_case
            best.offer(ti, "idea", ratio, rank, ci, doc_id, w.gspan, w.dspan)
            continue
        pending.append(_Pending(ti, rank, ci, c, doc_id, _sentence_pairs(g, d, c, p)))
    return pending


def _idea_case(pair: Pair, p: PlagiarismSection) -> tuple[float, Case] | bool:
    """The pair aligned again with the wider idea_max_gap: its case of the highest length
    ratio (generated / source) at least idea_ratio, with the ratio; False if none."""
    wide = pair.align(p, p.idea_max_gap)
    ratios = [(w.glen / max(w.dlen, 1), w) for w in wide if w.glen >= p.idea_ratio * w.dlen]
    return max(ratios, key=lambda x: x[0]) if ratios else False


def _sentence_pairs(g: Prepared, d: Prepared, c: Case,
                    p: PlagiarismSection) -> list[tuple[str, str]]:
    """The case's (generated, source) sentence pairs the judge scores: those that differ once
    normalised and (paraphrase_entities) hold the same facts: each sentence's facts among the
    other's words, or (method semantic, semantic.paraphrase_facts case) the generated
    sentence's among the case's source side and the source sentence's among its generated
    side, or (paraphrase_facts text) among the whole source and generated texts
    (text.facts_within)."""
    pairs = []
    scope = p.semantic.paraphrase_facts if p.method == "semantic" else "pair"
    whole = scope != "pair"
    if whole:
        gs, ds = (c.gspan, c.dspan) if scope == "case" else ((0, len(g.text)), (0, len(d.text)))
        gside, dside = text_facts(g.text[gs[0]:gs[1]]), text_facts(d.text[ds[0]:ds[1]])
    for i in range(c.g0, c.g1 + 1):
        a = g.text[g.spans[i, 0]:g.spans[i, 1]]
        for j in range(c.d0, c.d1 + 1):
            b = d.text[d.spans[j, 0]:d.spans[j, 1]]
            if normalise(a) == normalise(b):
                continue
            if not p.paraphrase_entities or (facts_within(a, dside) and facts_within(b, gside)
                                             if whole else facts_agree(a, b)):
                pairs.append((a, b))
    return pairs


def _judge_paraphrases(best: _Best, pending: list[_Pending], judge: Judge,
                       p: PlagiarismSection) -> None:
    """One batched judge call for every waiting case (but those of texts already verbatim):
    a case is paraphrase when one of its sentence pairs scores inside the judge's window."""
    pending = [x for x in pending if best.severity(x.text_idx) < SEVERITY["verbatim"]]
    scores = judge.scores([pr for x in pending for pr in x.pairs])
    low, high = p.window()
    k = 0
    for x in pending:
        s = scores[k:k + len(x.pairs)]
        k += len(x.pairs)
        inside = [v for v in s if low <= v <= high]
        if inside:
            best.offer(x.text_idx, "paraphrase", max(inside), x.cand_rank, x.case_idx,
                       x.doc_id, x.case.gspan, x.case.dspan)
