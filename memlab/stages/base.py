"""Base stage: the base (not fine-tuned) model's pass over every document of a dataset.

Once per base model, dataset, `train.seq_len` and generation device and precision (its key,
memlab/config/keys.py), shared by every trial of that chain whatever its strategy, seed or
attack: each document's mean next-token NLL over the same tokens the generate stage scores with
the fine-tuned model (its first seq_len). It is the reference of the `ref` membership signal
(memlab/scoring/membership.py) and gives the base model's held-out perplexity (`base_ppl`).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from memlab.config.keys import content_key
from memlab.config.schema import StudyConfig
from memlab.io.shards import (
    BASE_SCHEMA,
    StageOutput,
    claim_stage,
    is_done,
    manifest_digest,
    read_shards,
    shard_digests,
    write_manifest,
    write_shard,
)


class BaseShards:
    """Ray Data actor: loads the base model once, then writes one base shard per dataset
    shard (skipping finished ones)."""

    def __init__(self, cfg: StudyConfig, base_model: str, threads: int):
        from memlab.stages.generate import fit_threads

        t0 = time.perf_counter()
        fit_threads(cfg.attack.actor_cpus)
        import torch

        from memlab.components.models import load_causal_lm, load_tokenizer, torch_dtype

        torch.set_num_threads(max(1, threads))
        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.cfg = cfg
        self.tok = load_tokenizer(base_model)
        self.model = load_causal_lm(base_model, torch_dtype(cfg.train.precision, device))
        self.model.to(device).eval()
        print(f"[memlab] base-model actor ready in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr, flush=True)

    def rows(self, rows: list[dict]) -> list[dict]:
        return base_rows(self.model, self.tok, self.cfg, rows)

    def __call__(self, batch: dict) -> dict:
        counts = []
        for src, dst in zip(batch["src"], batch["dst"]):
            counts.append(base_shard(src, dst, self.rows))
        return {"dst": list(batch["dst"]), "rows": counts}


def base_rows(model, tok, cfg: StudyConfig, rows: list[dict]) -> list[dict]:
    """Each (non-canary) document's mean NLL over its first train.seq_len tokens under
    `model` (the base model)."""
    from memlab.components.formats import encode
    from memlab.stages.generate import nll_sums

    rows = [r for r in rows if r["split"] != "canary"]
    seq = cfg.train.seq_len
    ids = [i[:seq] for i, _ in encode(tok, rows, seq)] if rows else []
    sums = nll_sums(model, tok, ids, cfg.attack.batch_size)
    return [{"doc_id": r["doc_id"], "split": r["split"], "base_nll": s / max(1, len(i) - 1),
             "base_tokens": len(i)} for r, i, s in zip(rows, ids, sums)]


def base_shard(src: str, dst: str, rows_of) -> int:
    """One dataset shard -> its base shard (rows_of: dataset rows -> base rows), unless done;
    its rows."""
    if not is_done(dst):
        out = rows_of(pq.read_table(src).to_pylist())
        write_shard(pa.Table.from_pylist(out, schema=BASE_SCHEMA), dst, BASE_SCHEMA)
    return pq.read_metadata(dst).num_rows


def base_upstream(data_dir: Path, base_model: str) -> str:
    """What a finished base stage was built from: the dataset and the base model (the same
    identity the train stage records)."""
    from memlab.stages.train import train_upstream

    return content_key({"base": train_upstream(data_dir, base_model),
                        "data": manifest_digest(data_dir)})


def run_base(cfg: StudyConfig, base_model: str, data_dir: Path, out_dir: Path,
             threads: int = 1, pool=None) -> StageOutput:
    """The base model's pass over the dataset; on `pool`'s warm actors (which hold the base
    model) if given, else on Ray Data actors of this trial's own."""
    from memlab.stages.pool import run_shard_pool, shard_jobs

    upstream = base_upstream(data_dir, base_model)
    with claim_stage(out_dir, upstream) as stage:
        if stage.done is None:
            jobs, nodes = shard_jobs(data_dir, out_dir), set()
            if pool is not None:
                rows = pool.map("base", jobs, "base model", cfg, nodes=nodes)
            else:
                rows = run_shard_pool(BaseShards, {"cfg": cfg, "base_model": base_model,
                                                   "threads": threads}, jobs, cfg, "base model",
                                      nodes)
            digests = shard_digests(out_dir)  # (the score stage's upstream: their content)
            write_manifest(out_dir, upstream=upstream, outputs=list(digests), rows=rows,
                           shard_sha256=digests, actor_nodes=sorted(nodes),
                           base_model=base_model, seq_len=cfg.train.seq_len)
        return stage.output()


def base_nll(base_dir: Path | None) -> dict[str, float]:
    """doc_id -> the base model's NLL, from a finished base stage (empty: none)."""
    if base_dir is None:
        return {}
    t = read_shards(base_dir, BASE_SCHEMA)
    return dict(zip(t.column("doc_id").to_pylist(), t.column("base_nll").to_pylist()))
