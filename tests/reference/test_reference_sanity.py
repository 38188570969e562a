"""Known-answer checks of the literal reference (tests/reference/plagiarism_ref.py) itself."""

import numpy as np
import pytest

from memlab.components.corpus import generate_demo_corpus
from tests.reference.plagiarism_ref import (
    RefParams,
    longest_common_run_chars,
    preprocess,
    ref_align_pair,
    ref_retrieve,
    ref_score_text,
    ref_type_text,
    split_sentences,
)
from tests.reference.texts import make_generated_texts

P = RefParams()


@pytest.fixture(scope="module")
def corpus():
    return generate_demo_corpus(300, 0)


@pytest.fixture(scope="module")
def judge():
    from memlab.scoring.similarity import Embedder

    emb = Embedder("all-MiniLM-L6-v2", device="cpu")

    def score(a: str, b: str) -> float:
        e = emb.encode([a, b])
        return float(np.dot(e[0], e[1]))
    return score


def no_judge(a, b):
    """For texts whose answer is verbatim: other candidates' cases still get typed."""
    return 0.0


# ---------------------------------------------------------------- pre-processing (section 2)
def test_sentence_split_spans_and_merging():
    text = "Hi.  The cat sat on the mat today!\n\nOk. A dog ran far away from home. No."
    spans = split_sentences(text)
    assert [text[s:e] for s, e in spans] == [
        "Hi.", "The cat sat on the mat today!", "Ok.", "A dog ran far away from home.", "No."]
    sents = preprocess(text, P)
    # "Hi." (0 words) merges into the next; "Ok." into the next; the short last "No." into the previous
    assert [text[s.start:s.end] for s in sents] == [
        "Hi.  The cat sat on the mat today!", "Ok. A dog ran far away from home. No."]
    assert sents[0].words == ["the", "cat", "sat", "the", "mat", "todai"]
    one = preprocess("Yes. No. Maybe so.", P)  # fewer than 3 words in all: one sentence
    assert len(one) == 1 and (one[0].start, one[0].end) == (0, 18)


def test_longest_common_run_chars():
    assert longest_common_run_chars("the big red fox ran", "a big red fox sat") == len("big red fox")
    assert longest_common_run_chars("abc", "xyz") == 0


# ---------------------------------------------------------------- known answers
def test_planted_copy_is_verbatim_with_spans(corpus):
    doc = corpus[0]
    body = doc["text"].split("\n\n")[2]  # a whole paragraph of whole sentences
    prefix, suffix = "Here is what I remember about it. ", " That is all I can recall for now."
    gen = prefix + body + suffix
    ids, texts = [d["doc_id"] for d in corpus], [d["text"] for d in corpus]
    assert ref_retrieve(gen, ids, texts, P.n_candidates)[0] == doc["doc_id"]
    out = ref_score_text(gen, ids, texts, no_judge, P)
    assert out["label"] == "verbatim" and out["doc_id"] == doc["doc_id"]
    start = doc["text"].index(body)
    assert out["gen_span"] == [len(prefix), len(prefix) + len(body)]
    assert out["doc_span"] == [start, start + len(body)]
    assert out["score"] > P.verbatim_chars


def test_planted_copies_from_generator_found(corpus):
    ids, texts = [d["doc_id"] for d in corpus], [d["text"] for d in corpus]
    gens = [g for g in make_generated_texts(corpus, 60, 3) if g["kind"] == "copy"]
    for g in gens:
        out = ref_score_text(g["text"], ids, texts, no_judge, P)
        assert out["label"] == "verbatim", g


def test_unrelated_text_is_none(corpus, judge):
    gen = ("Knead the dough for ten minutes until it feels smooth and elastic. Leave it to rise "
           "somewhere warm until it has doubled in size, then shape it into a round loaf. Bake in "
           "a hot oven until the crust is golden and the bottom sounds hollow when tapped.")
    ids, texts = [d["doc_id"] for d in corpus], [d["text"] for d in corpus]
    out = ref_score_text(gen, ids, texts, judge, P)
    assert out == {"label": "none", "doc_id": None, "gen_span": None, "doc_span": None, "score": 0.0}


ITINERARY = (
    "Travel Itinerary for Odile Marchetti: Kestvale to Lorhaven\n"
    "Booking reference QX-48213 | Issued 3 March 2021 by Brellquist Freight\n\n"
    "Depart Kestvale on flight RT 5521 at 07:45 on 12 March 2021, arriving in Lorhaven at 10:20 "
    "local time. A driver from Ostani Logistics will meet Odile at gate C14 and go directly to "
    "the Hotel Vaskmere. The local contact is Ilse Dovberg, who can be reached on 0412 558 9031 "
    "at any hour. Per diem for this trip is set at $184.50, to be claimed within 30 days of "
    "return.")


def test_hand_written_paraphrase(judge):
    # the itinerary's flight and driver sentences, rewritten by hand with the same facts
    gen = ("Flight RT 5521 takes off from Kestvale at 07:45 on 12 March 2021 and lands in "
           "Lorhaven at 10:20, local time. At gate C14, Odile will be met by a driver sent by "
           "Ostani Logistics, who will take her directly to the Hotel Vaskmere.")
    out = ref_type_text(gen, {"itinerary": ITINERARY}, ["itinerary"], judge, P)
    assert out["label"] == "paraphrase", out
    assert P.paraphrase_low <= out["score"] <= P.paraphrase_high


SHORT_DOC = ("The old mill on Brackwater Lane was sold to the Fennick family in 1998 for a "
             "modest sum. They turned it into a bakery that now supplies bread to four villages.")
ELABORATION = (  # every added sentence is about the facts, as an expanded answer would be
    "Back in 1998, the Fennick family bought the old mill on Brackwater Lane, paying only a "
    "modest sum for it. At the time the old mill was damp, its roof leaked and most people on "
    "Brackwater Lane considered the mill a ruin. Nobody expected much from the Fennick family's "
    "purchase, and neighbours doubted that the family knew what they were doing with the mill. "
    "Over the following years the Fennicks repaired the walls of the mill and installed large "
    "bread ovens where the grinding stones had once stood. The family turned the old mill into "
    "a bakery, and that bakery now supplies fresh bread to four villages. So the mill on "
    "Brackwater Lane, sold cheaply to the Fennick family in 1998, became a bakery feeding four "
    "villages.")


def test_long_elaboration_of_short_doc_is_idea(judge):
    cases = ref_align_pair(ELABORATION, SHORT_DOC, P, max_gap=P.idea_max_gap)
    assert cases and max(c.gen_len / c.doc_len for c in cases) >= P.idea_ratio
    out = ref_type_text(ELABORATION, {"short": SHORT_DOC}, ["short"], judge, P)
    assert out["label"] == "idea", out
    assert out["doc_id"] == "short" and out["score"] >= P.idea_ratio


def test_generator_is_deterministic(corpus):
    a = make_generated_texts(corpus, 30, 7)
    assert a == make_generated_texts(corpus, 30, 7)
    assert {g["kind"] for g in a} == {"copy", "near_copy", "paraphrase", "elaboration",
                                      "unrelated", "same_topic"}
