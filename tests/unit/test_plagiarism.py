"""Known-answer tests of plagiarism typing (METRICS.md section 2, PLAGIARISM.md): each text
is a fair example of its type, and each assertion can fail."""

import json
import subprocess

import numpy as np
import pyarrow.parquet as pq
import pytest

from memlab.components.corpus import generate_demo_corpus
from memlab.config.schema import PlagiarismSection
from memlab.scoring.plagiarism.align import longest_common_word_run
from memlab.scoring.plagiarism.index import CorpusIndex, SemanticIndex
from memlab.scoring.plagiarism.judge import Judge
from memlab.scoring.plagiarism.text import split_sentences
from memlab.scoring.plagiarism.typer import type_texts
from tests.conftest import ROOT

ARCHIVIST = ("Mirela Dovant was appointed chief archivist of the Tessaly Library in March 2011. "
             "During her first year she catalogued 4,200 hand-drawn maps of the northern valleys.")
AUDIT = ("The quarterly audit of the Brennick warehouse found that 312 pallets of copper wire "
         "were missing from the loading bay. Inspector Halvard Osk traced the loss to a forged "
         "delivery note that had been signed on 4 June 2019.")
PARAPHRASE = ("Inspector Halvard Osk discovered that a delivery note, forged and signed on "
              "4 June 2019, explained the loss. Auditors at the Brennick warehouse, in their "
              "quarterly check, noticed that 312 pallets of copper wire had gone from the "
              "loading bay.")
ELABORATION = (
    "The story of the Tessaly Library changed in March 2011, when Mirela Dovant was named its "
    "chief archivist. Before then the library had no one in charge of its collections. "
    "Visitors often complained that nothing could be found on the shelves. Dovant arrived "
    "with a plan and a small team of volunteers. She spent her mornings sorting boxes and her "
    "evenings writing labels. Local schools sent students to help on weekends. A regional "
    "newspaper ran a long feature about the project. By the end of that first year Dovant had "
    "catalogued some 4,200 maps, all drawn by hand, covering the northern valleys. Historians "
    "still consult those catalogues today.")
SAME_TOPIC = ("Warehouse audits are routine at most logistics firms. Auditors count the stock on "
              "the shelves and compare it with the delivery records kept by the office.")
UNRELATED = "We had pasta for dinner and then watched a film about sailing boats on a quiet lake."


@pytest.fixture(scope="module")
def corpus():
    docs = generate_demo_corpus(300, seed=0)
    docs += [{"doc_id": "archivist", "text": ARCHIVIST}, {"doc_id": "audit", "text": AUDIT}]
    return docs


@pytest.fixture(scope="module")
def typer(corpus, tmp_path_factory):
    p = PlagiarismSection()
    folder = tmp_path_factory.mktemp("idx") / "index"
    CorpusIndex.build([d["doc_id"] for d in corpus], [d["text"] for d in corpus], folder, p)
    index, judge = CorpusIndex(folder, p), Judge("all-MiniLM-L6-v2")
    return lambda texts: type_texts(texts, index, judge)


def test_planted_copy_is_verbatim_with_doc_and_spans(typer, corpus):
    doc = corpus[17]
    start = doc["text"].index(". ") + 2  # a passage starting at a sentence boundary
    passage = doc["text"][start:start + 140]
    passage = passage[:passage.rindex(" ")]
    assert len(passage) >= 60
    prefix = "The parking lot was repainted over the weekend by the facilities crew. "
    gen = prefix + passage + " Nobody remembered who had ordered the new signs."
    (r,) = typer([gen])
    assert r["label"] == "verbatim"
    assert r["doc_id"] == doc["doc_id"]
    gs, ge = r["gen_span"]
    ds, de = r["doc_span"]
    overlap = lambda a0, a1, b0, b1: min(a1, b1) - max(a0, b0)  # noqa: E731
    assert overlap(gs, ge, len(prefix), len(prefix) + len(passage)) >= 60  # on the copy...
    assert overlap(ds, de, start, start + len(passage)) >= 60  # ... and on its source
    assert passage[:40] in doc["text"][ds:de] and passage[:40] in gen[gs:ge]
    assert r["score"] > 50


def test_hand_written_paraphrase(typer):
    (r,) = typer([PARAPHRASE])
    assert r["label"] == "paraphrase" and r["doc_id"] == "audit"
    assert 0.5 <= r["score"] <= 0.99


def test_long_elaboration_of_a_short_document_is_idea(typer):
    (r,) = typer([ELABORATION])
    assert r["label"] == "idea" and r["doc_id"] == "archivist"
    gs, ge = r["gen_span"]
    ds, de = r["doc_span"]
    assert ge - gs >= 3 * (de - ds)


@pytest.mark.parametrize("text", [UNRELATED, SAME_TOPIC], ids=["unrelated", "same_topic"])
def test_no_shared_source_is_none(typer, text):
    (r,) = typer([text])
    assert r == {"label": "none", "doc_id": None, "gen_span": None, "doc_span": None,
                 "score": 0.0, "gen_chars": None, "doc_chars": None, "run_chars": None,
                 "judge_score": None}


def test_batch_equals_one_by_one(typer):
    texts = [PARAPHRASE, UNRELATED, ELABORATION, SAME_TOPIC]
    assert typer(texts) == [typer([t])[0] for t in texts]


def test_preprocessing_merges_short_sentences_and_keeps_spans():
    text = "Yes. The archive opened in 1999 with nine rooms. It grew fast! Then it closed."
    sents = split_sentences(text, 3, str)
    assert [text[s:e] for s, e, _ in sents] == [
        "Yes. The archive opened in 1999 with nine rooms.", "It grew fast! Then it closed."]
    assert sents[0][2] == ["yes", "the", "archive", "opened", "1999", "with", "nine", "rooms"]


def test_longest_common_word_run_counts_characters():
    a = "the red fox jumped over the lazy dog today"
    b = "a red fox jumped over a lazy dog"
    assert longest_common_word_run(a, b) == len("red fox jumped over")
    assert longest_common_word_run("abc", "xyz") == 0


def test_cli_types_files(tmp_path, memlab_cmd, corpus):
    with open(tmp_path / "corpus.jsonl", "w") as f:
        for d in corpus:
            f.write(json.dumps({"doc_id": d["doc_id"], "text": d["text"]}) + "\n")
    with open(tmp_path / "gen.jsonl", "w") as f:
        for i, t in enumerate([PARAPHRASE, UNRELATED, ELABORATION]):
            f.write(json.dumps({"id": f"g{i}", "text": t}) + "\n")
    r = subprocess.run([*memlab_cmd, "plagiarism", "--corpus", str(tmp_path / "corpus.jsonl"),
                        "--generated", str(tmp_path / "gen.jsonl"),
                        "--out", str(tmp_path / "out.parquet")],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    rows = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert [(x["id"], x["label"], x["doc_id"]) for x in rows] == [
        ("g0", "paraphrase", "audit"), ("g1", "none", None), ("g2", "idea", "archivist")]
    bad = subprocess.run([*memlab_cmd, "plagiarism", "--corpus", str(tmp_path / "gen.jsonl"),
                          "--generated", str(tmp_path / "gen.jsonl"),
                          "--out", str(tmp_path / "o.jsonl")],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "no column 'doc_id'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_bm25_retrieval_never_imports_jax(tmp_path):
    """Where JAX is installed, bm25s imports it (and runs a top-k with it) unless memlab pins
    its numpy backend: a JAX on the path that records its import is never imported by
    building an index and retrieving from it."""
    import sys

    fake = tmp_path / "site" / "jax"
    fake.mkdir(parents=True)
    marker = tmp_path / "jax-imported"
    (fake / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('yes')\n")
    (fake / "lax.py").write_text("def top_k(x, k):\n    raise RuntimeError('jax top-k')\n")
    code = (
        "import sys\n"
        "from memlab.config.schema import PlagiarismSection\n"
        "from memlab.scoring.plagiarism.index import CorpusIndex, ensure_index\n"
        "p = PlagiarismSection()\n"
        f"f = ensure_index(['a', 'b'], ['The red fox ran far away.', 'A blue whale sang.'], "
        f"{str(tmp_path / 'idx')!r}, p)\n"
        "got = CorpusIndex(f, p).retrieve(['a red fox'])\n"
        "assert got[0][0] == 0, got\n"
        "assert 'jax' not in sys.modules\n")
    env = {"PYTHONPATH": f"{tmp_path / 'site'}:{ROOT}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert not marker.exists()


# ---------------------------------------------------------------- method=semantic
# Reuse written in other words than the source's: the literal seeding of the published
# pipeline finds no sentence pair to start from.
REWORDED = ("The shortfall was pinned by Inspector Halvard Osk on a counterfeit delivery slip "
            "bearing the date 4 June 2019. At Brennick, the three-monthly stock check revealed "
            "that 312 pallets of copper cable had disappeared from the loading dock.")
REWORKED_IDEA = (
    "In March 2011 the Tessaly Library gave Mirela Dovant the post of head archivist. People "
    "in town remember that spring well. The reading room was reopened and the heating was "
    "finally repaired. Dovant spent that first twelve months cataloguing 4,200 maps of the "
    "northern valleys, every one of them drawn by hand. Volunteers brought tea and biscuits. "
    "The catalogue she made is still in use.")
# An elaboration that spreads each source sentence over two of its own (issue 35 part 6): no
# single generated sentence stands for the source's second one.
SPREAD_IDEA = (
    "Stock checks happen every quarter. This time the auditors came back with bad news. "
    "Somewhere between the shelves and the loading bay of the Brennick warehouse, 312 pallets "
    "of copper wire had vanished. The staff were questioned one by one, without result, and the "
    "cameras showed nothing. Two drivers were sent home on full pay while the matter was looked "
    "into. Then Inspector Halvard Osk was called in. He went through every document in the "
    "office and found a delivery note that looked genuine at first glance. It had been forged, "
    "and the signature on it was dated 4 June 2019.")


@pytest.fixture(scope="module")
def semantic(corpus, tmp_path_factory):
    p = PlagiarismSection(method="semantic")
    folder = tmp_path_factory.mktemp("sidx") / "index"
    CorpusIndex.build([d["doc_id"] for d in corpus], [d["text"] for d in corpus], folder, p)
    index, judge = CorpusIndex(folder, p), Judge("all-MiniLM-L6-v2")
    sem = SemanticIndex(SemanticIndex.build(index, folder, judge), index)
    def with_settings(texts, **semantic):  # (the same indexes, other semantic settings)
        q = PlagiarismSection(method="semantic")
        for k, v in semantic.items():
            setattr(q.semantic, k, v)
        i = CorpusIndex(folder, q)
        sem_q = SemanticIndex(SemanticIndex.folder(folder, judge.name), i)
        return type_texts(texts, i, judge, sem_q)

    return {"type": lambda texts: type_texts(texts, index, judge, sem), "index": sem,
            "judge": judge, "with": with_settings,
            "pan2014": lambda texts: type_texts(texts, CorpusIndex(
                folder, PlagiarismSection()), judge)}


def test_semantic_finds_reworded_paraphrase_that_pan2014_misses(semantic):
    assert semantic["pan2014"]([REWORDED])[0]["label"] == "none"
    (r,) = semantic["type"]([REWORDED])
    assert r["label"] == "paraphrase" and r["doc_id"] == "audit"


def test_semantic_types_a_reworked_short_source_as_idea(semantic):
    assert semantic["pan2014"]([REWORKED_IDEA])[0]["label"] != "idea"  # (its 1st sentence)
    (r,) = semantic["type"]([REWORKED_IDEA])
    assert r["label"] == "idea" and r["doc_id"] == "archivist"


def test_a_source_sentence_spread_over_two_generated_ones_is_covered_by_a_window(semantic):
    """idea_window (default 2): a run of two generated sentences, embedded as one text, stands
    for a source sentence that no one of them matches alone; with single sentences (1, the
    rule before) the text is only a paraphrase of one sentence pair."""
    assert PlagiarismSection().semantic.idea_window == 2
    (one,) = semantic["with"]([SPREAD_IDEA], idea_window=1)
    assert one["label"] != "idea"
    (r,) = semantic["type"]([SPREAD_IDEA])
    assert r["label"] == "idea" and r["doc_id"] == "audit"
    assert r["score"] >= PlagiarismSection().semantic.idea_ratio
    assert SPREAD_IDEA[r["gen_span"][0]:].startswith("Somewhere between")  # (the passage)


# A short elaboration (1.3 times its source, under idea_ratio) that adds a sentence of its own
# (issue 35 part 6's fourth round): length alone does not tell it from a paraphrase.
SHORT_IDEA = ("The Tessaly Library named Mirela Dovant its chief archivist in March 2011. Its "
              "collections had been left unsorted for a decade. In her first year she "
              "catalogued 4,200 maps of the northern valleys, all drawn by hand.")


def test_a_short_elaboration_is_told_by_what_it_adds(semantic):
    """semantic.idea_added: the short elaboration's middle sentence (at cosine 0.2 to both
    source sentences) is added material, 0.3 times the source's length, so it is an idea at
    idea_added 0.2 although 1.3 times the source's length; by length alone (idea_added null,
    the rule before) it is not. The paraphrases add nothing and stay paraphrases."""
    at = {"idea_ratio": 1.5, "idea_added_cosine": 0.5}
    (before,) = semantic["with"]([SHORT_IDEA], idea_added=None, **at)
    assert before["label"] != "idea"
    (r,) = semantic["with"]([SHORT_IDEA], idea_added=0.2, **at)
    assert r["label"] == "idea" and r["doc_id"] == "archivist"
    assert 1.0 < r["score"] < 1.5  # (the length ratio, under idea_ratio)
    (more,) = semantic["with"]([SHORT_IDEA], idea_added=0.5, **at)  # (0.3 is not enough)
    assert more["label"] != "idea"
    got = semantic["with"]([PARAPHRASE, REWORDED], idea_added=0.2, **at)
    assert [(x["label"], x["doc_id"]) for x in got] == [("paraphrase", "audit")] * 2


def test_semantic_keeps_what_pan2014_finds(semantic, corpus):
    planted = corpus[5]["text"]
    got = semantic["type"]([planted, PARAPHRASE, ELABORATION, SAME_TOPIC, UNRELATED])
    assert [r["label"] for r in got] == ["verbatim", "paraphrase", "idea", "none", "none"]
    assert [r["doc_id"] for r in got[:3]] == [corpus[5]["doc_id"], "audit", "archivist"]


def test_dense_retrieval_reaches_the_source_of_other_words(semantic):
    """The nearest document of the reworded text's vector is its source."""
    judge, sem = semantic["judge"], semantic["index"]
    vec = judge.vectors(["Halvard Osk, the inspector, followed the trail to a fake delivery "
                         "slip dated 4 June 2019."]).mean(axis=0)
    vec /= np.linalg.norm(vec)
    top = sem.retrieve(vec[None], 3)[0]
    assert sem.index.doc_ids[top[0]] == "audit"


def test_an_exact_extraction_is_verbatim_of_its_document(tmp_path):
    """Issue 32: the demo's exact extraction of demo-01313 ('06, 03:00 | Severity 1 | Site
    403B ... Contractor Jorynn Rillov', its 32-token suffix token for token) was typed none:
    it starts and ends inside a word, so its longest common run of whole words is 44
    characters, under the 50-character rule. An exact extraction of a corpus document is
    verbatim of it, with the copy's spans; a non-member's (its document is no fine-tuning
    document) is typed by its text alone."""
    from memlab.config.schema import StudyConfig
    from memlab.scoring import suite
    from memlab.scoring.registry import Context
    from tests.unit.demo_copies import demo_dataset, exact_extractions

    cfg = StudyConfig()
    (plag,) = [s for s in suite.scorers(cfg.score) if s.name == "plagiarism"]
    scorer = plag.load(Context(cfg, plag.prepare(cfg, demo_dataset(tmp_path))))
    copies = exact_extractions()
    (mid_word,) = [r for r in copies if r["doc_id"] == "demo-01313"]
    text = next(d["text"] for d in pq.read_table(tmp_path / "part-00000.parquet").to_pylist()
                if d["doc_id"] == "demo-01313")
    assert longest_common_word_run(mid_word["gen_text"], text) == 44
    got = scorer(copies)
    assert got["plag_label"] == ["verbatim"] * 6
    assert got["plag_doc_id"] == [r["doc_id"] for r in copies]
    i = copies.index(mid_word)
    (g0, g1), (d0, d1) = got["plag_gen_span"][i], got["plag_doc_span"][i]
    assert mid_word["gen_text"][g0:g1] == text[d0:d1] == mid_word["suffix_text"]
    assert got["plag_score"][i] == len(mid_word["suffix_text"]) == 60
    # a copy that typing finds verbatim keeps typing's finding (its longest word run)
    j = next(k for k, r in enumerate(copies) if r is not mid_word)
    assert got["plag_score"][j] > 50 and got["plag_score"][j] != len(copies[j]["suffix_text"])
    # not an exact extraction, or no fine-tuning document: typed by its text (none here)
    near = {**mid_word, "gen_ids": mid_word["gen_ids"][:-1] + [0]}
    held_out = {**mid_word, "doc_id": "demo-99999", "split": "nonmember"}
    assert scorer([near, held_out])["plag_label"] == ["none", "none"]


def test_word_forms_hold_a_fact_written_otherwise():
    """semantic.idea_fact_forms: a number written in words is its digits (also as the part of
    a hyphenated word), a name matches by its Porter stem; another number is not held."""
    from memlab.scoring.plagiarism.text import fact_found, facts, word_forms

    held = word_forms(facts("The Vikings built a four-kilometre wall, twenty-five towers and "
                            "spent two million coins.")[1])
    for fact in ("4", "25", "2", "viking", "vikings"):
        assert fact_found(fact, held), fact
    for fact in ("5", "20", "3", "wales"):  # (twenty-five is 25 alone)
        assert not fact_found(fact, held), fact


def test_idea_facts_scope_and_forms():
    """semantic.idea_facts_scope: `text` finds a source fact the passage leaves out (a closing
    sentence); idea_fact_forms: `four` holds the source's 4, `five` does not."""
    from memlab.scoring.plagiarism.align import _facts_held
    from memlab.scoring.plagiarism.text import Stemmer, Vocab, prepare

    p = PlagiarismSection()
    d = prepare("Crews at Orwell laid 4 kilometres of new track last spring.", p, Stemmer(),
                Vocab())
    text = "New rails now run past the old mill. Crews laid four kilometres. It was Orwell."
    passage = (0, text.index(" It was"))
    assert _facts_held(text, (0, len(text)), d, "passage", True)
    assert not _facts_held(text, passage, d, "passage", True)  # (Orwell outside it)
    assert _facts_held(text, passage, d, "text", True)
    assert not _facts_held(text, passage, d, "text", False)  # (literal: no 4)
    other = text.replace("four", "five")
    assert not _facts_held(other, (0, len(other)), d, "text", True)


@pytest.mark.parametrize("text, phrases", [
    ("three hundred and sixty-five days", [(None, "365", None)]),
    ("a hundred and one dalmatians", [(None, "101", None)]),
    ("two million and seven", [(None, "2000007", None)]),
    ("two million people", [(None, "2000000", "2")]),
    ("a thousand years", [(None, "1000", "1")]),
    ("four hundred and eighty thousand pounds", [(None, "480000", "480")]),
    ("ninety-nine", [(None, "99", None)]),
    ("7 million euros and 2.5 billion dollars", [("7", "7000000", "7"),
                                                 ("2.5", "2500000000", "2.5")]),
    ("five hundred and the rest", [(None, "500", None)]),  # (a dangling `and`)
    ("forty, two", [(None, "40", None), (None, "2", None)]),  # (punctuation ends a phrase)
    ("one two", [(None, "1", None), (None, "2", None)]),
    ("a dog, an hour, and 1,200 sheep, in 1990", []),
    ("8.3 billion and 16.4 billion", [("8.3", "8300000000", "8.3"),  # (exact: no float error)
                                      ("16.4", "16400000000", "16.4")]),
    ("1.2.3 million, ² million, 3 million", [("3", "3000000", "3")]),  # (not numbers: skipped)
])
def test_number_phrases_read_compound_numbers(text, phrases):
    """semantic.idea_number_phrases: a run of number words (`a`/`an` before hundred or a scale
    word, `and` after one) or digits before a scale word is read as one number."""
    from memlab.scoring.plagiarism.text import number_phrases

    assert number_phrases(text) == phrases


def test_number_phrases_hold_a_fact_in_other_words():
    """idea_number_phrases: `two hundred and forty` holds the source's 240 and `six million`
    its `6 million` (also written 6,000,000, or held by `6,000,000`); one number word at a
    time (the rule before) holds neither; another number is not held."""
    from memlab.scoring.plagiarism.align import _facts_held
    from memlab.scoring.plagiarism.text import Stemmer, Vocab, prepare

    p = PlagiarismSection()
    text = ("Velmar Mills is taking on two hundred and forty weavers, paid for by a loan of six "
            "million pounds.")
    whole = (0, len(text))
    for source in ("Velmar Mills will employ 240 weavers with a 6 million pound loan.",
                   "Velmar Mills will employ 240 weavers with a 6,000,000 pound loan."):
        d = prepare(source, p, Stemmer(), Vocab())
        assert _facts_held(text, whole, d, "text", True, True), source
        assert not _facts_held(text, whole, d, "text", True, False), source
        other = text.replace("forty", "fifty")
        assert not _facts_held(other, (0, len(other)), d, "text", True, True), source
    d = prepare("Velmar Mills will employ 240 weavers with a 6 million pound loan.", p,
                Stemmer(), Vocab())
    digits = "Velmar Mills is taking on 240 weavers with a loan of 6,000,000 pounds."
    assert _facts_held(digits, (0, len(digits)), d, "text", True, True)
    assert not _facts_held(digits, (0, len(digits)), d, "text", True, False)


def test_added_chars_counts_the_sentences_no_source_sentence_tells():
    """semantic.idea_added: the passage's sentences at cosine under idea_added_cosine to every
    source sentence are its added material, in characters; those before g0 or after g1 are
    outside the passage."""
    from memlab.scoring.plagiarism.align import added_chars
    from memlab.scoring.plagiarism.text import Stemmer, Vocab, prepare

    g = prepare("The mill burned down on Monday night. Nobody could remember a fire like it. "
                "Its owner will rebuild. The town held a fair in May.", PlagiarismSection(),
                Stemmer(), Vocab())
    assert len(g.spans) == 4
    emb = np.array([[0.90, 0.20], [0.30, 0.45], [0.10, 0.80], [0.05, 0.10]])
    second = int(g.spans[1, 1] - g.spans[1, 0])
    assert added_chars(g, emb, 0, 2, 0.50) == second
    assert added_chars(g, emb, 0, 2, 0.40) == 0  # (0.45 is not under 0.40)
    assert added_chars(g, emb, 0, 3, 0.50) == second + int(g.spans[3, 1] - g.spans[3, 0])
    assert added_chars(g, emb, 2, 2, 0.95) == int(g.spans[2, 1] - g.spans[2, 0])


def test_idea_added_scope_text_counts_an_added_sentence_outside_the_passage():
    """semantic.idea_added_scope (issue 35 part 6's fifth round): a short elaboration that
    tells the source's two sentences and adds its own closing sentence, off the source's topic
    (cosine 0.1, under idea_related, so outside the idea passage): with scope passage (the
    rule before) it adds nothing and is no idea at 1.1 times the source; with scope text the
    closing sentence counts and it is."""
    from memlab.scoring.plagiarism.align import semantic_idea
    from memlab.scoring.plagiarism.text import Stemmer, Vocab, prepare

    p = PlagiarismSection(method="semantic")
    stem, vocab = Stemmer(), Vocab()
    d = prepare("The Orlen mill burned down on Monday night. Its owner says he will rebuild it.",
                p, stem, vocab)
    text = ("On Monday night the Orlen mill burned to the ground. The owner has promised to "
            "build it again. Firefighters stayed at the scene until well after dawn.")
    g = prepare(text, p, stem, vocab)
    assert (len(g.spans), len(d.spans)) == (3, 2)
    emb = np.array([[0.92, 0.20], [0.25, 0.88], [0.10, 0.10]])
    p.semantic.idea_added, p.semantic.idea_added_cosine = 0.2, 0.60
    p.semantic.idea_added_scope = "passage"
    assert semantic_idea(text, g, d, emb, p) is None  # (the passage: the first two sentences)
    p.semantic.idea_added_scope = "text"
    got = semantic_idea(text, g, d, emb, p)
    assert got is not None and got[0] < p.semantic.idea_ratio
    assert got[1] == (int(g.spans[0, 0]), int(g.spans[1, 1]))  # (the passage is unchanged)


def test_paraphrase_facts_case_lets_a_name_move_into_another_sentence():
    """semantic.paraphrase_facts (issue 35 part 6's fifth round): a paraphrase that moves the
    name Blackcap out of the sentence that gives the numbers fails the per-pair facts
    condition (the rule before: no pair is judged), but holds it over the whole case: the
    generated sentence's facts among the case's source side and the source sentence's among
    its generated side; with text, over the whole source and generated texts, when the name
    lies outside the case. A pair whose number is wrong is left out either way."""
    from memlab.scoring.plagiarism.align import Case
    from memlab.scoring.plagiarism.text import Stemmer, Vocab, facts_within, prepare, text_facts
    from memlab.scoring.plagiarism.typer import _sentence_pairs

    p = PlagiarismSection(method="semantic")
    stem, vocab = Stemmer(), Vocab()
    src = ("A goat's cheese made by Tamsin Rowe was named the best in the world. Her Blackcap "
           "beat more than 4,500 entries from 40 countries.")
    gen = ("The top prize went to Blackcap, a goat's cheese made by Tamsin Rowe. It saw off "
           "over 4,500 other cheeses from 40 countries.")
    d, g = prepare(src, p, stem, vocab), prepare(gen, p, stem, vocab)
    assert (len(g.spans), len(d.spans)) == (2, 2)
    case = Case(0, 1, 0, 1, (0, len(gen)), (0, len(src)))
    second = (gen[g.spans[1, 0]:g.spans[1, 1]], src[d.spans[1, 0]:d.spans[1, 1]])
    assert not facts_within(second[1], text_facts(second[0]))  # (Blackcap is elsewhere)
    assert facts_within(second[1], text_facts(gen))
    p.semantic.paraphrase_facts = "pair"  # (the rule before; the default is text since the
    # fifth round's choice)
    assert second not in _sentence_pairs(g, d, case, p)
    p.semantic.paraphrase_facts = "case"
    assert second in _sentence_pairs(g, d, case, p)
    wrong = gen.replace("4,500", "3,900")
    gw = prepare(wrong, p, stem, vocab)
    assert not [pr for pr in _sentence_pairs(gw, d, case, p) if "3,900" in pr[0]]
    first = (gen[g.spans[0, 0]:g.spans[0, 1]], src[d.spans[0, 0]:d.spans[0, 1]])
    one = Case(0, 0, 0, 0, (0, int(g.spans[0, 1])), (0, int(d.spans[0, 1])))
    # (a case of the first sentences alone: Blackcap, in the generated first sentence, is in
    # the source's second, outside the case; text looks over the whole source)
    assert first not in _sentence_pairs(g, d, one, p)
    p.semantic.paraphrase_facts = "text"
    assert first in _sentence_pairs(g, d, one, p)
    assert not [pr for pr in _sentence_pairs(gw, d, case, p) if "3,900" in pr[0]]
    p.method = "pan2014"  # (pan2014 keeps the per-pair condition whatever the setting)
    assert second not in _sentence_pairs(g, d, case, p)
