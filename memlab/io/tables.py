"""Rows of a JSONL or Parquet file, chosen by extension, with located errors."""

from __future__ import annotations

import json
import os
from pathlib import Path


def read_rows(path: str | os.PathLike) -> list[dict]:
    """All rows of a `.jsonl` / `.json` (one object per line) or `.parquet` file.
    Raises ValueError naming the file (and line) on a problem."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    if path.suffix not in (".jsonl", ".json"):
        raise ValueError(f"{path}: expected a .jsonl or .parquet file")
    rows = []
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
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: invalid JSON: {e.msg}") from None
    return rows
