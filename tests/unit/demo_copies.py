"""The demo's exact extractions (issue 32), as known answers for the scorers: the 24 member
documents of `make demo` at 91b2bea and the six samples of its full fine-tuning trial whose
32-token suffix came back token for token (tests/fixtures/demo_*.jsonl)."""

import json
from pathlib import Path

import pyarrow as pa

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _jsonl(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines()]


def exact_extractions() -> list[dict]:
    """Generation rows (doc_id, split, suffix_ids, gen_ids, suffix_text, gen_text)."""
    return _jsonl("demo_exact_extractions.jsonl")


def demo_dataset(folder: Path) -> Path:
    """The demo's member documents as a dataset shard in `folder`."""
    from memlab.io.shards import DATASET_SCHEMA, write_shard

    rows = [{**d, "split": "member", "dup_count": 1} for d in _jsonl("demo_members.jsonl")]
    write_shard(pa.Table.from_pylist(rows, schema=DATASET_SCHEMA),
                Path(folder) / "part-00000.parquet", DATASET_SCHEMA)
    return Path(folder)
