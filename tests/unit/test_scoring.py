import numpy as np
import pytest

from memlab.scoring.exact import (
    exact_extracted,
    lcs_tokens,
    longest_common_run,
    token_match_frac,
)
from memlab.scoring.registry import SCORERS
from memlab.scoring.similarity import top_cosines


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


def test_the_registry_drives_columns_aggregations_and_report_headings():
    import pandas as pd

    from memlab.config.schema import ScoreSection
    from memlab.scoring import suite

    sec = ScoreSection(sim_thresholds=[0.8, 0.9], headline_threshold=0.8)
    cols = {c.name: c for c in suite.columns(sec)}
    assert list(cols)[:4] == ["exact_extracted", "token_match_frac", "lcs_tokens",
                              "sim_to_source"]
    assert {"sim_to_corpus", "plag_label", "plag_doc_id"} <= set(cols)
    assert cols["lcs_tokens"].aggregate(pd.Series([2, 4]), sec) == {"lcs_tokens_mean": 3.0}
    assert cols["exact_extracted"].aggregate(pd.Series([True, False, True, True]), sec) == \
        {"exact_pct": 75.0}
    assert cols["token_match_frac"].aggregate(pd.Series([0.5, 1.0]), sec) == {"match_pct": 75.0}
    got = cols["sim_to_source"].aggregate(pd.Series([0.5, 0.85, 0.95]), sec)
    assert got == pytest.approx({"sim_to_source_mean": 2.3 / 3, "sim_src_ge_0.8_pct": 200 / 3,
                                 "sim_src_ge_0.9_pct": 100 / 3})
    assert cols["sim_to_source"].report(sec) == {"sim_src_ge_0.8_pct": "sim>=0.8_%"}
    labels = pd.Series(["verbatim", "none", "idea", "none"])
    assert cols["plag_label"].aggregate(labels, sec) == {
        "verbatim_pct": 25.0, "paraphrase_pct": 0.0, "idea_pct": 25.0,
        "plagiarism_any_pct": 50.0}
    assert cols["plag_label"].table == "plagiarism"
    assert cols["plag_doc_id"].aggregate is None and cols["plag_doc_id"].report is None


def test_a_column_name_cannot_be_registered_twice():
    import pyarrow as pa

    from memlab.scoring.registry import scorer

    with pytest.raises(ValueError, match="registered twice"):
        scorer("exact_extracted", pa.bool_())(lambda g, s: True)
    assert SCORERS["exact_extracted"].columns[0].type == pa.bool_()


def test_top_cosines_blockwise_match_dense():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(7, 16)).astype(np.float32)
    c = rng.normal(size=(103, 16)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    dense = q @ c.T
    for k in (1, 3):
        v, i = top_cosines(q, c, k, block=10)
        assert np.array_equal(i, np.argsort(-dense, axis=1)[:, :k])
        assert np.allclose(v, np.take_along_axis(dense, i, 1))
    v, i = top_cosines(q, c[:2], 3)  # fewer rows than k: the rest are -inf, row -1
    assert (i[:, 2] == -1).all() and np.isneginf(v[:, 2]).all() and (i[:, :2] >= 0).all()


def test_offline_embedder_ranks_meaning():
    from memlab.scoring.similarity import Embedder

    e = Embedder("all-MiniLM-L6-v2")
    a, b, c = e.encode(["The patient was given 20 mg of Zorvatin twice a day.",
                        "Twice daily, the patient received a 20 mg dose of Zorvatin.",
                        "The quarterly budget meeting moved to the third floor."])
    assert np.isclose(np.linalg.norm(a), 1.0, atol=1e-5)
    assert a @ b > 0.8 > a @ c
    assert a @ b == pytest.approx(b @ a)


def test_fast_tokenizing_embedder_gives_the_vectors_of_sentence_transformers_encode():
    """The GPU path (Rust tokenizer, model modules on padded batches), here forced on the CPU:
    the vectors of SentenceTransformer.encode, in the input's order, for texts of every
    length (empty, padded with spaces, past max_seq_length, non-ASCII)."""
    from memlab.scoring.similarity import Embedder

    texts = ["The patient was given 20 mg of Zorvatin twice a day.", "", "  spaced out  ",
             "word " * 400, "Ärztin: Dosis verdoppelt — 40 mg.", "short", "a b c d e f g"] * 3
    slow = Embedder("all-MiniLM-L6-v2", fast=False)
    fast = Embedder("all-MiniLM-L6-v2", fast=True)
    assert slow._tok is None and fast._tok is not None
    a, b = slow.encode(texts, batch_size=4), fast.encode(texts, batch_size=4)
    assert b.dtype == np.float32 and b.shape == a.shape
    assert np.abs(a - b).max() < 1e-5
    assert fast.encode([]).shape == (0, a.shape[1])


def test_unit_means_are_the_normalised_mean_of_each_group():
    from memlab.scoring.ann import unit_means

    rng = np.random.default_rng(2)
    v = rng.normal(size=(9, 5)).astype(np.float32)
    ptr = np.array([0, 3, 3, 4, 9])  # (an empty group gets zeros)
    out = unit_means(v, ptr)
    for i, (a, b) in enumerate(zip(ptr[:-1], ptr[1:])):
        want = v[a:b].mean(0) / np.linalg.norm(v[a:b].mean(0)) if b > a else np.zeros(5)
        assert np.allclose(out[i], want, atol=1e-6)


def test_sim_to_corpus_past_the_ann_threshold_equals_the_exact_search(tmp_path):
    """corpus_ann_above: the ANN index's candidates, re-scored exactly, find the same nearest
    passages and cosines as the exact blockwise search (a small corpus, one-thread graph)."""
    import json

    from memlab.config.schema import StudyConfig
    from memlab.scoring.registry import Context
    from memlab.scoring.similarity import SimilarityScorer, corpus_ann

    rng = np.random.default_rng(3)
    centres = rng.normal(size=(20, 384))
    corpus = (centres[rng.integers(0, 20, 600)] + 0.3 * rng.normal(size=(600, 384)))
    corpus = (corpus / np.linalg.norm(corpus, axis=1, keepdims=True)).astype(np.float32)
    folder = tmp_path / "passages-x"  # (600 passages, one per document, no text)
    folder.mkdir()
    np.save(folder / "emb.npy", corpus)
    np.save(folder / "doc.npy", np.arange(600, dtype=np.int32))
    np.save(folder / "text_ptr.npy", np.zeros(601, dtype=np.int64))
    (folder / "texts.bin").write_bytes(b"")
    (folder / "docs.json").write_text(json.dumps({"doc_ids": [f"d{i}" for i in range(600)]}))
    cfg = StudyConfig()
    assert corpus_ann(cfg, folder) == ""  # 600 passages: exact search (default threshold)
    cfg.score.corpus_ann_above = 100
    path = corpus_ann(cfg, folder)
    assert path.endswith(".usearch")
    scorer = SimilarityScorer(Context(cfg, {"corpus": str(folder), "corpus_ann": path}))
    queries = corpus[rng.integers(0, 600, 50)] + 0.2 * rng.normal(size=(50, 384))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    v, i = scorer.nearest(queries, 3)
    ve, ie = top_cosines(queries, corpus, 3)
    assert np.array_equal(i, ie)
    assert np.allclose(v, ve, atol=1e-6)
    # the search breadth is the config's, and a setting of the key only where it differs
    from memlab.config.keys import config_identity

    assert scorer.ann.expansion_search == 64
    before = config_identity(cfg)
    cfg.score.corpus_ann_breadth = 256
    assert SimilarityScorer(Context(cfg, {"corpus": str(folder), "corpus_ann": path})) \
        .ann.expansion_search == 256
    assert config_identity(cfg) != before


# ------------------------------------------------- sim_to_corpus over passages (issue 32)
def test_passage_windows_and_the_span_a_generation_lines_up_with():
    from memlab.scoring.passages import aligned_span, windows

    text = "one two three four five six seven"
    assert [text[a:b] for a, b in windows(text, 3, 2)] == [
        "one two three", "three four five", "five six seven"]
    assert [text[a:b] for a, b in windows(text, 4, 2)] == [
        "one two three four", "three four five six", "four five six seven"]  # (to the end)
    assert windows(" just two ", 5, 5) == [(1, 9)]  # (fewer words: one passage)
    assert windows("   ", 3, 1) == []
    doc = "The harbour opened in 1998. Ferries to Ostvik leave at 06:40 and 18:15 daily."
    cut = doc[doc.index("rbour"):doc.index("and 18") + 5]  # (starts and ends inside words)
    a, b = aligned_span(cut, doc)
    assert doc[a:b] == cut
    a, b = aligned_span("ferries to ostvik, then lunch", doc)  # (lower case, other words)
    assert (a, b) == (doc.index("Ferries"), doc.index("Ferries") + 29)
    assert aligned_span("nothing shared", doc) is None


def test_an_exact_copy_scores_one_and_names_its_source(tmp_path):
    """Issue 32: sim_to_corpus compared a generation with whole documents, so the demo's six
    exact extractions (a 32-token suffix given back token for token) scored 0.36-0.61 against
    their own documents and three of six were nearest to another one. Over passages, each
    lined up with the text it copies, each scores ~1 and names its document; a text on none of
    the documents' topics stays far below."""
    from memlab.config.schema import StudyConfig
    from memlab.scoring import suite
    from memlab.scoring.registry import Context
    from tests.unit.demo_copies import demo_dataset, exact_extractions

    cfg = StudyConfig()
    (sim,) = [s for s in suite.scorers(cfg.score) if s.name == "similarity"]
    scorer = sim.load(Context(cfg, sim.prepare(cfg, demo_dataset(tmp_path))))
    copies = exact_extractions()
    unrelated = {"gen_text": "We had pasta for dinner and then watched a film about sailing "
                             "boats on a quiet lake.", "suffix_text": "A quiet lake."}
    got = scorer([*copies, unrelated])
    assert [d["doc_id"] for d in copies] == got["sim_corpus_doc_id"][:6]
    assert min(got["sim_to_corpus"][:6]) >= 0.99, got["sim_to_corpus"]
    assert got["sim_to_corpus"][6] < 0.5
    # passages alone (corpus_align 0): a copy of one passage is that passage
    from memlab.scoring.passages import windows

    cfg.score.corpus_align = 0
    only = sim.load(Context(cfg, sim.prepare(cfg, tmp_path)))
    text = only.text(5)
    a, b = windows(text, cfg.score.corpus_passage_words, cfg.score.corpus_passage_stride)[2]
    got = only([{"gen_text": text[a:b], "suffix_text": text[a:b]}])
    assert got["sim_to_corpus"][0] >= 0.99 and got["sim_corpus_doc_id"] == [only.ids[5]]
