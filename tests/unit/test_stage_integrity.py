"""Issue 19 part 3: a finished stage's outputs are checked against the sizes and digests its
manifest recorded; a damaged piece is redone alone, and a repair that gives the recorded bytes
back keeps the manifest (so the stages built on it stay valid)."""

import errno

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from memlab.io.shards import (
    MANIFEST,
    claim_stage,
    manifest_digest,
    read_manifest,
    shard_name,
    write_json_atomic,
    write_manifest,
    write_shard,
)


def _run(folder, values=(0, 1, 2), metrics="t=1.0"):
    """A stage of three shards and a volatile metrics file; returns the shards it wrote."""
    wrote = []
    with claim_stage(folder, "up") as stage:
        if stage.finished is None:
            for i, v in enumerate(values):
                p = folder / shard_name(i)
                if not p.exists():  # (finished shards are not redone)
                    write_shard(pa.table({"x": [v] * 100}), p)
                    wrote.append(p.name)
            write_json_atomic({"timing": metrics}, folder / "metrics.json")
            write_manifest(folder, upstream="up", volatile=("metrics.json",),
                           outputs=[shard_name(i) for i in range(len(values))] +
                           ["metrics.json"])
    return wrote


@pytest.mark.parametrize("damage", ["truncate", "flip", "remove"])
def test_a_damaged_shard_alone_is_redone_and_the_manifest_kept(tmp_path, damage, capsys):
    folder = tmp_path / "stage"
    assert len(_run(folder)) == 3
    digest = manifest_digest(folder)
    assert _run(folder) == []  # intact: nothing redone
    p = folder / shard_name(1)
    data = p.read_bytes()
    if damage == "truncate":
        p.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        i = len(data) // 2
        p.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:])
    else:
        p.unlink()
    assert _run(folder, metrics="t=2.0") == [shard_name(1)]  # that piece alone
    err = capsys.readouterr().err
    assert "part-00001.parquet missing or not as recorded" in err
    assert "its earlier manifest kept" in err
    assert manifest_digest(folder) == digest  # the stages built on it stay valid
    assert p.read_bytes() == data
    assert not (folder / (MANIFEST + ".repair")).exists()
    assert _run(folder) == []  # and the repaired stage passes the check


def test_a_repair_that_differs_from_the_record_gets_a_new_manifest(tmp_path, capsys):
    folder = tmp_path / "stage"
    _run(folder)
    digest = manifest_digest(folder)
    (folder / shard_name(2)).unlink()
    _run(folder, values=(0, 1, 7))  # (the redone piece comes back other than recorded)
    assert "outputs differ from the record" in capsys.readouterr().err
    assert manifest_digest(folder) != digest
    assert read_manifest(folder)["files"][shard_name(2)][1] != ""


def test_a_full_disk_while_writing_leaves_no_piece_that_counts_as_done(tmp_path, monkeypatch):
    folder = tmp_path / "stage"

    def full(table, where, **kw):
        with open(where, "wb") as f:
            f.write(b"PAR1 partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq, "write_table", full)
    with pytest.raises(OSError, match="No space left"):
        _run(folder)
    monkeypatch.undo()
    assert read_manifest(folder) is None
    assert not list(folder.glob("part-*.parquet"))  # (only a .tmp, never counted)
    assert len(_run(folder)) == 3  # the rerun redoes it all
