"""Score stage: generation shards -> score shards (Ray Data actor pool), then the summary.

Every registered scorer (memlab/scoring/registry.py: exact extraction, relaxed similarity,
plagiarism typing, membership signals, utility, and the study's plugins) adds its columns to
each score shard, whose rows are the generation's samples (`sample_id`) with the base model's
NLL of the document joined in: one row holds every score of a sample. The aggregations give
the summary, one row per (split, dup_count, metric): every rate split by duplication level,
members next to the non-member floor, membership AUC / TPR of each member group against the
non-members; the canaries' exposure per repeat count (split "canary"). The summary
(SUMMARY_SCHEMA) is what MLflow and the report read.
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
    CANARY_SCHEMA,
    GENERATION_SCHEMA,
    SCORE_KEY_SCHEMA,
    SUMMARY_SCHEMA,
    StageOutput,
    claim_stage,
    is_done,
    manifest_digest,
    read_manifest,
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
    """Ray Data actor: loads every enabled scorer once (models, indexes), then scores shards.
    (A warm actor keeps one per score section and dataset and serves every trial with it:
    memlab/stages/warm.py.)"""

    def __init__(self, cfg: StudyConfig, trial_key: str, prepared: dict, base: dict,
                 threads: int):
        import torch

        torch.set_num_threads(max(1, threads))
        t0 = time.perf_counter()
        self.cfg, self.key, self.base = cfg, trial_key, base
        self.scorers = [(s, s.load(Context(cfg, prepared.get(s.name, {})))
                         if s.enabled(cfg.score) else None) for s in suite.scorers(cfg.score)]
        cols = [(c.name, c.type) for s, _ in self.scorers for c in s.columns]
        self.schema = score_schema(cols)
        log.info("score actor ready in %.1f s", time.perf_counter() - t0)

    def score(self, rows: list[dict], trial_key: str | None = None,
              base: dict | None = None) -> pa.Table:
        """Score shard rows of generation rows (trial_key, base: this actor's unless given)."""
        key, base = trial_key or self.key, self.base if base is None else base
        if not rows:
            return self.schema.empty_table()
        for r in rows:  # the base model's NLL of the document: one row holds every score
            r["base_nll"] = base.get(r["doc_id"])
        out = {"trial_key": [key] * len(rows)}
        out.update({n: [r[n] for r in rows] for n in SCORE_KEY_SCHEMA.names[1:]})
        for s, fn in self.scorers:
            cols = fn(rows) if fn is not None else {}
            for c in s.columns:  # a disabled scorer's columns are null
                out[c.name] = cols[c.name] if fn is not None else [None] * len(rows)
        return pa.Table.from_pydict(out, schema=self.schema)

    def shard(self, src: str, dst: str, trial_key: str | None = None,
              base: dict | None = None) -> int:
        """One generation shard -> its score shard, unless done; its rows."""
        if not is_done(dst):
            rows = pq.read_table(src).to_pylist()
            write_shard(self.score(rows, trial_key, base), dst, self.schema)
        return pq.read_metadata(dst).num_rows

    def __call__(self, batch: dict) -> dict:
        return {"dst": list(batch["dst"]),
                "rows": [self.shard(s, d) for s, d in zip(batch["src"], batch["dst"])]}


def _ppl(nll: np.ndarray, tokens: np.ndarray) -> float:
    """Token-weighted perplexity over documents (each doc predicts tokens-1 tokens)."""
    w = np.maximum(tokens - 1, 0).astype(np.float64)
    return float(math.exp((nll * w).sum() / w.sum())) if w.sum() else float("nan")


def summarize(scores: pa.Table, cfg: StudyConfig, canaries: pa.Table | None = None) -> pa.Table:
    """Per (split, dup_count) group (dup_count -1: the whole split): sample count, every
    registered column's aggregations; per member group, every contrast (membership signals
    against all non-members, one value per document); the split's perplexity under the
    fine-tuned and the base model; per canary repeat count, the canaries' exposure."""
    df = scores.to_pandas()
    groups = [("member", -1, df.split == "member"), ("nonmember", -1, df.split == "nonmember")]
    groups += [("member", int(k), (df.split == "member") & (df.dup_count == k))
               for k in sorted(df.loc[df.split == "member", "dup_count"].unique())]
    rows: list[dict] = []
    columns = suite.columns(cfg.score)
    nonmember_docs = df[df.split == "nonmember"].drop_duplicates("doc_id")
    for split, dup, where in groups:
        sel = df[where]
        if sel.empty:
            continue
        found = {"samples": float(len(sel))}
        docs = sel.drop_duplicates("doc_id")
        for c in columns:
            if c.aggregate is not None and sel[c.name].notna().any():  # (over its values)
                found.update(c.aggregate(sel[c.name].dropna(), cfg.score))
            if c.contrast is not None and split == "member" and docs[c.name].notna().any():
                found.update(c.contrast(docs[c.name], nonmember_docs[c.name], cfg.score))
        if dup == -1:
            found["ppl"] = _ppl(docs.doc_nll.to_numpy(), docs.doc_tokens.to_numpy())
            if docs.base_nll.notna().all():
                found["base_ppl"] = _ppl(docs.base_nll.to_numpy(), docs.doc_tokens.to_numpy())
        rows += [{"split": split, "dup_count": dup, "metric": m, "value": float(v)}
                 for m, v in found.items()]
    if canaries is not None and canaries.num_rows:
        c = canaries.to_pandas()
        for r, g in c.groupby("repeats"):
            found = {"exposure": g.exposure.mean(), "exposure_min": g.exposure.min(),
                     "exposure_max": g.exposure.max(), "canaries": len(g),
                     "exposure_cap": float(np.log2(g.alternatives.max() + 1)),
                     "space_bits": g.space_bits.max()}
            rows += [{"split": "canary", "dup_count": int(r), "metric": m, "value": float(v)}
                     for m, v in found.items()]
    return pa.Table.from_pylist(rows, schema=SUMMARY_SCHEMA)


def flat_metrics(summary: pa.Table) -> dict[str, float]:
    """The summary as MLflow metric names: `<metric>/<split>`, `<metric>/member_dup<k>` and
    `<metric>/canary_x<repeats>`
    (no name is a path prefix of another, so every MLflow store takes them), and
    `heldout_ppl` (the non-members' perplexity)."""
    out = {}
    for r in summary.to_pylist():
        group = r["split"] if r["dup_count"] < 0 else f"{r['split']}_dup{r['dup_count']}" \
            if r["split"] != "canary" else f"canary_x{r['dup_count']}"
        out[f"{r['metric']}/{group}"] = r["value"]
    out["heldout_ppl"] = out.get("ppl/nonmember", float("nan"))
    return out


def score_upstream(cfg: StudyConfig, gen_dir: Path, base_dir: Path | None = None) -> str:
    """What a finished score stage was built from: the generations, the base model's pass (if
    any) and the set of scorer columns (score shards made by another set, e.g. before a new
    built-in scorer, are stale)."""
    return content_key({"gen": manifest_digest(gen_dir), "scorers": suite.fingerprint(cfg.score),
                        **({"base": manifest_digest(base_dir)} if base_dir else {})})


def read_canaries(gen_dir: Path) -> pa.Table | None:
    """The exposure of every canary (CANARY_SCHEMA) from a generation stage, if it has any."""
    files = sorted(Path(gen_dir).glob("canary-*.parquet"))
    if not files:
        return None
    table = pa.concat_tables([pq.read_table(f) for f in files])
    validate_table(table, CANARY_SCHEMA, str(gen_dir))
    return table


def run_score(cfg: StudyConfig, trial_key: str, gen_dir: Path, data_dir: Path, out_dir: Path,
              threads: int = 1, base_dir: Path | None = None, pool=None) -> StageOutput:
    """Score every generation shard, then summarize. `base_dir`: the base model's pass over
    the dataset (memlab/stages/base.py; None: no `ref` signal and no base perplexity).
    `pool`: warm actors to score on (memlab/stages/warm.py), else Ray Data actors of this
    trial's own."""
    from memlab.stages.base import base_nll
    from memlab.stages.pool import run_shard_pool, shard_jobs

    upstream = score_upstream(cfg, gen_dir, base_dir)
    with claim_stage(out_dir, upstream) as stage:
        if stage.done is None:
            read_shards(gen_dir, GENERATION_SCHEMA)  # validate the boundary before scoring
            prepared = {s.name: s.prepare(cfg, Path(data_dir))
                        for s in suite.scorers(cfg.score)
                        if s.prepare is not None and s.enabled(cfg.score)}
            jobs, nodes = shard_jobs(gen_dir, out_dir), set()
            if pool is not None:
                import ray

                pool.map("score", jobs, "score", cfg, trial_key, prepared,
                         ray.put(base_nll(base_dir)), nodes=nodes)
            else:
                run_shard_pool(ScoreShards, {"cfg": cfg, "trial_key": trial_key,
                                             "prepared": prepared, "base": base_nll(base_dir),
                                             "threads": threads},
                               jobs, cfg, "score", nodes)
            scores = read_shards(out_dir)
            canaries = read_canaries(gen_dir)
            want = (read_manifest(data_dir) or {}).get("canaries", 0)
            got = canaries.num_rows if canaries is not None else 0
            if got != want:  # (run_generate redoes a canary shard whose exposure file is lost)
                raise RuntimeError(f"{gen_dir}: exposure of {got} canaries, the dataset has "
                                   f"{want}: rerun to regenerate them")
            summary = summarize(scores, cfg, canaries)
            pq.write_table(summary, out_dir / "summary.parquet")
            outputs = sorted(p.name for p in out_dir.glob("part-*.parquet")) + ["summary.parquet"]
            write_manifest(out_dir, upstream=upstream, outputs=outputs, rows=scores.num_rows,
                           columns=scores.schema.names, embedder=cfg.score.embedder,
                           actor_nodes=sorted(nodes))
        return stage.output()
