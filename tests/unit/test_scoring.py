import numpy as np
import pytest

from memlab.scoring.exact import (
    exact_extracted,
    lcs_tokens,
    longest_common_run,
    token_match_frac,
)
from memlab.scoring.registry import SCORERS
from memlab.scoring.similarity import max_cosine


def test_exact_extraction_known_answers():
    suffix = [5, 6, 7, 8]
    assert exact_extracted([5, 6, 7, 8, 99, 100], suffix)
    assert not exact_extracted([5, 6, 7, 9], suffix)
    assert not exact_extracted([5, 6, 7], suffix)  # too short
    assert not exact_extracted([1, 2], [])
    assert token_match_frac([5, 0, 7, 0], suffix) == 0.5
    assert token_match_frac([5, 6], suffix) == 0.5
    assert token_match_frac([0, 5, 6, 7], suffix) == 0.0  # shifted: positions differ


def test_longest_common_run():
    assert longest_common_run([1, 2, 3, 4, 5], [9, 2, 3, 4, 8]) == 3
    assert longest_common_run([0, 5, 6, 7], [5, 6, 7, 8]) == 3
    assert longest_common_run([1, 1, 1], [2, 2]) == 0
    assert longest_common_run([], [1]) == 0
    assert lcs_tokens([7, 7, 7, 7], [7, 7]) == 2
    rng = np.random.default_rng(0)
    for _ in range(50):  # agrees with a brute-force search
        a, b = rng.integers(0, 4, 12).tolist(), rng.integers(0, 4, 9).tolist()
        brute = max((k for i in range(len(a)) for j in range(len(b)) for k in range(1, 13)
                     if a[i:i + k] == b[j:j + k] and len(a[i:i + k]) == k), default=0)
        assert longest_common_run(a, b) == brute


def test_registry_metadata():
    assert SCORERS["exact_extracted"].aggregation == "rate"
    assert not SCORERS["lcs_tokens"].higher_is_better


def test_max_cosine_blockwise_matches_dense():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(7, 16)).astype(np.float32)
    c = rng.normal(size=(103, 16)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    v, i = max_cosine(q, c, block=10)
    dense = q @ c.T
    assert np.array_equal(i, dense.argmax(1))
    assert np.allclose(v, dense.max(1))


def test_offline_embedder_ranks_meaning():
    from memlab.scoring.similarity import Embedder

    e = Embedder("all-MiniLM-L6-v2")
    a, b, c = e.encode(["The patient was given 20 mg of Zorvatin twice a day.",
                        "Twice daily, the patient received a 20 mg dose of Zorvatin.",
                        "The quarterly budget meeting moved to the third floor."])
    assert np.isclose(np.linalg.norm(a), 1.0, atol=1e-5)
    assert a @ b > 0.8 > a @ c
    assert a @ b == pytest.approx(b @ a)
