"""Atomic, idempotent Parquet shards and stage manifests, with the declared schema of every
stage boundary. A shard is written to `<name>.tmp` and renamed; a shard whose final file exists
is finished and never redone; a stage writes its manifest last.

A stage's folder also remembers what it was built from (`upstream`, a digest of the previous
stage's manifest): outputs built from something else are stale and dropped before a rerun,
and a manifest whose listed outputs are not all there does not count as done. One process at a
time computes a stage folder (`claim_stage`, a file lock beside it): another that needs the
same output waits for it and then reuses it."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

from memlab.config.digests import file_sha256

log = logging.getLogger(__name__)

# ------------------------------------------------------------------ schemas of stage boundaries
DATASET_SCHEMA = pa.schema([  # a dataset of data.format text (as before formats existed)
    ("doc_id", pa.string()),
    ("text", pa.string()),  # the document as its format renders it (components/formats.py)
    ("split", pa.string()),  # "member" | "nonmember" | "population" | "canary" (canaries.py)
    ("dup_count", pa.int32()),  # times the document occurs in the training stream (0: never)
])
FORMATTED_DATASET_SCHEMA = pa.schema(list(DATASET_SCHEMA) + [
    # a dataset of data.format instruction, papers or chat; every dataset as read (`as_dataset`)
    ("response_start", pa.int32()),  # character offset of the response in text (0: all of it)
    ("messages", pa.string()),  # chat: the conversation, JSON [{role, content}]; else null
])


def as_dataset(table: pa.Table, where: str = "") -> pa.Table:
    """A dataset table as FORMATTED_DATASET_SCHEMA: a text dataset's (DATASET_SCHEMA) rows get
    response_start 0 (the response is the whole document) and messages null."""
    if table.schema.remove_metadata() == DATASET_SCHEMA:
        table = table.append_column(FORMATTED_DATASET_SCHEMA.field("response_start"),
                                    pa.array([0] * table.num_rows, pa.int32()))
        table = table.append_column(FORMATTED_DATASET_SCHEMA.field("messages"),
                                    pa.nulls(table.num_rows, pa.string()))
    validate_table(table, FORMATTED_DATASET_SCHEMA, where)
    return table

GENERATION_SCHEMA = pa.schema([
    ("sample_id", pa.string()),  # "<doc_id>#<sample_idx>": joins a sample's rows across stages
    ("doc_id", pa.string()),
    ("split", pa.string()),
    ("dup_count", pa.int32()),
    ("sample_idx", pa.int32()),
    ("seed", pa.int64()),
    ("prompt_ids", pa.list_(pa.int32())),
    ("suffix_ids", pa.list_(pa.int32())),
    ("gen_ids", pa.list_(pa.int32())),
    ("suffix_text", pa.string()),
    ("gen_text", pa.string()),
    ("doc_nll", pa.float64()),  # mean next-token NLL of the document's first seq_len tokens
    # (or of the whole prompt, when the prompt of an instruction / chat record is longer)
    ("doc_tokens", pa.int32()),  # tokens that NLL is averaged over
    # the same pass, per predicted token of that window: log p(token), and min-k%++'s
    # normalised score (memlab.engine.engine.token_stats); membership signals read them
    ("token_logp", pa.list_(pa.float32())),
    ("token_z", pa.list_(pa.float32())),
    ("doc_zlib_bytes", pa.int32()),  # zlib-compressed UTF-8 bytes of that window's text
])

BASE_SCHEMA = pa.schema([  # the base (not fine-tuned) model's pass over every document
    ("doc_id", pa.string()),
    ("split", pa.string()),
    ("base_nll", pa.float64()),  # mean next-token NLL over the document's first seq_len tokens
    ("base_tokens", pa.int32()),
])

POPULATION_SCHEMA = pa.schema([  # the fine-tuned model's pass over the population split
    ("doc_id", pa.string()),
    ("nll", pa.float64()),  # mean next-token NLL over the document's first seq_len tokens
    ("tokens", pa.int32()),
])

RECALL_SCHEMA = pa.schema([  # ReCaLL: the fine-tuned model's NLL after a non-member prefix
    ("doc_id", pa.string()),
    ("prefixed_nll", pa.float64()),  # mean NLL of doc_nll's tokens, read after the prefix
])

RANK_SCHEMA = pa.schema([  # sample-and-rank (attack.rank): one free generation of the model
    ("rank_idx", pa.int32()),  # its draw, 0 .. attack.rank.samples - 1
    ("seed", pa.int64()),
    ("prompt_ids", pa.list_(pa.int32())),
    ("gen_ids", pa.list_(pa.int32())),
    ("prompt_text", pa.string()),
    ("gen_text", pa.string()),
    ("doc_nll", pa.float64()),  # the fine-tuned model's mean NLL of its generated tokens
    ("doc_tokens", pa.int32()),  # generated tokens
    ("token_logp", pa.list_(pa.float32())),  # log p of each generated token
    ("token_z", pa.list_(pa.float32())),  # min-k%++'s normalised score of each
    ("doc_zlib_bytes", pa.int32()),  # zlib-compressed bytes of gen_text
])
RANK_BASE_SCHEMA = RANK_SCHEMA.append(  # the rank stage's shards: the same, and the base model's
    pa.field("base_nll", pa.float64()))  # mean NLL of the generated tokens

CANARY_SCHEMA = pa.schema([  # exposure of each canary, measured on the fine-tuned model
    ("doc_id", pa.string()),
    ("repeats", pa.int32()),  # copies in the training stream (0: a never-inserted control)
    ("space_bits", pa.float64()),  # log2 of the number of possible secrets
    ("alternatives", pa.int32()),  # random other secrets the rank is estimated from
    ("beaten_by", pa.int32()),  # alternatives whose sequence has a lower loss than the canary's
    ("exposure", pa.float64()),  # bits (CANARIES.md / memlab/components/canaries.py)
])

SCORE_KEY_SCHEMA = pa.schema([  # the first columns of every score shard
    ("trial_key", pa.string()),
    ("sample_id", pa.string()),
    ("doc_id", pa.string()),
    ("split", pa.string()),
    ("dup_count", pa.int32()),
    ("sample_idx", pa.int32()),
    ("doc_nll", pa.float64()),
    ("doc_tokens", pa.int32()),
    ("base_nll", pa.float64()),  # the base model's NLL of the same tokens (null: no base pass)
])


def score_schema(columns: list[tuple[str, pa.DataType]]) -> pa.Schema:
    """Score shards: the key columns, then one column per registered scorer column (in
    registration order; memlab/scoring/registry.py)."""
    return pa.schema(list(SCORE_KEY_SCHEMA) + [pa.field(n, t) for n, t in columns])


SUMMARY_SCHEMA = pa.schema([  # scores/summary.parquet: one row per (split, dup_count, metric)
    ("split", pa.string()),  # member | nonmember
    ("dup_count", pa.int32()),  # -1: every document of the split
    ("metric", pa.string()),
    ("value", pa.float64()),
])

PLAGIARISM_SCHEMA = pa.schema([  # output of `memlab plagiarism`; null where not applicable
    ("id", pa.string()),  # the generated text's id
    ("label", pa.string()),  # verbatim | paraphrase | idea | none
    ("doc_id", pa.string()),  # the corpus document of the finding (none: null)
    ("gen_span", pa.list_(pa.int32())),  # [start, end) in the generated text, in characters
    ("doc_span", pa.list_(pa.int32())),  # [start, end) in the document, in characters
    ("gen_chars", pa.int32()),  # the spans' lengths in characters (idea: gen_chars >=
    ("doc_chars", pa.int32()),  # idea_ratio x doc_chars)
    ("run_chars", pa.int32()),  # verbatim: the longest common word run, characters
    ("judge_score", pa.float64()),  # paraphrase: the judge's score (cosine, or cross-encoder)
])

MANIFEST = "_MANIFEST.json"
UPSTREAM = "_UPSTREAM"


class SchemaError(ValueError):
    pass


def validate_table(table: pa.Table, schema: pa.Schema, where: str = "") -> None:
    """Check a table against a declared boundary schema (names, order and types)."""
    if table.schema.remove_metadata() != schema:
        raise SchemaError(f"{where}: schema mismatch\n got: {table.schema}\n want: {schema}")


def shard_name(i: int) -> str:
    return f"part-{i:05d}.parquet"


def is_done(path: str | os.PathLike) -> bool:
    return Path(path).is_file()


def write_shard(table: pa.Table, path: str | os.PathLike, schema: pa.Schema | None = None) -> None:
    """Validate, write to `<path>.tmp`, fsync, rename. Readers never see a partial shard."""
    path = Path(path)
    if schema is not None:
        validate_table(table, schema, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_shards(folder: str | os.PathLike, schema: pa.Schema | None = None) -> pa.Table:
    files = sorted(Path(folder).glob("part-*.parquet"))
    if not files:
        raise FileNotFoundError(f"no shards in {folder}")
    table = pa.concat_tables([pq.read_table(f) for f in files])
    if schema is not None:
        validate_table(table, schema, str(folder))
    return table


def sample_rows(gen_dir: str | os.PathLike, score_dir: str | os.PathLike,
                gen_columns: tuple[str, ...], score_columns: tuple[str, ...]) -> list[dict]:
    """A trial's samples as rows: the wanted columns of its score shards, each joined with its
    generation's (by sample_id); columns a stage's shards lack (an older scorer set) are
    absent from the rows, not an error. Reads local shards only: generated text never has to
    leave the runs folder to be read back (tracking.log_text)."""

    def columns(folder, wanted: tuple[str, ...]) -> list[dict]:
        out = []
        for f in sorted(Path(folder).glob("part-*.parquet")):
            names = pq.read_schema(f).names
            out += pq.read_table(f, columns=[c for c in wanted if c in names]).to_pylist()
        return out

    gen = {r["sample_id"]: r for r in columns(gen_dir, ("sample_id", *gen_columns))}
    return [{**gen[r["sample_id"]], **r} for r in columns(score_dir, ("sample_id",
                                                                       *score_columns))
            if r["sample_id"] in gen]


def read_canaries(gen_dir: str | os.PathLike) -> pa.Table | None:
    """The exposure of every canary (CANARY_SCHEMA) from a generation stage, if it has any
    (its `canary-part-*.parquet` side files)."""
    files = sorted(Path(gen_dir).glob("canary-*.parquet"))
    if not files:
        return None
    table = pa.concat_tables([pq.read_table(f) for f in files])
    validate_table(table, CANARY_SCHEMA, str(gen_dir))
    return table


def read_summary(score_dir: str | os.PathLike) -> pa.Table:
    """A finished score stage's summary (SUMMARY_SCHEMA): what MLflow and the report read."""
    table = pq.read_table(Path(score_dir) / "summary.parquet")
    validate_table(table, SUMMARY_SCHEMA, str(score_dir))
    return table


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


def write_json_atomic(obj: Any, path: str | os.PathLike) -> None:
    """Write to `<path>.tmp`, fsync, rename: a full disk leaves the old file or none."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True, default=str))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def output_files(folder: Path, outputs: list[str]) -> dict[str, list]:
    """[size, sha256] of every file of the outputs (a folder output: each file under it)."""
    out: dict[str, list] = {}
    for name in outputs:
        p = folder / name
        for f in sorted(p.rglob("*")) if p.is_dir() else [p]:
            if f.is_file():
                out[str(f.relative_to(folder))] = [f.stat().st_size, file_sha256(f)]
    return out


def write_manifest(folder: str | os.PathLike, volatile: tuple[str, ...] = (), **info: Any) -> None:
    """Written last: its presence means the stage in `folder` finished. Records each output
    file's size and SHA-256 (`files`), which a rerun checks (begin_stage). A stage redone for
    damaged pieces whose files all come back as recorded (but for `volatile` ones, e.g. timings)
    keeps its earlier manifest, so the stages built on it stay valid."""
    folder = Path(folder)
    if "outputs" in info:
        info["files"] = output_files(folder, info["outputs"])
    if volatile:
        info["volatile"] = list(volatile)
    prev = folder / (MANIFEST + ".repair")
    if prev.is_file():
        old = json.loads(prev.read_text())
        files = info.get("files", {})
        same = old.get("upstream") == info.get("upstream") and set(old["files"]) == \
            set(files) and all(old["files"][k] == v for k, v in files.items()
                               if k not in old.get("volatile", ()))
        if same:
            info = old
        log.info(f"{folder.parent.name} {folder.name}: repaired; "
                 + ("every output as recorded: its earlier manifest kept" if same else
                    "outputs differ from the record: the stages built on it are redone"))
    write_json_atomic(info, folder / MANIFEST)
    prev.unlink(missing_ok=True)


def damaged(folder: Path, man: dict) -> list[str]:
    """Output files missing, or whose size or SHA-256 differs from the manifest (reads every
    output once: about a second per GB). Volatile files (a rerun rewrites them with other
    timings) and manifests without `files` (written before they were recorded) are checked for
    presence only."""
    files = man.get("files")
    if files is None:
        return [n for n in man.get("outputs", []) if not (folder / n).exists()]
    bad = []
    volatile = man.get("volatile", ())
    for name, (size, digest) in files.items():
        p = folder / name
        if not p.is_file() or (name not in volatile and (p.stat().st_size != size or
                                                         file_sha256(p) != digest)):
            bad.append(name)
    return bad


def read_manifest(folder: str | os.PathLike) -> dict | None:
    p = Path(folder) / MANIFEST
    return json.loads(p.read_text()) if p.is_file() else None


def manifest_digest(folder: str | os.PathLike) -> str:
    """Identity of a finished stage, for the stages that consume it."""
    return file_sha256(Path(folder) / MANIFEST)


def shard_digests(folder: str | os.PathLike) -> dict[str, str]:
    return {p.name: file_sha256(p) for p in sorted(Path(folder).glob("part-*.parquet"))}


def _built_from(folder: Path, man: dict | None) -> str | None:
    marker = folder / UPSTREAM
    return marker.read_text().strip() if marker.is_file() else (man or {}).get("upstream")


def stage_done(folder: str | os.PathLike, upstream: str) -> bool:
    """Whether the stage in `folder` finished from `upstream` with all its outputs as its
    manifest recorded them (reads only: the check begin_stage repairs by)."""
    folder = Path(folder)
    man = read_manifest(folder)
    return man is not None and _built_from(folder, man) == upstream and not damaged(folder, man)


def outputs_present(folder: str | os.PathLike) -> bool:
    """A manifest in `folder`, every output as it records them: a finished piece that is not a
    stage of its own (an evaluation point's export, at/<step>/ of a train folder)."""
    man = read_manifest(folder)
    return man is not None and not damaged(Path(folder), man)


def begin_stage(folder: str | os.PathLike, upstream: str) -> dict | None:
    """The stage's manifest if it finished from `upstream` and its outputs are all present;
    otherwise None, with the folder made ready for a (re)run: outputs built from another
    upstream are removed, outputs of this upstream are kept (finished shards are not redone)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    man = read_manifest(folder)
    marker = folder / UPSTREAM
    built_from = _built_from(folder, man)
    if built_from is not None and built_from != upstream:
        for p in folder.iterdir():
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        man = None
    if man is not None:
        bad = damaged(folder, man)
        if not bad:
            return man
        log.warning(f"{folder.parent.name} {folder.name}: {', '.join(bad[:5])}"
                    f"{f' (+{len(bad) - 5} more)' if len(bad) > 5 else ''} missing or not as "
                    "recorded in its manifest: redoing that alone")
        for name in bad:  # (a piece of a folder output takes the folder: it is one piece)
            top = folder / Path(name).parts[0]
            shutil.rmtree(top, ignore_errors=True) if top.is_dir() else \
                top.unlink(missing_ok=True)
        if "files" in man:
            os.replace(folder / MANIFEST, folder / (MANIFEST + ".repair"))
        else:
            (folder / MANIFEST).unlink()
    marker.write_text(upstream)
    return None


@dataclass
class StageOutput:
    """A finished stage folder, and whether this call computed it or found it done."""

    folder: Path
    manifest: dict
    computed: bool
    waited_s: float = 0.0  # waiting for another process that was computing it


class claim_stage:
    """`with claim_stage(folder, upstream) as c:` holds the stage's lock (a file beside the
    folder): `c.finished` is the manifest if the stage already finished from `upstream`, else
    None and the folder is ready to (re)compute. `c.output()` after the stage wrote its
    manifest."""

    def __init__(self, folder: str | os.PathLike, upstream: str):
        self.folder, self.upstream = Path(folder), upstream
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        self.lock = FileLock(self.folder.with_name(self.folder.name + ".lock"))
        self.waited_s = 0.0
        self.finished: dict | None = None

    def __enter__(self) -> claim_stage:
        try:
            self.lock.acquire(timeout=0)
        except Timeout:
            log.info(f"{self.folder.parent.name} {self.folder.name}: another process is "
                     "computing it; waiting for it")
            t0 = time.perf_counter()
            self.lock.acquire()
            self.waited_s = time.perf_counter() - t0
        self.finished = begin_stage(self.folder, self.upstream)
        return self

    def __exit__(self, *exc) -> None:
        self.lock.release()

    def output(self) -> StageOutput:
        man = self.finished if self.finished is not None else read_manifest(self.folder)
        if man is None:
            raise RuntimeError(f"{self.folder}: the stage finished without a manifest")
        return StageOutput(self.folder, man, computed=self.finished is None,
                           waited_s=self.waited_s)
