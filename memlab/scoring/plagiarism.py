"""Plagiarism typing at corpus scale (METRICS.md section 2, read exactly as PLAGIARISM.md).

Every generated text is checked against the whole fine-tuning corpus: BM25 candidates, then
PAN-style text alignment of each (text, candidate) pair, then typing as verbatim, paraphrase,
idea or none. What makes it fast, without changing a label:
- the corpus is pre-processed once per dataset (sentences, spans, stem ids) and saved next to
  the dataset shards with its BM25 index; workers memory-map both, loading them once;
- a generated text is pre-processed once, not once per candidate, and stems are cached;
- each pair is a handful of small dense matrix products (tf-idf cosines, Dice) instead of
  Python loops over sentence pairs;
- paraphrase-judge calls of a whole batch of texts are made in one batched, cached call.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from memlab.config.schema import PlagiarismSection, StudyConfig
from memlab.scoring import ann
from memlab.scoring.registry import Column, Context, Scorer, label_percents, register

SENT_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\-]*")
PLAIN_WORD = re.compile(r"\w+")
SEVERITY = {"verbatim": 3, "paraphrase": 2, "idea": 1, "none": 0}
LABELS = ("verbatim", "paraphrase", "idea", "none")


def index_key(p: PlagiarismSection) -> str:
    """What the saved corpus index depends on."""
    return f"k1={p.bm25_k1:g}-b={p.bm25_b:g}-msw={p.min_sentence_words}-v{CorpusIndex.VERSION}"


# ------------------------------------------------------------------------ pre-processing
class Stemmer:
    """Porter stems with a cache (most words repeat); PyStemmer's C implementation."""

    def __init__(self):
        import Stemmer as pystemmer

        self._stem = pystemmer.Stemmer("porter").stemWord
        self._cache: dict[str, str] = {}

    def __call__(self, word: str) -> str:
        s = self._cache.get(word)
        if s is None:
            s = self._cache[word] = self._stem(word)
        return s


def split_sentences(text: str, min_words: int, stem: Callable[[str], str]):
    """[(start, end, [stems])] after merging short sentences (PLAGIARISM.md section 2)."""
    raw = []
    pos = 0
    for m in list(SENT_SPLIT.finditer(text)) + [None]:
        end = m.start() if m else len(text)
        piece = text[pos:end]
        stripped = piece.strip()
        if stripped:
            s = pos + (len(piece) - len(piece.lstrip()))
            words = [stem(w) for w in (x.lower() for x in WORD.findall(stripped)) if len(w) > 2]
            raw.append([s, s + len(stripped), words])
        pos = m.end() if m else len(text)
    out: list[list] = []
    pending = None
    for s in raw:
        if pending is not None:
            s = [pending[0], s[1], pending[2] + s[2]]
            pending = None
        if len(s[2]) < min_words:
            pending = s
        else:
            out.append(s)
    if pending is not None:
        if out:
            out[-1] = [out[-1][0], pending[1], out[-1][2] + pending[2]]
        else:
            out.append(pending)
    return out


@dataclass
class Prepared:
    """One text: sentence spans and stem ids per sentence."""

    text: str
    spans: np.ndarray  # (S, 2) int
    toks: list[np.ndarray]  # stem ids per sentence


class Vocab:
    def __init__(self, stems: list[str] | None = None):
        self.ids: dict[str, int] = {s: i for i, s in enumerate(stems or [])}

    def __call__(self, stem: str) -> int:
        i = self.ids.get(stem)
        if i is None:
            i = self.ids[stem] = len(self.ids)
        return i

    def stems(self) -> list[str]:
        return list(self.ids)


def prepare(text: str, p: PlagiarismSection, stem: Stemmer, vocab: Vocab) -> Prepared:
    sents = split_sentences(text, p.min_sentence_words, stem)
    spans = np.array([[s, e] for s, e, _ in sents], dtype=np.int64).reshape(-1, 2)
    toks = [np.array([vocab(w) for w in ws], dtype=np.int64) for _, _, ws in sents]
    return Prepared(text, spans, toks)


# ------------------------------------------------------------------------ alignment
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


def _bm25s():
    """bm25s with its numpy top-k, pinned: where JAX is installed, importing bm25s imports JAX
    and runs a top-k with it (measured on an H200: JAX then reserved most of the GPU's memory
    in every scoring process). bm25s is imported with JAX hidden from it, so it selects numpy
    (memlab passes backend_selection="numpy" as well); a JAX the process imported before is
    left alone, and JAX_PLATFORMS=cpu keeps it off the GPU if anything imports it later."""
    import sys

    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    if "bm25s" not in sys.modules and "jax" not in sys.modules:
        sys.modules["jax"] = None  # an import of jax raises ImportError while this holds
        try:
            import bm25s  # noqa: F401
        finally:
            del sys.modules["jax"]
    import bm25s

    return bm25s


def _norm(s: str) -> str:
    return " ".join(s.lower().split())


_NUMBER = re.compile(r"\d+(?:[.,:/]\d+)*")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'-]*")


def _word(w: str) -> str:
    w = w.rstrip("'-")
    return w[:-2] if w.endswith("'s") else w


def facts(sentence: str) -> tuple[set[str], set[str]]:
    """(the sentence's facts: its numbers (thousands commas dropped: 2,310 = 2310) and its
    capitalised words other than the first word and the pronoun I, lowercased; every number
    and word it holds, lowercased)."""
    nums = {n.rstrip(".,:/").replace(",", "") for n in _NUMBER.findall(sentence)}
    words = [_word(w) for w in _WORD.findall(sentence)]
    caps = {w.lower() for i, w in enumerate(words)
            if i > 0 and w[:1].isupper() and w.split("'")[0] != "I"}
    return nums | caps, nums | {w.lower() for w in words}


def facts_agree(a: str, b: str) -> bool:
    """Each sentence's facts occur among the other's words (in any case and position, so a
    name moved to the front still counts): the paraphrase judge's entity condition."""
    fa, wa = facts(a)
    fb, wb = facts(b)
    return fa <= wb and fb <= wa


# ------------------------------------------------------------------------ the typer
@dataclass
class _Pending:
    """A case waiting for the paraphrase judge."""

    text_idx: int
    cand_rank: int
    case_idx: int
    case: Case
    doc_id: str
    pairs: list[tuple[str, str]] = field(default_factory=list)


class Judge:
    """Paraphrase judge: sentence-embedding cosine (default) or an HF cross-encoder /
    sequence-classification model; scores are cached by sentence pair."""

    def __init__(self, name: str = "all-MiniLM-L6-v2", kind: str = "embedding",
                 device: str | None = None):
        self.name, self.kind = name, kind
        self._emb: dict[str, np.ndarray] = {}
        if kind == "embedding":
            from memlab.scoring.similarity import Embedder

            self.model = Embedder.shared(name, device)
        else:
            from sentence_transformers import CrossEncoder

            self.model = CrossEncoder(name, device=device)

    def vectors(self, sentences: Sequence[str]) -> np.ndarray:
        """Unit embeddings of sentences (cached), (n, dim): an embedding judge's model."""
        if self.kind != "embedding":
            raise ValueError("score.plagiarism.method=semantic needs an embedding judge "
                             "(judge_kind=embedding): it seeds and retrieves by its vectors")
        todo = sorted({s for s in sentences if s not in self._emb})
        if todo:
            for s, v in zip(todo, self.model.encode(todo)):
                self._emb[s] = v
        if not sentences:
            return np.asarray(self.model.encode([]), dtype=np.float32)
        return np.stack([self._emb[s] for s in sentences]).astype(np.float32)

    def scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        if not pairs:
            return []
        if self.kind != "embedding":
            out = self.model.predict(list(pairs), show_progress_bar=False)
            return [float(x) for x in np.asarray(out).reshape(len(pairs), -1)[:, -1]]
        todo = sorted({s for pair in pairs for s in pair if s not in self._emb})
        if todo:
            for s, v in zip(todo, self.model.encode(todo)):
                self._emb[s] = v
        return [float(self._emb[a] @ self._emb[b]) for a, b in pairs]


class CorpusIndex:
    """BM25 index + pre-processed corpus, built once per dataset, memory-mapped by readers."""

    VERSION = 1

    def __init__(self, folder: str | os.PathLike, p: PlagiarismSection):
        bm25s = _bm25s()

        folder = Path(folder)
        meta = json.loads((folder / "meta.json").read_text())
        self.p = p
        self.doc_ids: list[str] = meta["doc_ids"]
        self.texts: list[str] = json.loads((folder / "texts.json").read_text())
        self.vocab = Vocab(json.loads((folder / "stems.json").read_text()))
        z = {k: np.load(folder / f"{k}.npy", mmap_mode="r")
             for k in ("spans", "doc_ptr", "toks", "tok_ptr")}
        self.spans, self.doc_ptr, self.tok, self.tok_ptr = (
            z["spans"], z["doc_ptr"], z["toks"], z["tok_ptr"])
        self.bm25 = bm25s.BM25.load(str(folder / "bm25"), mmap=True, show_progress=False)
        self.stem = Stemmer()

    @staticmethod
    def build(doc_ids: list[str], texts: list[str], folder: str | os.PathLike,
              p: PlagiarismSection) -> Path:
        """Pre-process and index the corpus; written to `<folder>.tmp` then renamed."""
        import shutil

        bm25s = _bm25s()

        folder = Path(folder)
        if (folder / "meta.json").is_file():
            return folder
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        stem, vocab = Stemmer(), Vocab()
        spans, doc_ptr, toks, tok_ptr = [], [0], [], [0]
        for t in texts:
            sents = split_sentences(t, p.min_sentence_words, stem)
            for s, e, ws in sents:
                spans.append((s, e))
                toks.extend(vocab(w) for w in ws)
                tok_ptr.append(len(toks))
            doc_ptr.append(len(spans))
        np.save(tmp / "spans.npy", np.array(spans, dtype=np.int64).reshape(-1, 2))
        np.save(tmp / "doc_ptr.npy", np.array(doc_ptr, dtype=np.int64))
        np.save(tmp / "toks.npy", np.array(toks, dtype=np.int64))
        np.save(tmp / "tok_ptr.npy", np.array(tok_ptr, dtype=np.int64))
        (tmp / "stems.json").write_text(json.dumps(vocab.stems()))
        (tmp / "texts.json").write_text(json.dumps(texts))
        retriever = bm25s.BM25(k1=p.bm25_k1, b=p.bm25_b)
        retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False),
                        show_progress=False)
        retriever.save(str(tmp / "bm25"))
        (tmp / "meta.json").write_text(json.dumps({"version": CorpusIndex.VERSION,
                                                   "doc_ids": doc_ids}))
        os.replace(tmp, folder)
        return folder

    def doc(self, i: int) -> Prepared:
        s0, s1 = int(self.doc_ptr[i]), int(self.doc_ptr[i + 1])
        toks = [np.asarray(self.tok[self.tok_ptr[s]:self.tok_ptr[s + 1]]) for s in range(s0, s1)]
        return Prepared(self.texts[i], np.asarray(self.spans[s0:s1]), toks)

    def retrieve(self, texts: list[str]) -> list[list[int]]:
        bm25s = _bm25s()

        n = min(self.p.n_candidates, len(self.doc_ids))
        q = bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)
        docs, scores = self.bm25.retrieve(q, k=n, show_progress=False, n_threads=1,
                                          backend_selection="numpy")
        out = []
        for row_d, row_s in zip(docs, scores):
            order = sorted(range(len(row_d)), key=lambda r: (-float(row_s[r]), int(row_d[r])))
            out.append([int(row_d[r]) for r in order if row_s[r] > 0])
        return out


class SemanticIndex:
    """method=semantic's view of a corpus index: every corpus sentence's unit embedding
    (memory-mapped) and an approximate nearest-neighbour index (usearch's HNSW, built on one
    thread, so the same corpus gives the same graph) over each document's vector (the unit
    mean of its sentences'). Built once per corpus index and embedder, next to it; every
    worker memory-maps both (usearch's `view`)."""

    VERSION = 2  # 2: document vectors averaged in float64

    def __init__(self, folder: str | os.PathLike, index: CorpusIndex, breadth: int = 64):
        folder = Path(folder)
        self.index = index
        self.sent = np.load(folder / "sent.npy", mmap_mode="r")
        self.ann = ann.load(folder / "docs.usearch", breadth)

    @staticmethod
    def folder(index_folder: str | os.PathLike, embedder: str) -> Path:
        from memlab.config.digests import content_key

        return Path(index_folder) / f"semantic-{content_key([embedder, SemanticIndex.VERSION])}"

    @staticmethod
    def build(index: CorpusIndex, index_folder: str | os.PathLike, judge: Judge,
              threads: int = 1) -> Path:
        """Embed the corpus's sentences and index its documents (once, under a file lock;
        written to `<folder>.tmp`, then renamed). `threads` > 1 builds the graph faster but
        not reproducibly (memlab.scoring.ann)."""
        import shutil

        from filelock import FileLock

        folder = SemanticIndex.folder(index_folder, judge.name)
        with FileLock(str(folder) + ".lock"):
            if (folder / "docs.usearch").is_file():
                return folder
            tmp = folder.with_name(folder.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            spans, ptr = np.asarray(index.spans), np.asarray(index.doc_ptr)
            sents = [index.texts[d][s:e] for d in range(len(index.texts))
                     for s, e in spans[ptr[d]:ptr[d + 1]]]
            emb = np.asarray(judge.model.encode(sents), dtype=np.float32)
            np.save(tmp / "sent.npy", emb)
            ann.build(ann.unit_means(emb, ptr), tmp / "docs.usearch", threads)
            os.replace(tmp, folder)
        return folder

    def doc_sentences(self, i: int) -> np.ndarray:
        return np.asarray(self.sent[int(self.index.doc_ptr[i]):int(self.index.doc_ptr[i + 1])])

    def retrieve(self, queries: np.ndarray, k: int) -> list[list[int]]:
        """The k documents nearest to each query vector, nearest first."""
        return ann.search(self.ann, queries, k)


def semantic_idea(text: str, g: Prepared, d: Prepared, emb: np.ndarray,
                  p: PlagiarismSection):
    """method=semantic's idea rule (PLAGIARISM.md section 8): a short source (at most
    idea_max_sentences sentences) each of whose sentences has a generated sentence at cosine
    >= idea_cover (in any order), inside a generated passage (first to last sentence at cosine
    >= idea_related to the source) at least idea_ratio times the source's length, holding the
    source's facts. Returns (length ratio, generated span, source span) or None."""
    s = p.semantic
    k = emb.shape[1]
    if k == 0 or k > s.idea_max_sentences or emb.shape[0] == 0:
        return None
    if (emb.max(axis=0) < s.idea_cover).any():
        return None
    related = np.nonzero(emb.max(axis=1) >= min(s.idea_related, s.idea_cover))[0]
    g0, g1 = int(related.min()), int(related.max())  # (covering sentences are related)
    gspan = (int(g.spans[g0, 0]), int(g.spans[g1, 1]))
    dspan = (int(d.spans[0, 0]), int(d.spans[-1, 1]))
    ratio = (gspan[1] - gspan[0]) / max(1, dspan[1] - dspan[0])
    if ratio < s.idea_ratio:
        return None
    if s.idea_facts:  # (each source sentence's own facts: its first word is no name)
        words = facts(text[gspan[0]:gspan[1]])[1]
        if any(not facts(d.text[a:b])[0] <= words for a, b in d.spans):
            return None
    return ratio, gspan, dspan


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
                        if _norm(a) != _norm(b) and (not p.paraphrase_entities
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


def ensure_index(doc_ids: list[str], texts: list[str], folder: str | os.PathLike,
                 p: PlagiarismSection) -> Path:
    """Build the corpus index in `folder` once (under a file lock); return its path."""
    from filelock import FileLock

    folder = Path(folder)
    with FileLock(str(folder) + ".lock"):
        return CorpusIndex.build(doc_ids, texts, folder, p)


def dataset_index(data_dir: str | os.PathLike, p: PlagiarismSection) -> Path:
    """The index of a dataset's fine-tuning documents (members), next to its shards."""
    from memlab.io.shards import read_shards

    folder = Path(data_dir) / f"plagiarism-{index_key(p)}"
    if (folder / "meta.json").is_file():
        return folder
    rows = [r for r in read_shards(data_dir).to_pylist() if r["split"] == "member"]
    return ensure_index([r["doc_id"] for r in rows], [r["text"] for r in rows], folder, p)


# ------------------------------------------------------------------------ files in, file out
def read_table_file(path: str | os.PathLike, columns: tuple[str, ...]) -> list[dict]:
    """Rows of a JSONL or Parquet file (chosen by extension) holding `columns`."""
    from memlab.io.tables import read_rows

    rows = read_rows(path)
    for i, r in enumerate(rows):
        missing = [c for c in columns if c not in r]
        if missing:
            raise ValueError(f"{path}: row {i} has no column {missing[0]!r} "
                             f"(needs {', '.join(columns)})")
    return rows


def write_table_file(rows: list[dict], path: str | os.PathLike) -> None:
    import pyarrow as pa

    from memlab.io.shards import PLAGIARISM_SCHEMA, write_shard

    path = Path(path)
    if path.suffix == ".parquet":
        write_shard(pa.Table.from_pylist(rows, schema=PLAGIARISM_SCHEMA), path, PLAGIARISM_SCHEMA)
    elif path.suffix in (".jsonl", ".json"):
        tmp = path.with_name(path.name + ".tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        os.replace(tmp, path)
    else:
        raise ValueError(f"{path}: expected a .jsonl or .parquet output")


def type_file(corpus: str, generated: str, out: str, p: PlagiarismSection,
              batch: int = 64) -> dict:
    """`memlab plagiarism`: the same code as the pipeline stage, on files."""
    from memlab.config.digests import content_key, file_sha256
    from memlab.io.progress import Progress

    docs = read_table_file(corpus, ("doc_id", "text"))
    gens = read_table_file(generated, ("id", "text"))
    cpath = Path(corpus)
    folder = cpath.with_name(f"{cpath.name}.index-"
                             f"{content_key([index_key(p), file_sha256(cpath)])}")
    index = CorpusIndex(ensure_index([str(d["doc_id"]) for d in docs],
                                     [str(d["text"]) for d in docs], folder, p), p)
    judge = Judge(p.judge, p.judge_kind)
    semantic = SemanticIndex(SemanticIndex.build(index, folder, judge), index,
                             p.semantic.dense_breadth) if p.method == "semantic" else None
    rows: list[dict] = []
    bar = Progress(len(gens), "plagiarism", unit="text", every_s=5)
    for i in range(0, len(gens), batch):
        chunk = gens[i:i + batch]
        for g, r in zip(chunk, type_texts([str(g["text"]) for g in chunk], index, judge,
                                          semantic)):
            rows.append({"id": str(g["id"]), **r})
        bar.update(len(chunk))
    write_table_file(rows, out)
    counts = {lab: sum(r["label"] == lab for r in rows) for lab in LABELS}
    return {"texts": len(rows), **counts}


# ------------------------------------------------------------------------ the registered scorer
class PlagiarismScorer:
    """Plagiarism typing of each generation against the fine-tuning corpus (members)."""

    def __init__(self, ctx: Context):
        sec = ctx.cfg.score.plagiarism
        self.index = CorpusIndex(ctx.prepared["index"], sec)
        self.judge = Judge(sec.judge, sec.judge_kind)
        self.semantic = SemanticIndex(ctx.prepared["semantic"], self.index,
                                      sec.semantic.dense_breadth) \
            if sec.method == "semantic" else None

    def __call__(self, rows: list[dict]) -> dict[str, list]:
        typed = type_texts([r["gen_text"] for r in rows], self.index, self.judge,
                           self.semantic)
        return {f"plag_{k}": [t[k] for t in typed]
                for k in ("label", "doc_id", "gen_span", "doc_span", "score")}


def _prepare(cfg: StudyConfig, data_dir: Path) -> dict:
    p = cfg.score.plagiarism
    index = dataset_index(data_dir, p)
    if p.method != "semantic":
        return {"index": str(index)}
    return {"index": str(index), "semantic": str(SemanticIndex.build(
        CorpusIndex(index, p), index, Judge(p.judge, p.judge_kind)))}


register(Scorer(
    "plagiarism",
    (Column("plag_label", pa.string(),  # verbatim | paraphrase | idea | none
            label_percents(LABELS[:3], "none", "plagiarism_any_pct"),
            lambda sec: {"verbatim_pct": "verbatim_%", "paraphrase_pct": "paraphrase_%",
                         "idea_pct": "idea_%", "plagiarism_any_pct": "any_%"},
            table="plagiarism"),
     Column("plag_doc_id", pa.string()),
     Column("plag_gen_span", pa.list_(pa.int32())),
     Column("plag_doc_span", pa.list_(pa.int32())),
     Column("plag_score", pa.float64())),
    load=PlagiarismScorer, prepare=_prepare, enabled=lambda sec: sec.plagiarism.enabled,
))
