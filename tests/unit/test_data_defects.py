"""Issue 19, acceptance 2: each defect of a dataset source is a clear one-line error before
training or a counted skip written in the dataset manifest (and, through the trial's metrics,
the MLflow run), never a crash deep in a trial."""

import json
import subprocess

import pytest

from memlab.components.data import DataError, read_dataset
from memlab.config.schema import DataSection
from memlab.io.shards import read_manifest
from memlab.stages.data import build_dataset
from tests.conftest import ROOT, SWEEPS


def _docs(n: int, words: int = 30) -> list[dict]:
    return [{"id": f"d{i}", "text": f"document {i} " + " ".join(f"w{i}x{j}" for j in range(words))}
            for i in range(n)]


def _jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _section(path: str, **kw) -> DataSection:
    return DataSection(source="local", path=path, id_field="id", num_members=4,
                       num_nonmembers=4, **kw)


def test_empty_documents_are_skipped_and_counted(tmp_path):
    rows = _docs(8) + [{"id": "e1", "text": ""}, {"id": "e2", "text": "   \n\t "}]
    man = build_dataset(_section(_jsonl(tmp_path / "a.jsonl", rows)), tmp_path / "out")
    assert man["skipped"] == {"empty": 2}
    assert not any(r["doc_id"].startswith("e") for r in read_dataset(tmp_path / "out"))


def test_short_and_repeated_documents_are_counted(tmp_path):
    rows = _docs(8) + [{"id": "s", "text": "too short"}, {"id": "r", "text": _docs(1)[0]["text"]}]
    man = build_dataset(_section(_jsonl(tmp_path / "a.jsonl", rows), min_words=5),
                        tmp_path / "out")
    assert man["skipped"] == {"below_min_words": 1, "duplicate_text": 1}


def test_a_clean_source_writes_no_skips(tmp_path):
    man = build_dataset(_section(_jsonl(tmp_path / "a.jsonl", _docs(8))), tmp_path / "out")
    assert "skipped" not in man  # (manifests of clean sources as before)


def test_bytes_that_are_not_utf8_name_file_and_line(tmp_path):
    f = tmp_path / "a.jsonl"
    f.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in _docs(3)) +
                  b'{"id": "bad", "text": "caf\xe9 au lait"}\n')
    with pytest.raises(DataError, match=r"a.jsonl:4: not UTF-8 text \(byte 0xe9 at column "):
        build_dataset(_section(str(f)), tmp_path / "out")
    folder = tmp_path / "txt"
    folder.mkdir()
    (folder / "note.txt").write_bytes(b"latin-1 text: na\xefve")
    with pytest.raises(DataError, match=r"note.txt: not UTF-8 text \(byte 0xef"):
        build_dataset(DataSection(source="local", path=str(folder)), tmp_path / "out2")
    assert read_manifest(tmp_path / "out") is None and read_manifest(tmp_path / "out2") is None


def test_a_ten_megabyte_document_goes_through_whole(tmp_path):
    big = {"id": "big", "text": "word " * 2_000_000}  # 10 MB
    rows = _docs(7) + [big]
    build_dataset(_section(_jsonl(tmp_path / "a.jsonl", rows)), tmp_path / "out")
    got = {r["doc_id"]: r for r in read_dataset(tmp_path / "out")}
    assert len(got["big"]["text"]) == len(big["text"].strip())


def test_duplicate_ids_missing_column_and_too_few_documents_are_one_line_errors(tmp_path):
    rows = _docs(8)
    rows[3]["id"] = "d0"
    with pytest.raises(DataError, match="duplicate doc_id 'd0'"):
        build_dataset(_section(_jsonl(tmp_path / "a.jsonl", rows)), tmp_path / "o1")
    with pytest.raises(DataError, match="no field 'text'"):
        build_dataset(_section(_jsonl(tmp_path / "b.jsonl", [{"id": "x", "body": "y"}])),
                      tmp_path / "o2")
    with pytest.raises(DataError, match="the source has 5 usable documents, num_members "
                                        r"\+ num_nonmembers needs 8"):
        build_dataset(_section(_jsonl(tmp_path / "c.jsonl", _docs(5))), tmp_path / "o3")


@pytest.mark.parametrize("defect", ["not_utf8", "duplicate_ids", "too_few"])
def test_memlab_run_says_a_data_defect_in_one_line_before_training(memlab_cmd, tmp_path,
                                                                   defect):
    f = tmp_path / "data.jsonl"
    rows = _docs(30)
    if defect == "duplicate_ids":
        rows[5]["id"] = "d1"
    if defect == "too_few":
        rows = rows[:3]
    f.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in rows) +
                  (b'{"id": "z", "text": "\xff"}\n' if defect == "not_utf8" else b""))
    r = subprocess.run([*memlab_cmd, "run", str(SWEEPS / "smoke.yaml"),
                        "--set", "data.source=local", "--set", f"data.path={f}",
                        "--set", "data.id_field=id", "--set", f"sweep.runs_root={tmp_path / 'r'}",
                        "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    err = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1, r.stderr[-2000:]
    assert err[0].startswith("error: data: ") if defect == "duplicate_ids" else str(f) in err[0]
    assert "Traceback" not in r.stderr
    assert not list((tmp_path / "r").glob("stages/train/*"))  # nothing trained
    if defect != "duplicate_ids":  # found by the study's checks: before any run or folder
        assert "data.path" in err[0] or "data.num_members" in err[0], err[0]
        assert not (tmp_path / "r").exists() and not (tmp_path / "mlflow.db").exists()
