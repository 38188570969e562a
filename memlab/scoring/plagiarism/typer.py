"""The typer (PLAGIARISM.md sections 1-7; method=semantic: section 8): each generated text of a
batch against its candidates from the corpus, each (text, candidate) pair aligned and its cases
typed verbatim or idea at once; the cases that may be paraphrase wait, so that the judge scores
every sentence pair of the batch in one call. A text keeps its most severe finding."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from memlab.scoring import ann
from memlab.scoring.plagiarism.align import Case, Pair, longest_common_word_run, semantic_idea
from memlab.scoring.plagiarism.index import CorpusIndex, SemanticIndex
from memlab.scoring.plagiarism.judge import Judge
from memlab.scoring.plagiarism.text import facts_agree, normalise, prepare

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
    pairs: list[tuple[str, str]] = field(default_factory=list)


def type_texts(texts: list[str], index: CorpusIndex, judge: Judge,
               semantic: SemanticIndex | None = None) -> list[dict]:
    """Type a batch of generated texts against the corpus (PLAGIARISM.md sections 1-7; with
    `semantic`, method=semantic: section 8)."""
    p = index.p
    cands = index.retrieve(texts)
    preps = [prepare(t, p, index.stem, index.vocab) for t in texts]
    gvecs: list[np.ndarray | None] = [None] * len(texts)
    if semantic is not None:  # every text's sentences embedded in one call; dense candidates
        sents = [[t[a:b] for a, b in g.spans] for t, g in zip(texts, preps)]
        flat = judge.vectors([x for ss in sents for x in ss])
        dim = semantic.sent.shape[1]
        at = 0
        for i, ss in enumerate(sents):
            gvecs[i] = flat[at:at + len(ss)].reshape(len(ss), dim)
            at += len(ss)
        query = ann.unit_means(flat, np.cumsum([0] + [len(ss) for ss in sents]))
        dense = semantic.retrieve(query, p.semantic.dense_candidates)
        cands = [c + [x for x in dn if x not in c] for c, dn in zip(cands, dense)]
    best: list[tuple] = [((0, 0.0, 0, 0), None) for _ in texts]  # (rank key, result)
    pending: list[_Pending] = []

    def offer(ti: int, label: str, score: float, rank: int, ci: int, doc_id: str,
              gspan, dspan) -> None:
        key = (SEVERITY[label], score, -rank, -ci)
        if best[ti][1] is None or key > best[ti][0]:
            best[ti] = (key, {"label": label, "doc_id": doc_id, "gen_span": list(gspan),
                              "doc_span": list(dspan), "score": float(score)})

    for ti, text in enumerate(texts):
        g = preps[ti]
        for rank, di in enumerate(cands[ti]):
            d = index.doc(di)
            emb = None if semantic is None else gvecs[ti] @ semantic.doc_sentences(di).T
            pair = Pair(g, d, emb)
            cases = pair.align(p)
            covered = None if emb is None else semantic_idea(text, g, d, emb, p)
            if covered:
                ratio, gspan, dspan = covered
                offer(ti, "idea", ratio, rank, len(cases), index.doc_ids[di], gspan, dspan)
            if not cases:
                continue
            idea_case = None
            for ci, c in enumerate(cases):
                run = longest_common_word_run(text[c.gspan[0]:c.gspan[1]],
                                              d.text[c.dspan[0]:c.dspan[1]])
                if run > p.verbatim_chars:
                    offer(ti, "verbatim", run, rank, ci, index.doc_ids[di], c.gspan, c.dspan)
                    continue
                if covered:  # (idea reuse of this source, as the published rule types it)
                    continue
                if idea_case is None:
                    wide = pair.align(p, p.idea_max_gap)
                    ratios = [(w.glen / max(w.dlen, 1), w) for w in wide
                              if w.glen >= p.idea_ratio * w.dlen]
                    idea_case = max(ratios, key=lambda x: x[0]) if ratios else False
                if idea_case:
                    ratio, w = idea_case
                    offer(ti, "idea", ratio, rank, ci, index.doc_ids[di], w.gspan, w.dspan)
                    continue
                pend = _Pending(ti, rank, ci, c, index.doc_ids[di])
                for i in range(c.g0, c.g1 + 1):
                    a = text[g.spans[i, 0]:g.spans[i, 1]]
                    for j in range(c.d0, c.d1 + 1):
                        b = d.text[d.spans[j, 0]:d.spans[j, 1]]
                        if normalise(a) != normalise(b) and (not p.paraphrase_entities
                                                     or facts_agree(a, b)):
                            pend.pairs.append((a, b))
                pending.append(pend)
    # one batched judge call for every case that needs it (skip texts already verbatim)
    pending = [x for x in pending if best[x.text_idx][0][0] < SEVERITY["verbatim"]]
    scores = judge.scores([pr for x in pending for pr in x.pairs])
    low, high = p.window()
    k = 0
    for x in pending:
        s = scores[k:k + len(x.pairs)]
        k += len(x.pairs)
        inside = [v for v in s if low <= v <= high]
        if inside:
            offer(x.text_idx, "paraphrase", max(inside), x.cand_rank, x.case_idx, x.doc_id,
                  x.case.gspan, x.case.dspan)
    none = {"label": "none", "doc_id": None, "gen_span": None, "doc_span": None, "score": 0.0}
    return [b[1] if b[1] is not None else dict(none) for b in best]
