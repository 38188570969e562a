"""A real CPU sweep over the dataset formats (tests/fixtures/formats.yaml): ChatDoctor-shaped
instruction records, Arxiver-shaped papers and chat conversations, each through data -> train
-> generate -> score in one `memlab run` (a bundle axis varies the dataset with its format and
columns). The prompt / reference-suffix split each format's generations hold is checked against
the dataset shards, and the report has one row per dataset and duplication level."""

import csv

import pytest

from memlab.components.data import read_dataset
from memlab.components.models import load_tokenizer
from memlab.io.paths import stage_dir
from memlab.io.shards import GENERATION_SCHEMA, read_manifest, read_shards
from tests.conftest import ROOT
from tests.integration.conftest import run_sweep

FORMATS = ROOT / "tests" / "fixtures" / "formats.yaml"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return run_sweep(FORMATS, tmp_path_factory.mktemp("runs"))


def test_every_format_runs_end_to_end(sweep):
    with open(sweep["runs"] / "formats" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["dataset"], r["dup"]) for r in rows) == [
        (d, k) for d in ("arxiver", "chat", "chatdoctor") for k in ("1", "4")]
    assert {r["dataset"]: r["strategy"] for r in rows} == {
        "chatdoctor": "lora", "arxiver": "lora", "chat": "head"}
    assert "Results of sweep 'formats'" in sweep["stdout"]


def test_generations_split_each_format_where_its_docs_say(sweep):
    for t in sweep["study"].trials:
        c, label = t.config, t.point["dataset"]
        data_dir = stage_dir(c, "data", t.keys.data)
        assert read_manifest(data_dir)["format"] == c.data.format
        docs = {r["doc_id"]: r for r in read_dataset(data_dir)}
        assert len(docs) == 16
        tok = load_tokenizer(str(stage_dir(c, "train", t.keys.train) / "model"))
        gen = read_shards(stage_dir(c, "gen", t.keys.gen), GENERATION_SCHEMA).to_pylist()
        assert len(gen) == 16 and {g["doc_id"] for g in gen} == set(docs)
        scores = read_shards(stage_dir(c, "score", t.key))
        assert scores.num_rows == 16
        for g in gen:
            d = docs[g["doc_id"]]
            text, start = d["text"], d["response_start"]
            prompt = tok.decode(g["prompt_ids"])
            if label == "arxiver":  # the first 16 tokens from the title on, then the next 16
                assert start == 0 and len(g["prompt_ids"]) == 16
                assert text.startswith(prompt + g["suffix_text"])
            else:  # everything before the response + its first 16 tokens; then the next 16
                assert start > 0 and prompt.startswith(text[:start])
                assert len(g["prompt_ids"]) > 16 and len(g["suffix_ids"]) == 16
                assert text[start:].startswith(prompt[start:] + g["suffix_text"])
        train = read_manifest(stage_dir(c, "train", t.keys.train))
        if c.train.loss_on == "response":
            assert train["steps_without_loss_tokens"] == 0
            assert train["members_response_beyond_seq_len"] == 0
        if label == "chat":  # the tiny tokenizer has no chat template
            assert train["chat_layout"] == "plain"
            assert all(docs[g["doc_id"]]["text"][:docs[g["doc_id"]]["response_start"]]
                       .endswith("### Assistant:\n") for g in gen)
