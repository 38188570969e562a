"""`memlab plagiarism`: the pipeline's typing on files (a corpus of (document id, text) rows and
generated (id, text) rows, JSONL or Parquet, their columns named by the caller). The corpus
index is derived data of the corpus (a copy of its texts, their sentences' stems and spans,
the BM25 index; method=semantic: every sentence's embedding): it is built in the folder the
caller names (by default the corpus's own), keyed by the corpus's content, reused by later
runs, and its place is logged."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from memlab.config.schema import PlagiarismSection
from memlab.scoring.plagiarism.index import CorpusIndex, SemanticIndex, ensure_index, index_key
from memlab.scoring.plagiarism.judge import Judge
from memlab.scoring.plagiarism.typer import LABELS, type_texts

log = logging.getLogger(__name__)

def read_table_file(path: str | os.PathLike, columns: tuple[str, str],
                    options: tuple[str, str]) -> list[tuple[str, str]]:
    """(id, text) of each row of a JSONL or Parquet file (chosen by extension): `columns` names
    the id and text columns, `options` the command-line options that named them, so that a
    missing column is reported as the option to change. A text must be a string (a null would
    be typed as the word "None")."""
    from memlab.io.tables import read_rows

    rows = read_rows(path)
    (id_col, text_col), out = columns, []
    for i, r in enumerate(rows, 1):
        for col, opt in zip(columns, options):
            if col not in r:
                raise ValueError(f"{path}: record {i} has no column {col!r} ({opt}; its "
                                 f"columns: {', '.join(map(str, r)) or 'none'})")
        if not isinstance(r[text_col], str):
            raise ValueError(f"{path}: record {i}: column {text_col!r} ({options[1]}) holds "
                             f"{type(r[text_col]).__name__} {r[text_col]!r}, not a text")
        out.append((str(r[id_col]), r[text_col]))
    return out


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


class JudgeError(ValueError):
    """The judge model (score.plagiarism.judge) cannot be loaded."""


def load_judge(p: PlagiarismSection) -> Judge:
    """The paraphrase judge, loaded before any index is built; a model that cannot be loaded
    (no such name, no network to fetch it) is a JudgeError naming it, not a library's
    traceback. A path that is not there is said at once (a library would take it for a hub
    name and try the network)."""
    if p.judge.startswith((".", "/", "~")) and not Path(os.path.expanduser(p.judge)).is_dir():
        raise JudgeError(f"no such model folder: {p.judge}")
    try:
        return Judge(p.judge, p.judge_kind)
    except Exception as e:  # noqa: BLE001  (whatever the loading library raises)
        why = str(e).strip().splitlines()[0] if str(e).strip() else ""
        kind = "a sentence-embedding" if p.judge_kind == "embedding" else "a cross-encoder"
        raise JudgeError(f"cannot load {p.judge!r} as {kind} model "
                         f"({type(e).__name__}{': ' + why if why else ''})") from None


def index_folder(corpus: str | os.PathLike, p: PlagiarismSection,
                 index_dir: str | os.PathLike | None = None,
                 columns: tuple[str, str] = ("doc_id", "text")) -> Path:
    """Where the corpus's index goes: `<index_dir>/<corpus file name>.index-<key>` (its lock
    file beside it), `index_dir` by default the corpus's folder; the key hashes the corpus's
    bytes, the (id, text) columns read from it and the settings the index depends on, so a
    changed corpus, or the same file read by other columns, gets a new index."""
    from memlab.config.digests import content_key, file_sha256

    cpath = Path(corpus)
    folder = Path(index_dir) if index_dir is not None else cpath.parent
    key = [index_key(p), file_sha256(cpath)]
    if tuple(columns) != ("doc_id", "text"):  # (indexes of the default columns keep their key)
        key.append(list(columns))
    return folder / f"{cpath.name}.index-{content_key(key)}"


def type_file(corpus: str, generated: str, out: str, p: PlagiarismSection, batch: int = 64,
              index_dir: str | None = None, corpus_columns: tuple[str, str] = ("doc_id", "text"),
              generated_columns: tuple[str, str] = ("id", "text")) -> dict:
    """`memlab plagiarism`: the same code as the pipeline stage, on files; `*_columns`: the
    (id, text) column names of each file. Both files are read, then the judge loaded, before
    anything is written. Returns the count of each label."""
    from memlab.io.progress import Progress
    from memlab.io.shards import PLAGIARISM_SCHEMA

    docs = read_table_file(corpus, corpus_columns, ("--id-column", "--text-column"))
    gens = read_table_file(generated, generated_columns,
                           ("--generated-id-column", "--generated-text-column"))
    if not docs:
        raise ValueError(f"{corpus}: no documents to type against (--corpus)")
    judge = load_judge(p)
    folder = index_folder(corpus, p, index_dir, corpus_columns)
    log.info("plagiarism: corpus index %s %s (derived from the corpus: a copy of its texts "
             "and their sentences' stems; delete it when done, or place it with --index-dir)",
             folder, "reused" if (folder / "meta.json").is_file() else "written")
    index = CorpusIndex(ensure_index([d for d, _ in docs], [t for _, t in docs], folder, p), p)
    semantic = SemanticIndex(SemanticIndex.build(index, folder, judge), index,
                             p.semantic.dense_breadth) if p.method == "semantic" else None
    rows: list[dict] = []
    bar = Progress(len(gens), "plagiarism", unit="text", every_s=5)
    for i in range(0, len(gens), batch):
        chunk = gens[i:i + batch]
        for (gid, _), r in zip(chunk, type_texts([t for _, t in chunk], index, judge, semantic)):
            rows.append({"id": gid, **{k: r[k] for k in PLAGIARISM_SCHEMA.names[1:]}})
        bar.update(len(chunk))
    write_table_file(rows, out)
    counts = {lab: sum(r["label"] == lab for r in rows) for lab in LABELS}
    return {"texts": len(rows), **counts}
