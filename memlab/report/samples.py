"""One row per sample: a sweep's Parquet dataset, `<sweep root>/samples/` (issue 35 part 4).

Every finished trial's score shards joined with its generation shards by `sample_id`, and its
canaries' exposure as a row per canary, so that one row holds all that is known of a sample:
which trial made it (key, name, strategy, model, seed), its document (doc_id, split, dup_count:
the copies in the training stream), how much of it came back (exact_extracted,
token_match_frac, lcs_tokens, sim_to_source, sim_to_corpus), its plagiarism type and source
document (plag_label, plag_doc_id), every membership score of the trial (the `mia_*` columns
its score shards have: loss, zlib, mink, minkpp, ref; rmia, recall, dcpdd where they were on),
and for a canary its exposure. No text: the generations stay in the stage shards (`memlab
examples` shows them), and nested columns (plagiarism spans) are left out, so the rows are flat.
The report's "most leaked documents" section reads it.

Layout, for a sweep of thousands of trials of thousands of samples each: hive-partitioned by
strategy, one file per trial,

    samples/strategy=<strategy>/<trial_key>.parquet

so a reader that wants one strategy opens its folder only, and a rerun that adds trials writes
their files alone: `samples/_SOURCES.json` records what each file was built from (its trial's
name and the digests of its generation and score manifests), and a file whose sources have not
changed is kept as it is. The file of a trial the study no longer has finished is removed (the
dataset holds the report's trials). Each file is written under a hidden temporary name and
renamed (a reader never sees half of one; `pyarrow.dataset` skips names that start with `.` or
`_`), and a lock beside the folder keeps two reports apart. Columns that some trials lack (an
opt-in signal, an older scorer set) are null in their rows when read through `open_samples`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from filelock import FileLock

from memlab.config.digests import content_key
from memlab.config.expand import Study, Trial
from memlab.config.labels import model_label
from memlab.io.paths import stage_dir, sweep_root, trial_dir
from memlab.io.shards import MANIFEST, manifest_digest, read_canaries, write_json_atomic
from memlab.report.tables import Listing

SAMPLES = "samples"  # the dataset's folder under the sweep's
SOURCES = "_SOURCES.json"  # trial_key -> {"source": what its file was built from, "file": ...}
VERSION = 1  # of the columns: a change rebuilds every file
PARTITIONING = ds.partitioning(pa.schema([("strategy", pa.string())]), flavor="hive")
TRIAL = pa.schema([  # the first columns of every file (strategy: its folder)
    ("trial_key", pa.string()),
    ("trial", pa.string()),  # the trial's name (strategy-model-x<copies>-s<seed>)
    ("model", pa.string()),
    ("seed", pa.int64()),  # the trial's seed (sample_seed: its sample's own)
])
SAMPLE = pa.schema([  # then the sample's, from its score shard (sample_seed: generation's)
    ("sample_id", pa.string()), ("doc_id", pa.string()), ("split", pa.string()),
    ("dup_count", pa.int32()), ("sample_idx", pa.int32()), ("sample_seed", pa.int64()),
])
CANARY = pa.schema([  # the last columns of every file: null but on a canary's row
    ("exposure", pa.float64()),  # bits (memlab/components/canaries.py)
    ("canary_beaten_by", pa.int32()),  # alternatives with a lower loss than the canary's
    ("canary_alternatives", pa.int32()),  # random other secrets its rank is estimated from
])


def samples_dir(study: Study) -> Path:
    return sweep_root(study.base) / SAMPLES


def _shards(folder: Path, columns: tuple[str, ...] = ()) -> pa.Table | None:
    """A stage's part-*.parquet as one table: `columns`, or every column but nested ones
    (spans); None: no shards."""
    parts = sorted(folder.glob("part-*.parquet"))
    if not parts:
        return None
    names = list(columns) or [f.name for f in pq.read_schema(parts[0])
                              if not pa.types.is_nested(f.type)]
    return pa.concat_tables([pq.read_table(p, columns=names) for p in parts],
                            promote_options="permissive")


def _canaries(gen_dir: Path, trial_key: str) -> pa.Table | None:
    """A row per canary of the trial: split canary, dup_count its copies, its exposure."""
    c = read_canaries(gen_dir)
    if c is None or not c.num_rows:
        return None
    n = c.num_rows
    return pa.table({
        "trial_key": pa.array([trial_key] * n, pa.string()),
        "sample_id": c.column("doc_id"), "doc_id": c.column("doc_id"),
        "split": pa.array(["canary"] * n, pa.string()), "dup_count": c.column("repeats"),
        "exposure": c.column("exposure"), "canary_beaten_by": c.column("beaten_by"),
        "canary_alternatives": c.column("alternatives")})


def trial_samples(t: Trial) -> pa.Table | None:
    """One trial's rows (module docstring), generations in (split, doc_id, sample_idx) order,
    then its canaries; None: no score shards (a trial scored before they were kept)."""
    gen_dir, score_dir = stage_dir(t.config, "gen", t.keys.gen), stage_dir(t.config, "score",
                                                                            t.key)
    score = _shards(score_dir)
    if score is None:
        return None
    gen = _shards(gen_dir, ("sample_id", "seed"))  # (not its texts)
    seeds = pa.nulls(score.num_rows, pa.int64())
    if gen is not None:  # (by sample_id: the generation shards hold the samples in any order)
        at = pc.index_in(score.column("sample_id"), value_set=gen.column("sample_id"))
        seeds = gen.column("seed").take(at).cast(pa.int64())
    rows = score.append_column("sample_seed", seeds).sort_by(
        [("split", "ascending"), ("doc_id", "ascending"), ("sample_idx", "ascending")])
    canaries = _canaries(gen_dir, t.key)
    if canaries is not None:
        rows = pa.concat_tables([rows, canaries], promote_options="permissive")
    n = rows.num_rows
    first = {"trial": pa.array([t.name] * n, pa.string()),
             "model": pa.array([model_label(t.config)] * n, pa.string()),
             "seed": pa.array([t.config.seed] * n, pa.int64())}
    lead = [*TRIAL, *SAMPLE]
    rest = [f for f in rows.schema if f.name not in {x.name for x in [*lead, *CANARY]}]
    columns = {f.name: first[f.name] if f.name in first else
               rows.column(f.name).cast(f.type) if f.name in rows.column_names else
               pa.nulls(n, f.type) for f in [*lead, *CANARY]}
    columns.update({f.name: rows.column(f.name) for f in rest})
    order = [*(f.name for f in lead), *(f.name for f in rest), *(f.name for f in CANARY)]
    return pa.table({k: columns[k] for k in order})


def _source(t: Trial) -> str | None:
    """What a trial's file is built from: its name and its generation and score manifests
    (None: a stage without one)."""
    dirs = [stage_dir(t.config, "gen", t.keys.gen), stage_dir(t.config, "score", t.key)]
    if not all((d / MANIFEST).is_file() for d in dirs):
        return None
    return content_key([VERSION, t.name, str(t.config.train.strategy),
                        *(manifest_digest(d) for d in dirs)])


def _write(table: pa.Table, path: Path) -> None:
    """Write under a hidden temporary name (`.<name>.tmp`: no reader of the folder opens
    it), fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def finished(study: Study) -> list[Trial]:
    """The study's finished trials, each key once, in study order."""
    out, seen = [], set()
    for t in study.trials:
        if t.key not in seen and (trial_dir(t.config, t.key) / "result.json").is_file():
            seen.add(t.key)
            out.append(t)
    return out


def write_samples(study: Study) -> tuple[Path, list[str]]:
    """The sweep's dataset brought up to date with its finished trials: the files of trials
    whose sources changed or that have none yet are (re)written, those of trials no longer
    finished removed. Returns the folder and the keys of the trials written."""
    folder = samples_dir(study)
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(folder.with_name(SAMPLES + ".lock")):
        index_path = folder / SOURCES
        old = json.loads(index_path.read_text()) if index_path.is_file() else {}
        index, written = {}, []
        for t in finished(study):
            source = _source(t)
            rel = f"strategy={t.config.train.strategy}/{t.key}.parquet"
            was = old.get(t.key, {})
            if source is not None and was.get("source") == source and \
                    was.get("file") == rel and (folder / rel).is_file():
                index[t.key] = was
                continue
            table = trial_samples(t) if source is not None else None
            if table is None:
                continue
            _write(table, folder / rel)
            index[t.key] = {"source": source, "file": rel, "rows": table.num_rows}
            written.append(t.key)
        keep = {v["file"] for v in index.values()}
        for p in [*folder.glob("strategy=*/*.parquet"), *folder.glob("strategy=*/.*.tmp")]:
            if p.relative_to(folder).as_posix() not in keep:  # (and what a crash left)
                p.unlink()
        for d in folder.glob("strategy=*"):
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
        if index != old:  # (a report that changed nothing writes nothing)
            write_json_atomic(index, index_path)
    return folder, written


def open_samples(folder: str | os.PathLike) -> ds.Dataset:
    """The dataset as one table of every column that some trial's file has (null in the rows
    of the others), `strategy` from the folders."""
    files = ds.dataset(folder, format="parquet", partitioning=PARTITIONING)
    schemas = [f.physical_schema for f in files.get_fragments()]
    if not schemas:
        return files
    schema = pa.unify_schemas([*schemas, PARTITIONING.schema], promote_options="permissive")
    return ds.dataset(folder, schema=schema, format="parquet", partitioning=PARTITIONING)


RANK = ("exact_extracted", "sim_to_source", "token_match_frac")  # most leaked: first by


def _top(df, top: int):
    """The `top` (trial, document) pairs of a frame of member rows, each at its most leaked
    row (RANK, then trial, document and sample for a fixed order)."""
    for c in RANK:
        df[f"_{c}"] = df[c].astype(float).fillna(-1.0) if c in df else -1.0
    df = df.sort_values([*(f"_{c}" for c in RANK), "trial", "doc_id", "sample_id"],
                        ascending=[False] * len(RANK) + [True] * 3, kind="stable")
    df = df.drop_duplicates(["trial_key", "doc_id"]).head(top)
    return df.drop(columns=[f"_{c}" for c in RANK])


def most_leaked(folder: str | os.PathLike, top: int = 10) -> list[dict]:
    """The `top` most leaked (trial, member document) pairs of the dataset: each at its most
    leaked sample, ordered by exact extraction, then similarity to its true suffix, then the
    share of suffix tokens reproduced. Read a batch at a time, keeping each batch's `top`
    (a pair among the first `top` overall is among its batch's): the memory of a batch, not
    of the sweep."""
    import pandas as pd

    data = open_samples(folder)
    names = data.schema.names
    if "split" not in names:
        return []
    want = [c for c in ("trial", "trial_key", "strategy", "seed", "doc_id", "dup_count",
                        "sample_id", *RANK, "plag_label", "plag_doc_id") if c in names]
    want += [c for c in names if c.startswith("mia_")]
    kept = [_top(b.to_pandas(), top) for b in data.to_batches(
        columns=want, filter=pc.field("split") == "member") if b.num_rows]
    if not kept:
        return []
    df = _top(pd.concat(kept, ignore_index=True), top)
    return [{k: (None if v != v else v) for k, v in r.items()}  # (NaN -> None)
            for r in df.to_dict("records")]


TITLE = "Most leaked documents: members at their most leaked sample, over every trial"


def _num(v, fmt: str) -> str:
    """A cell: `-` for no value; a count (`d`) from an int or a float (a column with nulls)."""
    if v is None:
        return "-"
    return format(int(v) if fmt == "d" else float(v), fmt)


def leaked_listing(rows: list[dict], where: str) -> Listing | None:
    """The report's section of `most_leaked` rows (None: none); `where`: the dataset's
    folder as the report names it."""
    if not rows:
        return None
    signals = [c for c in dict.fromkeys(k for r in rows for k in r) if c.startswith("mia_")]
    head = ["#", "trial", "strategy", "seed", "doc", "dup", "exact", "sim", "match_%",
            "plagiarism", "source", *(c.removeprefix("mia_") for c in signals)]
    body = []
    for i, r in enumerate(rows, 1):
        match = r.get("token_match_frac")
        label = r.get("plag_label") or "-"
        body.append([str(i), str(r.get("trial")), str(r.get("strategy")),
                     _num(r.get("seed"), "d"), str(r.get("doc_id")),
                     _num(r.get("dup_count"), "d"),
                     {True: "yes", False: "no"}.get(r.get("exact_extracted"), "-"),
                     _num(r.get("sim_to_source"), ".3f"),
                     _num(None if match is None else 100 * match, ".0f"), label,
                     (r.get("plag_doc_id") or "-") if label not in ("-", "none") else "-",
                     *(_num(r.get(c), ".3f") for c in signals)])
    legend = (
        "Each (trial, member document) at its most leaked sample, ordered by exact extraction "
        "(the suffix came back token for token), then sim (cosine to the true suffix), then "
        "match_% (suffix tokens reproduced at their position). plagiarism: the generation's "
        "type against the whole fine-tuning corpus; source: the document it was found in. "
        + (f"{', '.join(c.removeprefix('mia_') for c in signals)}: the sample's membership "
           "scores (higher = more member-like). " if signals else "")
        + f"Read from {where}/ (one row per sample of every trial, with every score; README).")
    return Listing(TITLE, legend, head, body, left=("trial", "strategy", "doc", "plagiarism",
                                                    "source"))
