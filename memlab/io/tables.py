"""Rows of a JSONL or Parquet file, chosen by extension, with located errors."""

from __future__ import annotations

import os
from pathlib import Path

from memlab.config.datafiles import jsonl_records


def located_rows(path: str | os.PathLike) -> tuple[list[dict], list[str]]:
    """All rows of a `.jsonl` / `.json` (one object per line) or `.parquet` file, and where
    each one is, as messages name it: 'file:LINE' (1-based, as an editor counts; blank lines
    hold no row) or 'file: row N' (Parquet, 1-based). Raises ValueError naming the file (and
    line) on a problem."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if path.suffix == ".parquet":
        rows = pq.read_table(path).to_pylist()
        return rows, [f"{path}: row {n}" for n in range(1, len(rows) + 1)]
    if path.suffix not in (".jsonl", ".json"):
        raise ValueError(f"{path}: expected a .jsonl or .parquet file")
    numbered = list(jsonl_records(path))
    return [row for _, row in numbered], [f"{path}:{n}" for n, _ in numbered]


def read_rows(path: str | os.PathLike) -> list[dict]:
    """All rows of a `.jsonl` / `.json` or `.parquet` file (located_rows without where)."""
    return located_rows(path)[0]
