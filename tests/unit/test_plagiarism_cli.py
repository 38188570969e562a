"""Issue 32, part 2: `memlab plagiarism` is as guarded as a study. Every setting goes through
the study's range and relation checks, a judge that cannot be loaded is one line, the corpus
index is placed where the user says and is said, the output columns are typed, and the files'
columns can be named. Refusals run the command as a user does (a subprocess: one line on
standard error, exit 2, nothing written); what loads the judge model runs it in this process
(main(argv)), so the model loads once for the file."""

import json
import subprocess

import pyarrow.parquet as pq
import pytest

from memlab.cli import main
from memlab.components.corpus import generate_demo_corpus
from memlab.io.shards import PLAGIARISM_SCHEMA
from tests.conftest import ROOT
from tests.unit.test_plagiarism import ARCHIVIST, AUDIT, ELABORATION, PARAPHRASE, UNRELATED

COPY = AUDIT.split(". ", 1)[1]  # (AUDIT's second sentence, word for word: verbatim)
TEXTS = {"v": "The loading bay was quiet that morning. " + COPY, "p": PARAPHRASE,
         "i": ELABORATION, "n": UNRELATED}


def _write(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def files(tmp_path):
    """A corpus (its own folder: what is written beside it shows) and generated texts."""
    (tmp_path / "data").mkdir()
    docs = generate_demo_corpus(40, seed=0) + [{"doc_id": "archivist", "text": ARCHIVIST},
                                               {"doc_id": "audit", "text": AUDIT}]
    corpus = _write(tmp_path / "data" / "corpus.jsonl", docs)
    gen = _write(tmp_path / "gen.jsonl", [{"id": k, "text": t} for k, t in TEXTS.items()])
    return tmp_path, corpus, gen


def _cli(memlab_cmd, *args) -> subprocess.CompletedProcess:
    return subprocess.run([*memlab_cmd, "plagiarism", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


REFUSED = [  # (arguments, the start of the one line that refuses them)
    (["--batch-size", "0"], "error: --batch-size: must be >= 1, got 0"),
    (["--batch-size", "-3"], "error: --batch-size: must be >= 1, got -3"),
    (["--set", "n_candidates=-2"], "error: --set n_candidates: must be >= 1, got -2"),
    (["--set", "bm25_b=2"], "error: --set bm25_b: must be in [0, 1]"),
    (["--set", "paraphrase_low=nan"], "error: --set paraphrase_low: must be a finite number"),
    (["--set", "paraphrase_low=0.95", "--set", "paraphrase_high=0.9"],
     "error: --set paraphrase_low: 0.95 is above score.plagiarism.paraphrase_high"),
    (["--set", "paraphrase_high=0.5"],  # (below the embedding judge's default low end, 0.8)
     "error: --set paraphrase_high: 0.5 is below score.plagiarism.paraphrase_low = 0.8"),
    (["--set", "n_cand=3"], "error: --set n_cand: unknown key (did you mean 'n_candidates'?)"),
    (["--method", "semantic", "--set", "judge_kind=cross-encoder"],
     "error: --method: semantic needs score.plagiarism.judge_kind=embedding"),
    (["--set", "judge=./no-such-model"], "error: --set judge=./no-such-model: no such model"),
    (["--text-column", "body"], "error: {corpus}: record 1 has no column 'body' (--text-column"),
    (["--generated-id-column", "key"],
     "error: {gen}: record 1 has no column 'key' (--generated-id-column"),
    (["--index-dir", "{corpus}"], "error: --index-dir {corpus}: not a folder"),
]


@pytest.mark.parametrize("args, said", REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_a_bad_setting_is_one_line_naming_it_and_nothing_is_written(memlab_cmd, files, args,
                                                                    said):
    tmp_path, corpus, gen = files
    r = _cli(memlab_cmd, "--corpus", corpus, "--generated", gen, "--out",
             str(tmp_path / "out.parquet"), *[a.format(corpus=corpus) for a in args])
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines() == [r.stderr.strip()], r.stderr  # one line
    assert r.stderr.startswith(said.format(corpus=corpus, gen=gen)), r.stderr
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["corpus.jsonl"]
    assert not (tmp_path / "out.parquet").exists()


def test_a_judge_model_that_does_not_exist_is_one_line(files, capsys):
    """(HF_HUB_OFFLINE=1, set by tests/conftest.py: the hub is not asked. In this process, a
    traceback would be the exception itself, failing the test.)"""
    tmp_path, corpus, gen = files
    assert main(["plagiarism", "--corpus", corpus, "--generated", gen, "--out",
                 str(tmp_path / "out.jsonl"), "--set", "judge=no-such-model"]) == 2
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error:")]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: --set judge=no-such-model: cannot load 'no-such-model' "
                               "as a sentence-embedding model"), lines
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["corpus.jsonl"]
    assert not (tmp_path / "out.jsonl").exists()


def test_output_columns_are_typed(files, capsys):
    """gen_chars / doc_chars are the spans' lengths, run_chars verbatim's common run,
    judge_score the paraphrase judge's score; null where they do not apply; no `score` column
    that is a length in one row and a cosine in the next."""
    tmp_path, corpus, gen = files
    out = tmp_path / "out.parquet"
    assert main(["plagiarism", "--corpus", corpus, "--generated", gen, "--out", str(out)]) == 0
    table = pq.read_table(out)
    assert table.schema.remove_metadata() == PLAGIARISM_SCHEMA
    assert table.column_names == ["id", "label", "doc_id", "gen_span", "doc_span", "gen_chars",
                                  "doc_chars", "run_chars", "judge_score"]
    rows = {r["id"]: r for r in table.to_pylist()}
    assert {k: r["label"] for k, r in rows.items()} == {
        "v": "verbatim", "p": "paraphrase", "i": "idea", "n": "none"}
    for r in rows.values():
        if r["label"] != "none":
            assert r["gen_chars"] == r["gen_span"][1] - r["gen_span"][0]
            assert r["doc_chars"] == r["doc_span"][1] - r["doc_span"][0]
    v, p, i, n = rows["v"], rows["p"], rows["i"], rows["n"]
    assert len(COPY) - 2 <= v["run_chars"] <= len(COPY) and v["judge_score"] is None
    assert 0.8 <= p["judge_score"] <= 0.99 and p["run_chars"] is None
    assert i["gen_chars"] >= 3 * i["doc_chars"]
    assert i["run_chars"] is None and i["judge_score"] is None
    assert all(n[k] is None for k in ("doc_id", "gen_span", "gen_chars", "doc_chars",
                                      "run_chars", "judge_score"))
    assert "texts typed: verbatim 1, paraphrase 1, idea 1, none 1" in capsys.readouterr().out


def test_help_documents_the_columns_and_the_index(memlab_cmd):
    r = subprocess.run([*memlab_cmd, "plagiarism", "--help"], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    for column in PLAGIARISM_SCHEMA.names:
        assert column in text, column
    assert "--index-dir DIR" in text and "(default: the corpus's folder)" in text
    assert "a copy of the corpus's texts" in text
    for option, default in (("--id-column", "doc_id"), ("--text-column", "text"),
                            ("--generated-id-column", "id"), ("--batch-size", "64")):
        assert f"{option} " in text and f"(default: {default})" in text


def test_the_index_goes_where_asked_and_is_said(files, capsys):
    """By default the index goes beside the corpus, and the log says where and what it holds;
    with --index-dir nothing is written beside the corpus."""
    tmp_path, corpus, gen = files
    args = ["plagiarism", "--corpus", corpus, "--generated", gen]
    assert main([*args, "--out", str(tmp_path / "a.jsonl")]) == 0
    (beside,) = [p for p in (tmp_path / "data").iterdir() if p.is_dir()]
    assert beside.name.startswith("corpus.jsonl.index-")
    err = capsys.readouterr().err
    assert f"corpus index {beside} written (derived from the corpus: a copy of its texts" in err
    assert AUDIT in json.loads((beside / "texts.json").read_text())  # (what README says)

    data = tmp_path / "data2"
    data.mkdir()
    corpus2 = data / "corpus.jsonl"
    corpus2.write_text((tmp_path / "data" / "corpus.jsonl").read_text())
    idx = tmp_path / "idx"
    assert main(["plagiarism", "--corpus", str(corpus2), "--generated", gen,
                 "--out", str(tmp_path / "b.jsonl"), "--index-dir", str(idx)]) == 0
    assert [p.name for p in data.iterdir()] == ["corpus.jsonl"]
    (folder,) = [p for p in idx.iterdir() if p.is_dir()]
    assert folder.name == beside.name and (folder / "meta.json").is_file()
    assert f"corpus index {folder} written" in capsys.readouterr().err
    assert main(["plagiarism", "--corpus", str(corpus2), "--generated", gen,
                 "--out", str(tmp_path / "c.jsonl"), "--index-dir", str(idx)]) == 0
    assert f"corpus index {folder} reused" in capsys.readouterr().err


def test_columns_of_other_names(files, capsys):
    tmp_path, corpus, gen = files
    docs = [json.loads(x) for x in open(corpus)]
    corpus2 = _write(tmp_path / "corpus2.jsonl", [{"uid": d["doc_id"], "body": d["text"]}
                                                  for d in docs])
    gen2 = _write(tmp_path / "gen2.jsonl", [{"key": 7, "generation": TEXTS["p"]}])
    out = tmp_path / "out.jsonl"
    assert main(["plagiarism", "--corpus", corpus2, "--generated", gen2, "--out", str(out),
                 "--id-column", "uid", "--text-column", "body",
                 "--generated-id-column", "key", "--generated-text-column", "generation"]) == 0
    (row,) = [json.loads(x) for x in open(out)]
    assert (row["id"], row["label"], row["doc_id"]) == ("7", "paraphrase", "audit")
