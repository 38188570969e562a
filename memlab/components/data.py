"""Dataset stage: documents from a source -> member / non-member (/ population) Parquet shards
with exact `dup_count`s.

Sources: the built-in offline demo corpus, a local JSONL / Parquet file or a folder of them or
of `.txt` files, or a Hugging Face dataset name (needs network and the `datasets` package).
Records are read in `data.format` (text, instruction, papers, chat: memlab/components/formats.py),
their fields from the columns `data.columns` names.
Members are split into disjoint, equal-as-possible subsets, one per entry of `dup_mix`; a member
of subset k occurs `dup_factor * k` times in the training stream. Non-members occur 0 times.
The population split (data.num_population, none by default) is held out too, never trained
on and never attacked or scored: the calibrated membership signals' known non-member text
(memlab/scoring/calibrated.py).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
from pathlib import Path

import pyarrow as pa

from memlab.components.canaries import canary_rows
from memlab.components.formats import FormatError, records
from memlab.config.digests import local_files
from memlab.config.errors import DataError
from memlab.config.formats import column, needed_fields
from memlab.config.schema import DataSection
from memlab.io.shards import (
    DATASET_SCHEMA,
    FORMATTED_DATASET_SCHEMA,
    as_dataset,
    read_shards,
    shard_name,
    write_shard,
)
from memlab.io.tables import located_rows

log = logging.getLogger(__name__)

__all__ = ["DataError", "build", "load_documents", "read_dataset", "select",
           "training_stream"]


def _read_local(path: Path, cfg: DataSection) -> tuple[list[dict], int]:
    """A JSONL / Parquet file, or a folder of such files and/or `.txt` documents (format text
    only): (documents, records left out for having no response)."""
    if path.is_dir():
        files = local_files(path)
        if not files:
            raise DataError(f"data.path: no .jsonl, .parquet or .txt files under {path}")
    else:
        files = [path]
    docs: list[dict] = []
    skipped = 0
    for f in files:
        rel = f.relative_to(path) if path.is_dir() else Path(f.name)
        if f.suffix == ".txt":
            if cfg.format != "text":
                raise DataError(f"{f}: a .txt file is one plain document; data.format="
                                f"{cfg.format} reads records from .jsonl or .parquet files")
            try:  # (text mode: line endings read as before)
                text = f.read_text(encoding="utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{f}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset "
                                f"{e.start}); convert the file, e.g. iconv -f latin1 -t utf-8"
                                ) from None
            docs.append({"doc_id": str(rel), "text": text, "response_start": 0,
                         "messages": None})
            continue
        try:
            rows, places = located_rows(f)  # (named 'file:line', as an editor counts)
            found, left = records(rows, cfg, where=places.__getitem__,
                                  default_id=lambda i, rel=rel: f"{rel}#{i}")
        except (ValueError, FormatError) as e:
            raise DataError(str(e)) from None
        docs += found
        skipped += left
    return docs, skipped


def _read_hf(cfg: DataSection) -> tuple[list[dict], int]:
    try:
        import datasets
    except ImportError:
        raise DataError("data.source=hf needs the `datasets` package: "
                        "pip install 'memlab[hf]'") from None
    name = f"hub dataset {cfg.hf_name}" + (f" ({cfg.hf_config})" if cfg.hf_config else "") + \
        f", split {cfg.hf_split}"
    try:
        ds = datasets.load_dataset(cfg.hf_name, cfg.hf_config, split=cfg.hf_split)
    except ValueError as e:  # e.g. a split or slice the dataset does not have
        raise DataError(f"{name}: {e}") from None
    wanted = [column(cfg, f)[0] for f in needed_fields(cfg) + ("id",)]
    columns = list(ds.column_names)  # (named in errors: before the selection below)
    present = [c for c in dict.fromkeys(wanted) if c and c in columns]
    if present:
        ds = ds.select_columns(present)
    try:
        return records(ds.to_list(), cfg, where=lambda i: f"{name}: record {i + 1} (index {i})",
                       default_id=str)
    except FormatError as e:
        raise DataError(f"{e} (its columns: {', '.join(columns)})" if "no field" in
                        str(e) else str(e)) from None


SKIP_REASONS = ("no_response", "empty", "below_min_words", "duplicate_text")


def load_documents(cfg: DataSection, skips: dict[str, int] | None = None) -> list[dict]:
    """All candidate documents of the source, in a stable order, deduplicated by text: doc_id,
    text, response_start (character offset of the response in text), messages (chat).
    `skips` receives how many records were left out, per reason (SKIP_REASONS)."""
    skips = {} if skips is None else skips
    skips.update(dict.fromkeys(SKIP_REASONS, 0))
    skipped = 0
    if cfg.source == "demo":
        from memlab.components.corpus import generate_demo_corpus

        docs = [{**d, "response_start": 0, "messages": None}
                for d in generate_demo_corpus(num_docs=cfg.num_docs, seed=cfg.seed)]
    elif cfg.source == "local":
        docs, skipped = _read_local(Path(os.path.expanduser(cfg.path)), cfg)
    else:
        docs, skipped = _read_hf(cfg)
    if skipped:
        log.warning("data: %d %s records left out: no response (%s)", skipped, cfg.format,
                    "empty output" if cfg.format == "instruction" else "no assistant turn")
    skips["no_response"] = skipped
    seen_text: set[str] = set()
    seen_id: set[str] = set()
    out = []
    for d in docs:
        raw = d["text"]
        text = raw.strip()
        start = max(0, d["response_start"] - (len(raw) - len(raw.lstrip())))
        reason = ("empty" if not text else "below_min_words" if len(text.split()) <
                  cfg.min_words else "duplicate_text" if text in seen_text else None)
        if reason:
            skips[reason] += 1
            continue
        if d["doc_id"] in seen_id:
            raise DataError(f"duplicate doc_id {d['doc_id']!r} in the source")
        seen_text.add(text)
        seen_id.add(d["doc_id"])
        out.append({"doc_id": d["doc_id"], "text": text, "response_start": start,
                    "messages": d["messages"]})
    left = {k: v for k, v in skips.items() if v and k != "no_response"}
    if left:
        log.warning("data: documents left out: %s", ", ".join(f"{v} {k.replace('_', ' ')}"
                                                             for k, v in left.items()))
    return out


def select(docs: list[dict], cfg: DataSection) -> list[dict]:
    """Deterministic member / non-member / population split and duplication counts: one
    shuffle, members first, then non-members, then the population (so a population added
    later leaves the members and non-members as they were)."""
    need = cfg.num_members + cfg.num_nonmembers + cfg.num_population
    if len(docs) < need:
        raise DataError(f"data: the source has {len(docs)} usable documents, num_members + "
                        f"num_nonmembers{' + num_population' if cfg.num_population else ''} "
                        f"needs {need}")
    order = list(range(len(docs)))
    random.Random(cfg.seed).shuffle(order)
    rows = []
    for rank, idx in enumerate(order[:need]):
        d = docs[idx]
        if rank < cfg.num_members:
            k = cfg.dup_mix[rank % len(cfg.dup_mix)]
            rows.append({**d, "split": "member", "dup_count": cfg.dup_factor * k})
        elif rank < cfg.num_members + cfg.num_nonmembers:
            rows.append({**d, "split": "nonmember", "dup_count": 0})
        else:
            rows.append({**d, "split": "population", "dup_count": 0})
    return rows


def build(cfg: DataSection, out_dir: Path) -> dict:
    """Write the dataset's shards into `out_dir`; return what its manifest records (the data
    stage, memlab/stages/data.py, writes it)."""
    skips: dict[str, int] = {}
    chosen = select(load_documents(cfg, skips), cfg)
    docs = [r for r in chosen if r["split"] != "population"]
    population = [r for r in chosen if r["split"] == "population"]
    canaries = canary_rows(cfg.canaries, cfg.seed)
    rows = docs + population + canaries
    # a text dataset is written as before formats existed (DATASET_SCHEMA: byte-identical)
    schema = DATASET_SCHEMA if cfg.format == "text" else FORMATTED_DATASET_SCHEMA
    names = []
    # the population and the canaries in shards of their own (generate: no attack on them)
    for part in (docs, population, canaries):
        table = pa.Table.from_pylist(part, schema=schema)
        for start in range(0, len(part), cfg.shard_rows):
            names.append(shard_name(len(names)))
            write_shard(table.slice(start, cfg.shard_rows), out_dir / names[-1], schema)
    digest = hashlib.sha256()
    for r in rows:
        extra = "" if cfg.format == "text" else f"\0{r['response_start']}\0{r['messages']}"
        digest.update(f"{r['doc_id']}\0{r['text']}\0{r['dup_count']}{extra}\n".encode())
    counts: dict[str, int] = {}
    for r in rows:
        if r["split"] == "member":
            counts[str(r["dup_count"])] = counts.get(str(r["dup_count"]), 0) + 1
    log.info("dataset %s: %d members, %d non-members, %d shards",
             out_dir.name, cfg.num_members, cfg.num_nonmembers, len(names))
    return dict(
        outputs=names, source=cfg.source,
        source_ref=cfg.path or cfg.hf_name or f"demo(num_docs={cfg.num_docs},seed={cfg.seed})",
        rows=len(rows), members=cfg.num_members, nonmembers=cfg.num_nonmembers,
        **({"population": len(population)} if population else {}),
        members_by_dup_count=counts, train_stream_len=sum(r["dup_count"] for r in rows),
        shards=len(names), sha256=digest.hexdigest(), canaries=len(canaries),
        **({"skipped": {k: v for k, v in skips.items() if v}} if any(skips.values()) else {}),
        **({} if cfg.format == "text" else {"format": cfg.format}))


def read_dataset(out_dir: str | os.PathLike) -> list[dict]:
    """Every row of a dataset, as FORMATTED_DATASET_SCHEMA (a text dataset's too)."""
    return as_dataset(read_shards(out_dir), str(out_dir)).to_pylist()


def training_stream(rows: list[dict], seed: int) -> list[dict]:
    """Every member and canary repeated `dup_count` times, shuffled with the trial seed."""
    stream = [r for r in rows if r["split"] in ("member", "canary")
              for _ in range(r["dup_count"])]
    random.Random(seed).shuffle(stream)
    return stream
