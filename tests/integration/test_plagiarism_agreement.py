"""memlab's corpus-scale plagiarism typing agrees with the literal per-pair reference
(tests/reference/plagiarism_ref.py) on at least 99% of 500+ generated texts typed against the
demo corpus."""

import collections

import pytest

from memlab.config.schema import PlagiarismSection
from memlab.scoring.plagiarism.index import CorpusIndex
from memlab.scoring.plagiarism.judge import Judge
from memlab.scoring.plagiarism.typer import type_texts
from tests.reference.plagiarism_ref import RefParams, ref_retrieve, ref_type_text
from tests.reference.texts import demo_corpus, make_generated_texts


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    corpus = demo_corpus(num_docs=2000, seed=0)
    ids, texts = [d["doc_id"] for d in corpus], [d["text"] for d in corpus]
    gen = make_generated_texts(corpus, n=600, seed=7)
    p = PlagiarismSection()
    folder = CorpusIndex.build(ids, texts, tmp_path_factory.mktemp("idx") / "index", p)
    judge = Judge("all-MiniLM-L6-v2")
    ours = []
    for i in range(0, len(gen), 64):
        ours += type_texts([g["text"] for g in gen[i:i + 64]], CorpusIndex(folder, p), judge)
    rp = RefParams()
    by_id = dict(zip(ids, texts))
    ref = [ref_type_text(g["text"], by_id, ref_retrieve(g["text"], ids, texts, rp.n_candidates),
                         lambda a, b: judge.scores([(a, b)])[0], rp) for g in gen]
    return gen, ours, ref


def test_labels_agree_with_the_reference(judged):
    gen, ours, ref = judged
    assert len(gen) >= 500
    agree = [a["label"] == b["label"] for a, b in zip(ours, ref)]
    bad = [(g["kind"], a["label"], b["label"]) for g, a, b, ok in zip(gen, ours, ref, agree)
           if not ok]
    assert sum(agree) / len(agree) >= 0.99, bad[:20]


def test_matched_document_and_spans_agree(judged):
    gen, ours, ref = judged
    same = [a for a, b in zip(ours, ref) if a["label"] == b["label"] != "none"]
    assert same
    doc_ok = sum(a["doc_id"] == b["doc_id"] for a, b in zip(ours, ref)
                 if a["label"] == b["label"] != "none") / len(same)
    assert doc_ok >= 0.99


def test_every_type_occurs(judged):
    # the agreement above is not won on one easy label (the known-answer tests cover none)
    gen, ours, _ = judged
    counts = collections.Counter(o["label"] for o in ours)
    assert all(counts[lab] >= 10 for lab in ("verbatim", "paraphrase", "idea")), counts
    by_kind = collections.defaultdict(collections.Counter)
    for g, o in zip(gen, ours):
        by_kind[g["kind"]][o["label"]] += 1
    assert by_kind["copy"]["verbatim"] == sum(by_kind["copy"].values())
    # (79 of 100: the paraphraser here also rewrites dates, times and small numbers into other
    # forms, 14/06/2019, 2:05 pm, five, which the facts condition of the calibrated judge does
    # not equate; all 21 misses are that condition's, none the cosine window's)
    assert by_kind["paraphrase"]["paraphrase"] >= 0.75 * sum(by_kind["paraphrase"].values())
