"""Base stage: the base (not fine-tuned) model's pass over every document of a dataset.

Once per base model, dataset, `train.seq_len` and generation device and precision (its key,
memlab/config/chain.py), shared by every trial of that chain whatever its strategy, seed or
attack: each document's mean next-token NLL over the same tokens the generate stage scores with
the fine-tuned model (its first seq_len). It is the reference of the `ref` membership signal
(memlab/scoring/membership.py) and gives the base model's held-out perplexity (`base_ppl`).
Population documents (data.num_population) get their NLL too (RMIA's reference side of the
population) and, per shard, DC-PDD's token frequencies (`freq-<shard>.npz`,
memlab/scoring/calibrated.py).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from memlab.components.loaded import LoadedModel
from memlab.components.models import model_identity
from memlab.components.passes import nll_sums
from memlab.config.digests import content_key, file_sha256
from memlab.config.schema import StudyConfig
from memlab.io.shards import BASE_SCHEMA, is_done, manifest_digest, shard_digests, write_shard
from memlab.stages.work import TrialContext, Work, on_base_model


def base_rows(model, tok, cfg: StudyConfig, rows: list[dict]) -> list[dict]:
    """Each (non-canary) document's mean NLL over its first train.seq_len tokens under
    `model` (the base model)."""
    from memlab.components.formats import encode

    rows = [r for r in rows if r["split"] != "canary"]
    seq = cfg.train.seq_len
    ids = [i[:seq] for i, _ in encode(tok, rows, seq)] if rows else []
    sums = nll_sums(model, tok, ids, cfg.attack.batch_size)
    return [{"doc_id": r["doc_id"], "split": r["split"], "base_nll": s / max(1, len(i) - 1),
             "base_tokens": len(i)} for r, i, s in zip(rows, ids, sums)]


def freq_path(base_shard: str | Path) -> Path:
    """Where the token frequencies of a dataset shard's population documents go."""
    return Path(base_shard).with_name("freq-" + Path(base_shard).with_suffix(".npz").name)


def token_frequencies(model, tok, cfg: StudyConfig, rows: list[dict]) -> dict:
    """DC-PDD's two views of how often each token occurs in the population documents (each
    its first train.seq_len tokens), summed (memlab/scoring/calibrated.py reads their
    totals): `base`, the base model's next-token distributions over every predicted position
    (`positions` of them); `counts`, the tokens themselves, as the tokenizer splits them."""
    import numpy as np

    from memlab.components.formats import encode
    from memlab.components.passes import mean_next_token

    seq = cfg.train.seq_len
    ids = [i[:seq] for i, _ in encode(tok, rows, seq)]
    mass, positions = mean_next_token(model, tok, ids, cfg.attack.batch_size)
    counts = np.bincount([t for i in ids for t in i], minlength=len(mass))
    return {"base": mass, "positions": np.int64(positions), "counts": counts.astype(np.int64)}


def base_shard(lm: LoadedModel, hold, args: dict, src: str, dst: str) -> int:
    """One dataset shard -> its base shard (and its population documents' token
    frequencies), unless done; its rows. `hold`: held around the model's work, with the base
    weights in it (the tokenizer may be shared too)."""
    import numpy as np

    if not is_done(dst):
        rows = pq.read_table(src).to_pylist()
        if population := [r for r in rows if r["split"] == "population"]:
            with hold, lm.tok_lock:
                found = token_frequencies(lm.model, lm.tok, args["cfg"], population)
            tmp = freq_path(dst).with_name(freq_path(dst).name + ".tmp")
            with open(tmp, "wb") as f:
                np.savez(f, **found)
            tmp.replace(freq_path(dst))  # (before the shard: a done shard has its file)
        with hold, lm.tok_lock:
            out = base_rows(lm.model, lm.tok, args["cfg"], rows)
        write_shard(pa.Table.from_pylist(out, schema=BASE_SCHEMA), dst, BASE_SCHEMA)
    return pq.read_metadata(dst).num_rows


def _before(ctx: TrialContext, jobs: list) -> None:
    """A shard of population documents is done with its token frequencies only (written
    before it; one lost: the shard is redone, or DC-PDD would have no frequencies)."""
    for src, dst in jobs:
        if is_done(dst) and not freq_path(dst).is_file() and "population" in \
                pq.read_table(src, columns=["split"]).column("split").to_pylist():
            Path(dst).unlink()


def _built_from(ctx: TrialContext) -> dict:
    """The base model's identity with the dataset's (as before the runner, so that finished
    base stages stay valid)."""
    data = manifest_digest(ctx.dir("data"))
    return {"base": content_key({"data": data, "base_model": model_identity(ctx.base_model)})}


def _finish(ctx: TrialContext, folder: Path, jobs: list, rows: int, nodes: set) -> dict:
    digests = shard_digests(folder)  # (the score stage's upstream: their content)
    freqs = {p.name: file_sha256(p) for p in sorted(folder.glob("freq-*.npz"))}
    return dict(outputs=list(digests) + list(freqs), rows=rows, shard_sha256=digests,
                **({"freq_sha256": freqs} if freqs else {}),
                actor_nodes=sorted(nodes), base_model=ctx.base_model,
                seq_len=ctx.cfg.train.seq_len)


WORK = Work(
    shards=on_base_model("data", "base model", base_shard, _before),
    finish=_finish,
    built_from=_built_from,
)
