"""The corpus side of plagiarism typing: each dataset's documents pre-processed once
(sentences, spans, stem ids) and saved with their BM25 index next to the dataset's shards
(CorpusIndex); method=semantic adds every corpus sentence's embedding and a nearest-neighbour
index of the documents (SemanticIndex). Workers memory-map both, loading them once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from memlab.config.schema import PlagiarismSection
from memlab.scoring import ann
from memlab.scoring.plagiarism.judge import Judge
from memlab.scoring.plagiarism.text import Prepared, Stemmer, Vocab, split_sentences


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


def ensure_index(doc_ids: list[str], texts: list[str], folder: str | os.PathLike,
                 p: PlagiarismSection) -> Path:
    """Build the corpus index in `folder` once (under a file lock); return its path."""
    from filelock import FileLock

    folder = Path(folder)
    with FileLock(str(folder) + ".lock"):
        return CorpusIndex.build(doc_ids, texts, folder, p)


def index_key(p: PlagiarismSection) -> str:
    """What the saved corpus index depends on."""
    return f"k1={p.bm25_k1:g}-b={p.bm25_b:g}-msw={p.min_sentence_words}-v{CorpusIndex.VERSION}"


def dataset_index(data_dir: str | os.PathLike, p: PlagiarismSection) -> Path:
    """The index of a dataset's fine-tuning documents (members), next to its shards."""
    from memlab.io.shards import read_shards

    folder = Path(data_dir) / f"plagiarism-{index_key(p)}"
    if (folder / "meta.json").is_file():
        return folder
    rows = [r for r in read_shards(data_dir).to_pylist() if r["split"] == "member"]
    return ensure_index([r["doc_id"] for r in rows], [r["text"] for r in rows], folder, p)
