"""Score stage: generation shards -> score shards (Ray Data actor pool), then the summary.

Every registered scorer (memlab/scoring/registry.py: exact extraction, relaxed similarity,
plagiarism typing, and the study's plugins) adds its columns to each score shard; its
aggregations give the summary, one row per (split, dup_count, metric): every rate split by
duplication level, members next to the non-member floor. The summary (SUMMARY_SCHEMA) is what
MLflow and the report read.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from memlab.config.keys import content_key
from memlab.config.schema import StudyConfig
from memlab.io.shards import (
    GENERATION_SCHEMA,
    SCORE_KEY_SCHEMA,
    SUMMARY_SCHEMA,
    StageOutput,
    claim_stage,
    is_done,
    manifest_digest,
    read_shards,
    score_schema,
    validate_table,
    write_manifest,
    write_shard,
)
from memlab.scoring import suite
from memlab.scoring.registry import Context

log = logging.getLogger(__name__)


class ScoreShards:
    """Ray Data actor: loads every enabled scorer once (models, indexes), then scores shards."""

    def __init__(self, cfg: StudyConfig, trial_key: str, prepared: dict, threads: int):
        import torch

        torch.set_num_threads(max(1, threads))
        t0 = time.perf_counter()
        self.cfg, self.key = cfg, trial_key
        self.scorers = [(s, s.load(Context(cfg, prepared.get(s.name, {})))
                         if s.enabled(cfg.score) else None) for s in suite.scorers(cfg.score)]
        cols = [(c.name, c.type) for s, _ in self.scorers for c in s.columns]
        self.schema = score_schema(cols)
        log.info("score actor ready in %.1f s", time.perf_counter() - t0)

    def score(self, rows: list[dict]) -> pa.Table:
        if not rows:
            return self.schema.empty_table()
        out = {"trial_key": [self.key] * len(rows)}
        out.update({n: [r[n] for r in rows] for n in SCORE_KEY_SCHEMA.names[1:]})
        for s, fn in self.scorers:
            cols = fn(rows) if fn is not None else {}
            for c in s.columns:  # a disabled scorer's columns are null
                out[c.name] = cols[c.name] if fn is not None else [None] * len(rows)
        return pa.Table.from_pydict(out, schema=self.schema)

    def __call__(self, batch: dict) -> dict:
        counts = []
        for src, dst in zip(batch["src"], batch["dst"]):
            if not is_done(dst):
                rows = pq.read_table(src).to_pylist()
                write_shard(self.score(rows), dst, self.schema)
            counts.append(pq.read_metadata(dst).num_rows)
        return {"dst": list(batch["dst"]), "rows": counts}


def _ppl(nll: np.ndarray, tokens: np.ndarray) -> float:
    """Token-weighted perplexity over documents (each doc predicts tokens-1 tokens)."""
    w = np.maximum(tokens - 1, 0).astype(np.float64)
    return float(math.exp((nll * w).sum() / w.sum())) if w.sum() else float("nan")


def summarize(scores: pa.Table, cfg: StudyConfig) -> pa.Table:
    """Per (split, dup_count) group (dup_count -1: the whole split): sample count, every
    registered column's aggregations, and the split's perplexity."""
    df = scores.to_pandas()
    groups = [("member", -1, df.split == "member"), ("nonmember", -1, df.split == "nonmember")]
    groups += [("member", int(k), (df.split == "member") & (df.dup_count == k))
               for k in sorted(df.loc[df.split == "member", "dup_count"].unique())]
    rows: list[dict] = []
    columns = suite.columns(cfg.score)
    for split, dup, where in groups:
        sel = df[where]
        if sel.empty:
            continue
        found = {"samples": float(len(sel))}
        for c in columns:
            if c.aggregate is not None and sel[c.name].notna().all():
                found.update(c.aggregate(sel[c.name], cfg.score))
        if dup == -1:
            docs = sel.drop_duplicates("doc_id")
            found["ppl"] = _ppl(docs.doc_nll.to_numpy(), docs.doc_tokens.to_numpy())
        rows += [{"split": split, "dup_count": dup, "metric": m, "value": float(v)}
                 for m, v in found.items()]
    return pa.Table.from_pylist(rows, schema=SUMMARY_SCHEMA)


def flat_metrics(summary: pa.Table) -> dict[str, float]:
    """The summary as MLflow metric names: `<metric>/<split>` and `<metric>/member_dup<k>`
    (no name is a path prefix of another, so every MLflow store takes them), and
    `heldout_ppl` (the non-members' perplexity)."""
    out = {}
    for r in summary.to_pylist():
        group = r["split"] if r["dup_count"] < 0 else f"{r['split']}_dup{r['dup_count']}"
        out[f"{r['metric']}/{group}"] = r["value"]
    out["heldout_ppl"] = out.get("ppl/nonmember", float("nan"))
    return out


def read_summary(score_dir: Path) -> pa.Table:
    table = pq.read_table(Path(score_dir) / "summary.parquet")
    validate_table(table, SUMMARY_SCHEMA, str(score_dir))
    return table


def score_upstream(cfg: StudyConfig, gen_dir: Path) -> str:
    """What a finished score stage was built from: the generations and the set of scorer
    columns (score shards made by another set, e.g. before a new built-in scorer, are stale)."""
    return content_key({"gen": manifest_digest(gen_dir), "scorers": suite.fingerprint(cfg.score)})


def run_score(cfg: StudyConfig, trial_key: str, gen_dir: Path, data_dir: Path, out_dir: Path,
              threads: int = 1) -> StageOutput:
    from memlab.stages.pool import run_shard_pool

    upstream = score_upstream(cfg, gen_dir)
    with claim_stage(out_dir, upstream) as stage:
        if stage.done is None:
            read_shards(gen_dir, GENERATION_SCHEMA)  # validate the boundary before scoring
            prepared = {s.name: s.prepare(cfg, Path(data_dir))
                        for s in suite.scorers(cfg.score)
                        if s.prepare is not None and s.enabled(cfg.score)}
            jobs = [(s, out_dir / s.name) for s in sorted(Path(gen_dir).glob("part-*.parquet"))]
            run_shard_pool(ScoreShards, {"cfg": cfg, "trial_key": trial_key,
                                         "prepared": prepared, "threads": threads},
                           jobs, cfg, "score")
            scores = read_shards(out_dir)
            summary = summarize(scores, cfg)
            pq.write_table(summary, out_dir / "summary.parquet")
            outputs = sorted(p.name for p in out_dir.glob("part-*.parquet")) + ["summary.parquet"]
            write_manifest(out_dir, upstream=upstream, outputs=outputs, rows=scores.num_rows,
                           columns=scores.schema.names, embedder=cfg.score.embedder)
        return stage.output()
