"""Score stage: generation shards -> score shards (on actors: memlab/stages/runner.py), then
the summary.

Every registered scorer (memlab/scoring/registry.py: exact extraction, relaxed similarity,
plagiarism typing, membership signals, utility, and the study's plugins) adds its columns to
each score shard, whose rows are the generation's samples (`sample_id`) with the base model's
NLL of the document joined in (and what the calibrated membership signals read of the trial:
`calibration_inputs`): one row holds every score of a sample. The aggregations give
the summary, one row per (split, dup_count, metric): every rate split by duplication level,
members next to the non-member floor, membership AUC / TPR of each member group against the
non-members; the canaries' exposure per repeat count (split "canary"); with sample-and-rank
(attack.rank) its precision at k (memlab/scoring/rank.py; rows in rank.parquet). The summary
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

from memlab.config.digests import content_key
from memlab.config.schema import StudyConfig
from memlab.io.shards import (
    BASE_SCHEMA,
    GENERATION_SCHEMA,
    SCORE_KEY_SCHEMA,
    SUMMARY_SCHEMA,
    is_done,
    read_canaries,
    read_manifest,
    read_shards,
    score_schema,
    validate_table,
    write_shard,
)
from memlab.scoring import rank, suite
from memlab.scoring.registry import Context
from memlab.stages.work import Shards, TrialContext, Work

log = logging.getLogger(__name__)


class Scorers:
    """Every enabled scorer of a score section, loaded once (models, indexes): what a scoring
    actor holds (a warm actor keeps one per score section and dataset and serves every trial
    with it)."""

    def __init__(self, cfg: StudyConfig, prepared: dict, threads: int):
        import torch

        torch.set_num_threads(max(1, threads))
        t0 = time.perf_counter()
        self.scorers = [(s, s.load(Context(cfg, prepared.get(s.name, {})))
                         if s.enabled(cfg.score) else None) for s in suite.scorers(cfg.score)]
        cols = [(c.name, c.type) for s, _ in self.scorers for c in s.columns]
        self.schema = score_schema(cols)
        log.info("score actor ready in %.1f s", time.perf_counter() - t0)

    def score(self, rows: list[dict], trial_key: str, base: dict,
              calibration: dict | None = None) -> pa.Table:
        """Score shard rows of generation rows: the trial's key, the base model's NLL of each
        document (`base`: doc_id -> NLL), every scorer's columns. `calibration`: what the
        calibrated membership signals read (`calibration_inputs`)."""
        if not rows:
            return self.schema.empty_table()
        cal = calibration or {}
        prefixed = cal.get("prefixed", {})
        for r in rows:  # the base model's NLL of the document: one row holds every score
            r["base_nll"] = base.get(r["doc_id"])  # (and every input of one:)
            r["prefixed_nll"] = prefixed.get(r["doc_id"])
            r["population"], r["token_freq"] = cal.get("population"), cal.get("token_freq")
        out = {"trial_key": [trial_key] * len(rows)}
        out.update({n: [r[n] for r in rows] for n in SCORE_KEY_SCHEMA.names[1:]})
        for s, fn in self.scorers:
            cols = fn(rows) if fn is not None else {}
            for c in s.columns:  # a disabled scorer's columns are null
                out[c.name] = cols[c.name] if fn is not None else [None] * len(rows)
        return pa.Table.from_pydict(out, schema=self.schema)


def score_shard(scorers: Scorers, hold, args: dict, src: str, dst: str) -> int:
    """One generation shard -> its score shard, unless done; its rows."""
    if not is_done(dst):
        rows = pq.read_table(src).to_pylist()
        write_shard(scorers.score(rows, args["trial_key"], args["base"],
                                  args.get("calibration")), dst, scorers.schema)
    return pq.read_metadata(dst).num_rows


def _ppl(nll: np.ndarray, tokens: np.ndarray) -> float:
    """Token-weighted perplexity over documents (each doc predicts tokens-1 tokens)."""
    w = np.maximum(tokens - 1, 0).astype(np.float64)
    return float(math.exp((nll * w).sum() / w.sum())) if w.sum() else float("nan")


def summarize(scores: pa.Table, cfg: StudyConfig, canaries: pa.Table | None = None) -> pa.Table:
    """Per (split, dup_count) group (dup_count -1: the whole split): sample count, every
    registered column's aggregations (over the samples); where documents have several samples
    (attack.samples_per_prompt > 1), every column's `per_doc` aggregation (each document over
    its samples: discoverability, most severe plagiarism label, best similarity); per member
    group, every contrast (membership signals
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
        several = len(docs) < len(sel)  # attack.samples_per_prompt > 1: per document too
        for c in columns:
            if c.aggregate is not None and sel[c.name].notna().any():  # (over its values)
                found.update(c.aggregate(sel[c.name].dropna(), cfg.score))
            if several and c.per_doc is not None and sel[c.name].notna().any():
                v = sel[c.name].dropna()
                found.update(c.per_doc.aggregate(v, sel.loc[v.index, "doc_id"], cfg.score))
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


def base_nll(base_dir: Path | None) -> dict[str, float]:
    """doc_id -> the base model's NLL, from a finished base stage (empty: none)."""
    if base_dir is None:
        return {}
    t = read_shards(base_dir, BASE_SCHEMA)
    return dict(zip(t.column("doc_id").to_pylist(), t.column("base_nll").to_pylist()))


def calibration_inputs(gen_dir: Path, base_dir: Path | None, base: dict[str, float]) -> dict:
    """What the calibrated membership signals (memlab/scoring/calibrated.py) read of a trial:
    `prefixed` (doc_id -> ReCaLL's prefixed NLL, the generate stage's recall-* files),
    `population` (the population documents' NLL under the fine-tuned model, `nll`, and under
    the base model, `base_nll`; the generate stage's population-* files, the base stage's
    rows), `token_freq` (the base stage's freq-*.npz, summed). Each absent where not made."""
    from memlab.io.shards import POPULATION_SCHEMA, RECALL_SCHEMA

    def side(what: str, schema: pa.Schema) -> pa.Table | None:
        files = sorted(Path(gen_dir).glob(f"{what}-part-*.parquet"))
        if not files:
            return None
        table = pa.concat_tables([pq.read_table(f) for f in files])
        validate_table(table, schema, str(gen_dir))
        return table

    out: dict = {}
    if (rec := side("recall", RECALL_SCHEMA)) is not None:
        out["prefixed"] = dict(zip(rec.column("doc_id").to_pylist(),
                                   rec.column("prefixed_nll").to_pylist()))
    if (pop := side("population", POPULATION_SCHEMA)) is not None:
        ids = pop.column("doc_id").to_pylist()
        out["population"] = {
            "nll": np.asarray(pop.column("nll").to_pylist(), dtype=np.float64),
            "base_nll": np.asarray([base.get(d, math.nan) for d in ids], dtype=np.float64)}
    freqs = sorted(Path(base_dir).glob("freq-*.npz")) if base_dir is not None else []
    if freqs:
        parts = [dict(np.load(f)) for f in freqs]
        out["token_freq"] = {k: sum(p[k] for p in parts) for k in parts[0]}
    return out


def _args(ctx: TrialContext) -> dict:
    """What every shard call gets: the scorers' prepared inputs (once per stage: files
    shared by every trial of the dataset), the trial's key, the base model's NLLs."""
    cfg = ctx.cfg
    read_shards(ctx.dir("gen"), GENERATION_SCHEMA)  # validate the boundary before scoring
    prepared = {s.name: s.prepare(cfg, ctx.dir("data")) for s in suite.scorers(cfg.score)
                if s.prepare is not None and s.enabled(cfg.score)}
    base_dir = ctx.dir("base") if ctx.has("base") else None
    base = base_nll(base_dir)
    calibration = calibration_inputs(ctx.dir("gen"), base_dir, base)
    m = cfg.score.membership
    for signal, needs, made_by in (("rmia", "population", "generate"),
                                   ("recall", "prefixed", "generate"),
                                   ("dcpdd", "token_freq", "base")):
        if m.enabled and getattr(m, signal).enabled and needs not in calibration:
            raise RuntimeError(f"score.membership.{signal}: the {made_by} stage left no "
                               f"{needs} files (its side files); rerun to repair the stage")
    return {"cfg": cfg, "trial_key": ctx.key, "prepared": prepared, "threads": ctx.threads,
            "base": base, "calibration": calibration}


def _scorers_key(args: dict) -> str:
    """What a warm actor's loaded scorers depend on: the score section, the prepared inputs,
    and the plugin files' content (a plugin scorer's `load` may read any of the trial's
    config: with plugins, one loaded set per trial config)."""
    from memlab.config.digests import plugin_digests
    from memlab.config.keys import config_identity
    from memlab.config.load import to_dict

    cfg = args["cfg"]
    return content_key([to_dict(cfg.score), args["prepared"], plugin_digests(cfg.score.plugins),
                        config_identity(cfg) if cfg.score.plugins else None])


def _finish(ctx: TrialContext, folder: Path, jobs: list, rows: int, nodes: set) -> dict:
    """The summary of the score shards (and the canaries' exposure), then the manifest's
    fields."""
    cfg, gen_dir = ctx.cfg, ctx.dir("gen")
    scores = read_shards(folder)
    canaries = read_canaries(gen_dir)
    want = (read_manifest(ctx.dir("data")) or {}).get("canaries", 0)
    got = canaries.num_rows if canaries is not None else 0
    if got != want:  # (the generate stage redoes a canary shard whose exposure file is lost)
        raise RuntimeError(f"{gen_dir}: exposure of {got} canaries, the dataset has "
                           f"{want}: rerun to regenerate them")
    summary = summarize(scores, cfg, canaries)
    ranked = []
    if ctx.has("rank"):  # sample-and-rank (attack.rank): its figures are the members'
        found = rank.rank_trial(ctx.dir("rank"), ctx.dir("data"), cfg, folder / rank.FILE)
        summary = pa.concat_tables([summary, pa.Table.from_pylist(
            [{"split": "member", "dup_count": -1, "metric": m, "value": v}
             for m, v in found.items()], schema=SUMMARY_SCHEMA)])
        ranked = [rank.FILE]
    pq.write_table(summary, folder / "summary.parquet")
    outputs = sorted(p.name for p in folder.glob("part-*.parquet")) + ["summary.parquet"] + \
        ranked
    return dict(outputs=outputs, rows=scores.num_rows, columns=scores.schema.names,
                embedder=cfg.score.embedder, actor_nodes=sorted(nodes))


WORK = Work(
    shards=Shards(
        source="gen", desc="score", args=_args,
        load=lambda args: Scorers(args["cfg"], args["prepared"], args["threads"]),
        run=score_shard, cache_key=_scorers_key),
    finish=_finish,
    # the set of scorer columns: score shards made by another set (e.g. before a new
    # built-in scorer) are stale
    built_from=lambda ctx: {"scorers": suite.fingerprint(ctx.cfg.score)},
)
