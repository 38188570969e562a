import collections
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from memlab.components.data import (
    DataError,
    load_documents,
    read_dataset,
    training_stream,
)
from memlab.config.schema import DataSection
from memlab.io.shards import DATASET_SCHEMA, FORMATTED_DATASET_SCHEMA, read_manifest
from memlab.stages.data import build_dataset


def test_duplication_counts_are_exact(tmp_path):
    cfg = DataSection(num_docs=300, num_members=30, num_nonmembers=20, dup_factor=2,
                      dup_mix=[1, 4, 16], shard_rows=7)
    man = build_dataset(cfg, tmp_path)
    rows = read_dataset(tmp_path)
    members = [r for r in rows if r["split"] == "member"]
    nonmembers = [r for r in rows if r["split"] == "nonmember"]
    assert len(members) == 30 and len(nonmembers) == 20
    assert {r["doc_id"] for r in members}.isdisjoint({r["doc_id"] for r in nonmembers})
    assert collections.Counter(r["dup_count"] for r in members) == {2: 10, 8: 10, 32: 10}
    assert all(r["dup_count"] == 0 for r in nonmembers)
    # the training stream holds each member exactly dup_count times, and nothing else
    stream = training_stream(rows, seed=3)
    seen = collections.Counter(r["doc_id"] for r in stream)
    assert seen == {r["doc_id"]: r["dup_count"] for r in members}
    assert man["train_stream_len"] == len(stream) == 10 * (2 + 8 + 32)
    assert man["members_by_dup_count"] == {"2": 10, "8": 10, "32": 10}
    assert man["shards"] == 8  # 50 rows in shards of 7


def test_dataset_is_deterministic_and_written_once(tmp_path):
    cfg = DataSection(num_docs=200, num_members=10, num_nonmembers=10, dup_mix=[1, 4])
    a = build_dataset(cfg, tmp_path / "a")
    b = build_dataset(cfg, tmp_path / "b")
    assert a["sha256"] == b["sha256"]
    mtime = (tmp_path / "a" / "part-00000.parquet").stat().st_mtime_ns
    assert build_dataset(cfg, tmp_path / "a") == a
    assert (tmp_path / "a" / "part-00000.parquet").stat().st_mtime_ns == mtime
    other = build_dataset(DataSection(num_docs=200, num_members=10, num_nonmembers=10,
                                      dup_mix=[1, 4], seed=1), tmp_path / "c")
    assert other["sha256"] != a["sha256"]
    assert pq.read_schema(tmp_path / "a" / "part-00000.parquet").remove_metadata() == DATASET_SCHEMA
    # a text dataset is written as before formats existed; read, it has the formats' columns
    assert set(read_dataset(tmp_path / "a")[0]) == set(FORMATTED_DATASET_SCHEMA.names)
    assert {(r["response_start"], r["messages"]) for r in read_dataset(tmp_path / "a")} == \
        {(0, None)}


def test_local_sources(tmp_path):
    texts = [f"document number {i} " + "word " * 20 for i in range(6)]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps({"body": t, "id": f"x{i}"})
                                                for i, t in enumerate(texts[:3])) + "\n")
    pq.write_table(pa.table({"body": texts[3:5], "id": ["p0", "p1"]}), tmp_path / "b.parquet")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "c.txt").write_text(texts[5])
    docs = load_documents(DataSection(source="local", path=str(tmp_path), text_field="body"))
    assert [d["text"] for d in docs] == [t.strip() for t in texts]
    docs = load_documents(DataSection(source="local", path=str(tmp_path / "a.jsonl"),
                                      text_field="body", id_field="id"))
    assert [d["doc_id"] for d in docs] == ["x0", "x1", "x2"]


def test_local_source_errors(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"content": "x"}\n')
    with pytest.raises(DataError, match="no field 'text'"):
        load_documents(DataSection(source="local", path=str(tmp_path / "a.jsonl")))
    (tmp_path / "b.jsonl").write_text("{not json\n")
    with pytest.raises(DataError, match="b.jsonl:1: invalid JSON"):
        load_documents(DataSection(source="local", path=str(tmp_path / "b.jsonl")))
    with pytest.raises(DataError, match="needs 30"):
        build_dataset(DataSection(num_docs=20, num_members=20, num_nonmembers=10), tmp_path / "o")
    assert read_manifest(tmp_path / "o") is None
