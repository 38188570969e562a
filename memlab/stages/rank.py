"""Rank stage: sample-and-rank's generations (attack.rank; Carlini et al. 2021, "Extracting
Training Data from Large Language Models", USENIX Security) under the base model.

The generate stage draws the fine-tuned model's free generations into its `rank-<shard>` side
files, with the fine-tuned model's statistics of each generation's tokens; this stage adds the
base model's mean NLL of the same tokens (the prompt read, not scored), the reference of the
`ref` signal. One shard per generation shard, on actors that hold the base model (the base
stage's, or the sweep's warm pool). The score stage ranks them (memlab/scoring/rank.py).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from memlab.components.loaded import LoadedModel
from memlab.components.passes import nll_sums
from memlab.config.schema import StudyConfig
from memlab.io.shards import (
    RANK_BASE_SCHEMA,
    RANK_SCHEMA,
    is_done,
    shard_digests,
    validate_table,
    write_shard,
)
from memlab.stages.work import TrialContext, Work, on_base_model


def source_path(gen_shard: str | Path) -> Path:
    """The generate stage's side file of sample-and-rank's draws beside its shard."""
    return Path(gen_shard).with_name("rank-" + Path(gen_shard).name)


def base_nll(model, tok, cfg: StudyConfig, rows: list[dict]) -> list[float]:
    """The base model's mean NLL of each row's generated tokens, read after its prompt (the
    tokens the fine-tuned model's doc_nll averages); NaN for an empty generation."""
    out = [float("nan")] * len(rows)
    for width in sorted({len(r["prompt_ids"]) for r in rows}):  # (one prompt length a pass)
        at = [i for i, r in enumerate(rows) if len(r["prompt_ids"]) == width and r["gen_ids"]]
        sums = nll_sums(model, tok, [rows[i]["prompt_ids"] + rows[i]["gen_ids"] for i in at],
                        cfg.attack.batch_size, skip=width - 1)
        for i, s in zip(at, sums):
            out[i] = s / len(rows[i]["gen_ids"])
    return out


def rank_shard(lm: LoadedModel, hold, args: dict, src: str, dst: str) -> int:
    """One generation shard's draws -> the same with the base model's NLL, unless done."""
    if not is_done(dst):
        table = pq.read_table(source_path(src))
        validate_table(table, RANK_SCHEMA, str(source_path(src)))
        rows = table.to_pylist()
        with hold, lm.tok_lock:
            found = base_nll(lm.model, lm.tok, args["cfg"], rows)
        for r, b in zip(rows, found):
            r["base_nll"] = b
        write_shard(pa.Table.from_pylist(rows, schema=RANK_BASE_SCHEMA), dst, RANK_BASE_SCHEMA)
    return pq.read_metadata(dst).num_rows


def _before(ctx: TrialContext, jobs: list) -> None:
    """Every generation shard has its draws' side file (the generate stage writes one per
    shard, empty where it draws none)."""
    if lost := [str(source_path(s)) for s, _ in jobs if not source_path(s).is_file()]:
        raise RuntimeError(f"attack.rank: the generate stage left no {lost[0]} (and "
                           f"{len(lost) - 1} more); rerun to repair the stage")


def _finish(ctx: TrialContext, folder: Path, jobs: list, rows: int, nodes: set) -> dict:
    digests = shard_digests(folder)  # (the score stage's upstream: their content)
    return dict(outputs=list(digests), rows=rows, shard_sha256=digests,
                actor_nodes=sorted(nodes), base_model=ctx.base_model)


WORK = Work(
    shards=on_base_model("gen", "rank (base model)", rank_shard, _before),
    finish=_finish,
)
