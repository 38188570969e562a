"""Approximate nearest neighbours over unit vectors (usearch's HNSW, cosine), shared by
method=semantic's dense candidates (PLAGIARISM.md section 8) and `sim_to_corpus` past
`score.corpus_ann_above` passages of the fine-tuning documents (METRICS.md section 3).

An index is built once per dataset and embedder, written to `<path>.tmp` and renamed, and
memory-mapped by every reader (`view`). Built on one thread by default, so one corpus always
gives one graph (usearch inserts concurrently otherwise, and the graph then depends on the
thread schedule)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def build(vectors: np.ndarray, path: str | os.PathLike, threads: int = 1) -> Path:
    """An HNSW index over the rows of `vectors` (keys = row numbers), saved at `path`."""
    from usearch.index import Index

    path = Path(path)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    ann = Index(ndim=vectors.shape[1], metric="cos", dtype="f32")
    if len(vectors):
        ann.add(np.arange(len(vectors), dtype=np.uint64), vectors, threads=threads)
    tmp = path.with_name(path.name + ".tmp")
    ann.save(str(tmp))
    os.replace(tmp, path)
    return path


def load(path: str | os.PathLike, breadth: int = 64):
    """The index at `path`, memory-mapped; searched `breadth` wide (usearch's
    expansion_search: score.corpus_ann_breadth, score.plagiarism.semantic.dense_breadth)."""
    from usearch.index import Index

    index = Index.restore(str(path), view=True)
    index.expansion_search = breadth
    return index


def search(ann, queries: np.ndarray, k: int) -> list[list[int]]:
    """The (at most) k rows nearest each query, nearest first."""
    n = min(k, len(ann))
    if n == 0 or len(queries) == 0:
        return [[] for _ in queries]
    found = ann.search(np.ascontiguousarray(queries, dtype=np.float32), n, threads=1)
    keys = np.atleast_2d(found.keys)  # (one query gives usearch's single Matches)
    counts = np.atleast_1d(getattr(found, "counts", len(found.keys)))
    return [[int(x) for x in row[:c]] for row, c in zip(keys, counts)]


def unit_means(vectors: np.ndarray, ptr: np.ndarray) -> np.ndarray:
    """Row i: the unit-length mean of vectors[ptr[i]:ptr[i+1]] (zeros for an empty group)."""
    ptr = np.asarray(ptr, dtype=np.int64)
    n, dim = len(ptr) - 1, vectors.shape[1]
    out = np.zeros((n, dim), dtype=np.float64)
    sizes = np.diff(ptr)
    nonempty = np.nonzero(sizes > 0)[0]
    if len(nonempty):
        out[nonempty] = np.add.reduceat(np.asarray(vectors, dtype=np.float64),
                                        ptr[nonempty], axis=0) / sizes[nonempty, None]
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norm, out=out, where=norm > 0)
    return out.astype(np.float32)
