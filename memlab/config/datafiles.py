"""A local dataset as `validate` and `plan` see it, before anything runs: the first records of
each file and how many records the files hold, read without torch in well under a second, so
a column the study names that the data lacks, or fewer records than the split needs, is found
before `run` creates a run, a record or a stage folder. Lines are numbered from 1, as an
editor shows them; the data stage (memlab/components/data.py) names records the same way.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from memlab.config.digests import local_files
from memlab.config.formats import OPTIONAL, column, needed_fields
from memlab.config.schema import DataSection

HEAD = 100  # records of each file whose fields validate checks (the run checks every one)


def jsonl_records(path: Path) -> Iterator[tuple[int, object]]:
    """(1-based line number, parsed JSON) of each non-blank line of a JSONL file; ValueError
    naming the file and line of bytes that are not UTF-8 or a line that is not JSON."""
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}:{n}: not UTF-8 text (byte {raw[e.start]:#04x} at "
                                 f"column {e.start + 1}); convert the file, e.g. iconv -f "
                                 "latin1 -t utf-8") from None
            if line.strip():
                try:
                    yield n, json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: invalid JSON: {e.msg}") from None


@dataclass(frozen=True)
class Head:
    """What validate reads of one data file: its record count and, for its first records,
    where each is ('file:line'; a Parquet file: its schema) and the fields it has."""

    records: int
    first: tuple[tuple[str, frozenset[str]], ...]


_HEADS: dict[tuple, Head] = {}


def head(path: Path) -> Head:
    """The file's Head (cached while its size and mtime hold); ValueError on a file that
    cannot be read as records."""
    st = path.stat()
    memo = (str(path), st.st_size, st.st_mtime_ns)
    if memo not in _HEADS:
        _HEADS[memo] = _parquet_head(path) if path.suffix == ".parquet" else _jsonl_head(path)
    return _HEADS[memo]


def _parquet_head(path: Path) -> Head:
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path)
    except Exception as e:  # noqa: BLE001  (pyarrow's errors: a file that is not Parquet)
        raise ValueError(f"{path}: not a Parquet file ({e})") from None
    names = frozenset(meta.schema.to_arrow_schema().names)
    return Head(meta.num_rows, ((f"{path} (its Parquet schema)", names),))


def _jsonl_head(path: Path) -> Head:
    first = []
    for n, rec in itertools.islice(jsonl_records(path), HEAD):
        if not isinstance(rec, dict):
            raise ValueError(f"{path}:{n}: a record must be a JSON object, got "
                             f"{type(rec).__name__}")
        first.append((f"{path}:{n}", frozenset(rec)))
    with open(path, "rb") as f:
        records = sum(1 for raw in f if raw.strip())
    return Head(records, tuple(first))


def _wanted(d: DataSection) -> list[tuple[str, str, str]]:
    """(canonical field, source column, the key that names it) of every column a record must
    have in the section's format."""
    out = []
    for name in needed_fields(d) + ("id",):
        col, setting = column(d, name)
        if not col or name in OPTIONAL and name not in d.columns:
            continue
        key = setting if setting.startswith("data.") else "data.format"
        out.append((name, col, key))
    return out


def problems(d: DataSection) -> list[tuple[str, str]]:
    """(key, message) for each column the data section names that the first records of its
    local files lack, and for fewer records than num_members + num_nonmembers; nothing for
    a source that is not a local path that exists (the path check says so)."""
    if d.source != "local" or not d.path or not os.path.exists(d.path):
        return []
    files = local_files(d.path)
    if not files:
        return [("data.path", f"no .jsonl, .parquet or .txt files under {d.path}")]
    out: dict[str, str] = {}  # key -> its first problem
    total = 0
    for f in files:
        if f.suffix == ".txt":
            total += 1
            if d.format != "text":
                out.setdefault("data.format", f"{f}: a .txt file is one plain document; "
                               f"data.format={d.format} reads records from .jsonl or .parquet "
                               "files")
            continue
        try:
            h = head(f)
        except (OSError, ValueError) as e:
            out.setdefault("data.path", str(e))
            continue
        total += h.records
        for name, col, key in _wanted(d):
            where, have = next(((w, k) for w, k in h.first if col not in k), ("", frozenset()))
            if where and key not in out:
                why = "" if key != "data.format" else (f" (canonical field '{name}' of "
                                                       f"data.format {d.format}; map another "
                                                       f"column with data.columns.{name})")
                out[key] = (f"{where} has no field '{col}'{why}; its fields: "
                            f"{', '.join(sorted(have)) or 'none'}")
    need = d.num_members + d.num_nonmembers + d.num_population
    if total < need and "data.path" not in out:  # (a file it cannot read is not counted)
        names, counts = ["num_members", "num_nonmembers"], [d.num_members, d.num_nonmembers]
        if d.num_population:
            names, counts = names + ["num_population"], counts + [d.num_population]
        out["data.num_members"] = (f"{d.path} holds {total} records; {' + '.join(names)} = "
                                   f"{' + '.join(map(str, counts))} needs {need} (more, where "
                                   "records are empty, short or repeated)")
    return list(out.items())
