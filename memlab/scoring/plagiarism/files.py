"""`memlab plagiarism`: the pipeline's typing on files (a corpus of (doc_id, text) rows and
generated (id, text) rows, JSONL or Parquet); the corpus index is built next to the corpus
file, keyed by its content."""

from __future__ import annotations

import json
import os
from pathlib import Path

from memlab.config.schema import PlagiarismSection
from memlab.scoring.plagiarism.index import CorpusIndex, SemanticIndex, ensure_index, index_key
from memlab.scoring.plagiarism.judge import Judge
from memlab.scoring.plagiarism.typer import LABELS, type_texts


def read_table_file(path: str | os.PathLike, columns: tuple[str, ...]) -> list[dict]:
    """Rows of a JSONL or Parquet file (chosen by extension) holding `columns`."""
    from memlab.io.tables import read_rows

    rows = read_rows(path)
    for i, r in enumerate(rows):
        missing = [c for c in columns if c not in r]
        if missing:
            raise ValueError(f"{path}: row {i} has no column {missing[0]!r} "
                             f"(needs {', '.join(columns)})")
    return rows


def write_table_file(rows: list[dict], path: str | os.PathLike) -> None:
    import pyarrow as pa

    from memlab.io.shards import PLAGIARISM_SCHEMA, write_shard

    path = Path(path)
    if path.suffix == ".parquet":
        write_shard(pa.Table.from_pylist(rows, schema=PLAGIARISM_SCHEMA), path, PLAGIARISM_SCHEMA)
    elif path.suffix in (".jsonl", ".json"):
        tmp = path.with_name(path.name + ".tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        os.replace(tmp, path)
    else:
        raise ValueError(f"{path}: expected a .jsonl or .parquet output")


def type_file(corpus: str, generated: str, out: str, p: PlagiarismSection,
              batch: int = 64) -> dict:
    """`memlab plagiarism`: the same code as the pipeline stage, on files."""
    from memlab.config.digests import content_key, file_sha256
    from memlab.io.progress import Progress

    docs = read_table_file(corpus, ("doc_id", "text"))
    gens = read_table_file(generated, ("id", "text"))
    cpath = Path(corpus)
    folder = cpath.with_name(f"{cpath.name}.index-"
                             f"{content_key([index_key(p), file_sha256(cpath)])}")
    index = CorpusIndex(ensure_index([str(d["doc_id"]) for d in docs],
                                     [str(d["text"]) for d in docs], folder, p), p)
    judge = Judge(p.judge, p.judge_kind)
    semantic = SemanticIndex(SemanticIndex.build(index, folder, judge), index,
                             p.semantic.dense_breadth) if p.method == "semantic" else None
    rows: list[dict] = []
    bar = Progress(len(gens), "plagiarism", unit="text", every_s=5)
    for i in range(0, len(gens), batch):
        chunk = gens[i:i + batch]
        for g, r in zip(chunk, type_texts([str(g["text"]) for g in chunk], index, judge,
                                          semantic)):
            rows.append({"id": str(g["id"]), **r})
        bar.update(len(chunk))
    write_table_file(rows, out)
    counts = {lab: sum(r["label"] == lab for r in rows) for lab in LABELS}
    return {"texts": len(rows), **counts}
