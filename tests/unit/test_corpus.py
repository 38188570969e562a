"""Tests for the built-in synthetic demo corpus."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from memlab.components.corpus import generate_demo_corpus

REPO_ROOT = Path(__file__).resolve().parents[2]
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    return generate_demo_corpus(2400, seed=0)


def test_same_seed_same_output(corpus: list[dict]) -> None:
    assert generate_demo_corpus(2400, seed=0) == corpus


def test_different_seed_different_output() -> None:
    a = [d["text"] for d in generate_demo_corpus(50, seed=0)]
    b = [d["text"] for d in generate_demo_corpus(50, seed=1)]
    assert not set(a) & set(b)


def test_deterministic_across_processes(corpus: list[dict]) -> None:
    # str hash() is salted per process; the corpus must not depend on it.
    code = (
        "import hashlib, json; from memlab.components.corpus import generate_demo_corpus; "
        "print(hashlib.sha256(json.dumps(generate_demo_corpus(2400, 0)).encode()).hexdigest())"
    )
    expected = hashlib.sha256(json.dumps(corpus).encode()).hexdigest()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env,
                             capture_output=True, text=True, check=True)
        assert out.stdout.strip() == expected


def test_schema_and_doc_ids(corpus: list[dict]) -> None:
    assert len(corpus) == 2400
    for i, doc in enumerate(corpus):
        assert set(doc) == {"doc_id", "text", "genre"}
        assert doc["doc_id"] == f"demo-{i:05d}"
        assert all(isinstance(v, str) for v in doc.values())
    assert len({d["doc_id"] for d in corpus}) == len(corpus)


def test_shorter_corpus_is_prefix(corpus: list[dict]) -> None:
    assert generate_demo_corpus(37, seed=0) == corpus[:37]
    assert generate_demo_corpus(0, seed=0) == []


def test_texts_distinct(corpus: list[dict]) -> None:
    assert len({d["text"] for d in corpus}) >= 2000


def test_min_words_and_ascii(corpus: list[dict]) -> None:
    counts = [len(d["text"].split()) for d in corpus]
    assert min(counts) >= 130
    assert max(counts) <= 320
    assert all(d["text"].isascii() for d in corpus)


def test_at_least_ten_genres(corpus: list[dict]) -> None:
    assert len({d["genre"] for d in corpus}) >= 10
    assert len({d["genre"] for d in generate_demo_corpus(12, seed=3)}) >= 10


def test_no_long_sentence_shared_by_many_docs(corpus: list[dict]) -> None:
    doc_freq: Counter[str] = Counter()
    for doc in corpus:
        sentences = {s.strip() for s in _SENTENCE_SPLIT.split(doc["text"])}
        doc_freq.update(s for s in sentences if len(s.split()) > 8)
    limit = 0.05 * len(corpus)
    offenders = [s for s, n in doc_freq.items() if n > limit]
    assert offenders == []
