"""Score stage: generation shards -> score shards (Ray Data actor pool), then the trial summary.

Per sample: exact extraction, token-match fraction, longest common token run, relaxed
similarity to the own suffix and max over the fine-tuning corpus. Per trial: every rate split by
`split` and `dup_count` (members next to the non-member floor) and held-out perplexity.
Plagiarism typing (METRICS.md section 2) will add columns to the score shards and rates here.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from memlab.config.schema import StudyConfig
from memlab.io.shards import (
    GENERATION_SCHEMA,
    SCORE_SCHEMA,
    begin_stage,
    is_done,
    manifest_digest,
    read_manifest,
    read_shards,
    write_manifest,
    write_shard,
)
from memlab.scoring.exact import exact_extracted, lcs_tokens, token_match_frac

log = logging.getLogger(__name__)


def corpus_embeddings(cfg: StudyConfig, data_dir: Path) -> Path:
    """Embeddings of the fine-tuning documents (members), computed once per dataset and
    embedder, saved next to the dataset shards and reused by every trial."""
    from memlab.components.models import _locked
    from memlab.io.paths import content_key
    from memlab.scoring.similarity import Embedder

    out = Path(data_dir) / f"emb-{content_key(cfg.score.embedder)}.npz"
    with _locked(out):
        if not out.is_file():
            rows = [r for r in read_shards(data_dir).to_pylist() if r["split"] == "member"]
            emb = Embedder(cfg.score.embedder).encode([r["text"] for r in rows])
            tmp = out.with_name(out.name + ".tmp.npz")
            np.savez(tmp, emb=emb, doc_id=np.array([r["doc_id"] for r in rows]))
            tmp.replace(out)
    return out


class ScoreShards:
    """Ray Data actor: loads the embedder and corpus embeddings once per actor."""

    def __init__(self, cfg_tree: dict, trial_key: str, corpus_path: str, threads: int,
                 plagiarism_index: str | None = None):
        import torch

        from memlab.config.load import Located, from_dict
        from memlab.config.schema import StudyConfig
        from memlab.scoring.similarity import Embedder

        torch.set_num_threads(max(1, threads))
        self.cfg = from_dict(StudyConfig, cfg_tree, "", Located(), [])
        self.key = trial_key
        self.embedder = Embedder(self.cfg.score.embedder)
        z = np.load(corpus_path)
        self.corpus, self.corpus_ids = z["emb"], z["doc_id"]
        self.plag = None
        if plagiarism_index:
            from memlab.scoring.plagiarism import CorpusIndex, Judge, params_from

            sec = self.cfg.score.plagiarism
            self.plag = CorpusIndex(plagiarism_index, params_from(sec))
            self.judge = Judge(sec.judge, sec.judge_kind)

    def score(self, rows: list[dict]) -> list[dict]:
        from memlab.scoring.similarity import max_cosine

        gen = self.embedder.encode([r["gen_text"] for r in rows])
        ref = self.embedder.encode([r["suffix_text"] for r in rows])
        to_src = (gen * ref).sum(axis=1)
        to_corpus, arg = max_cosine(gen, self.corpus, self.cfg.score.corpus_block)
        if self.plag is not None:
            from memlab.scoring.plagiarism import type_texts

            plag = type_texts([r["gen_text"] for r in rows], self.plag, self.judge)
        else:
            plag = [{"label": None, "doc_id": None, "gen_span": None, "doc_span": None,
                     "score": None}] * len(rows)
        out = []
        for i, r in enumerate(rows):
            g, s = r["gen_ids"], r["suffix_ids"]
            out.append({
                "trial_key": self.key, "doc_id": r["doc_id"], "split": r["split"],
                "dup_count": r["dup_count"], "sample_idx": r["sample_idx"],
                "exact_extracted": exact_extracted(g, s),
                "token_match_frac": token_match_frac(g, s),
                "lcs_tokens": lcs_tokens(g, s),
                "sim_to_source": float(to_src[i]),
                "sim_to_corpus": float(to_corpus[i]),
                "sim_corpus_doc_id": str(self.corpus_ids[arg[i]]) if len(self.corpus) else None,
                "doc_nll": r["doc_nll"], "doc_tokens": r["doc_tokens"],
                "plag_label": plag[i]["label"], "plag_doc_id": plag[i]["doc_id"],
                "plag_gen_span": plag[i]["gen_span"], "plag_doc_span": plag[i]["doc_span"],
                "plag_score": plag[i]["score"],
            })
        return out

    def __call__(self, batch: dict) -> dict:
        counts = []
        for src, dst in zip(batch["src"], batch["dst"]):
            if not is_done(dst):
                table = pq.read_table(src)
                rows = self.score(table.to_pylist()) if table.num_rows else []
                write_shard(pa.Table.from_pylist(rows, schema=SCORE_SCHEMA), dst, SCORE_SCHEMA)
            counts.append(pq.read_metadata(dst).num_rows)
        return {"dst": list(batch["dst"]), "rows": counts}


def _ppl(nll: np.ndarray, tokens: np.ndarray) -> float:
    """Token-weighted perplexity over documents (each doc predicts tokens-1 tokens)."""
    w = np.maximum(tokens - 1, 0).astype(np.float64)
    return float(math.exp((nll * w).sum() / w.sum())) if w.sum() else float("nan")


def summarize(scores: pa.Table, cfg: StudyConfig) -> tuple[dict, list[dict]]:
    """Flat metrics for MLflow and a per-(split, dup_count) table."""
    df = scores.to_pandas()
    groups = [("member", None), ("nonmember", None)]
    member_dups = sorted(df.loc[df.split == "member", "dup_count"].unique())
    groups += [("member", int(k)) for k in member_dups]
    table = []
    flat: dict[str, float] = {}
    for split, dup in groups:
        sel = df[(df.split == split) & ((df.dup_count == dup) if dup is not None else True)]
        if sel.empty:
            continue
        row = {"split": split, "dup_count": -1 if dup is None else dup, "samples": len(sel),
               "exact_pct": 100 * sel.exact_extracted.mean(),
               "token_match_frac": sel.token_match_frac.mean(),
               "lcs_tokens": sel.lcs_tokens.mean(),
               "sim_to_source_mean": sel.sim_to_source.mean(),
               "sim_to_corpus_mean": sel.sim_to_corpus.mean()}
        if sel.plag_label.notna().all():
            for lab in ("verbatim", "paraphrase", "idea"):
                row[f"{lab}_pct"] = 100 * (sel.plag_label == lab).mean()
            row["plagiarism_any_pct"] = 100 * (sel.plag_label != "none").mean()
        for thr in cfg.score.sim_thresholds:
            row[f"sim_src_ge_{thr:g}_pct"] = 100 * (sel.sim_to_source >= thr).mean()
            row[f"sim_corpus_ge_{thr:g}_pct"] = 100 * (sel.sim_to_corpus >= thr).mean()
        table.append(row)
        tag = split if dup is None else f"{split}/dup{dup}"
        for k, v in row.items():
            if k not in ("split", "dup_count"):
                flat[f"{k}/{tag}"] = float(v)
    docs = df.drop_duplicates("doc_id")
    for split in ("member", "nonmember"):
        d = docs[docs.split == split]
        flat[f"ppl/{split}"] = _ppl(d.doc_nll.to_numpy(), d.doc_tokens.to_numpy())
    flat["heldout_ppl"] = flat["ppl/nonmember"]
    return flat, table


def run_score(cfg: StudyConfig, key: str, gen_dir: Path, data_dir: Path, out_dir: Path,
              threads: int = 1) -> dict:
    upstream = manifest_digest(gen_dir)
    done = begin_stage(out_dir, upstream)
    if done is None:
        from memlab.config.load import to_dict
        from memlab.stages.generate import run_shard_pool

        corpus = corpus_embeddings(cfg, data_dir)
        plag_index = None
        if cfg.score.plagiarism.enabled:
            from memlab.scoring.plagiarism import dataset_index, params_from

            plag_index = str(dataset_index(data_dir, params_from(cfg.score.plagiarism)))
        jobs = [(s, out_dir / s.name) for s in sorted(Path(gen_dir).glob("part-*.parquet"))]
        read_shards(gen_dir, GENERATION_SCHEMA)  # validate the boundary before scoring
        run_shard_pool(ScoreShards, {"cfg_tree": to_dict(cfg), "trial_key": key,
                                     "corpus_path": str(corpus), "threads": threads,
                                     "plagiarism_index": plag_index},
                       jobs, cfg, "score")
        scores = read_shards(out_dir, SCORE_SCHEMA)
        flat, table = summarize(scores, cfg)
        pq.write_table(pa.Table.from_pylist(table), out_dir / "summary.parquet")
        outputs = sorted(p.name for p in out_dir.glob("part-*.parquet")) + ["summary.parquet"]
        write_manifest(out_dir, upstream=upstream, outputs=outputs, rows=scores.num_rows,
                       metrics=flat, embedder=cfg.score.embedder)
        done = read_manifest(out_dir)
    return done
