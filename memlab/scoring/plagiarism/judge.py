"""The paraphrase judge (PLAGIARISM.md section 6), and method=semantic's sentence embedder:
one model per process, its scores cached by sentence, so a batch of texts makes one call."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
