"""Issue 19, acceptance 3: in a finished smoke sweep, a truncated generation shard, a score
shard with one byte flipped and a file removed from a trained model are each found on rerun
and redone alone (no other piece is computed or changed), and every result equals the
undamaged run's."""

import json
import shutil

import pytest

from memlab.config.digests import file_sha256
from memlab.config.expand import load_study
from memlab.io.paths import stage_dir
from memlab.io.shards import UPSTREAM, read_manifest
from tests.integration.conftest import SMOKE, run_sweep

TIMING = ("train_time_s", "train_tokens_per_s")


def _mtimes(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def _results(runs, study):
    out = {}
    for t in study.trials:
        r = json.loads((runs / study.name / t.key / "result.json").read_text())
        out[t.key] = {k: v for k, v in r["metrics"].items() if k not in TIMING}
    return out


@pytest.mark.slow  # the smoke sweep, then a rerun that redoes three pieces: ~4 min on 2 cores
def test_damaged_pieces_are_found_and_redone_alone(smoke_sweep, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(smoke_sweep["runs"], runs)
    study = load_study(SMOKE, [f"sweep.runs_root={runs}"])
    by = {t.config.train.strategy: t for t in study.trials}
    gen = stage_dir(by["full"].config, "gen", by["full"].keys.gen)
    score = stage_dir(by["head"].config, "score", by["head"].keys.score)
    train = stage_dir(by["lora"].config, "train", by["lora"].keys.train)
    shard = sorted(gen.glob("part-*.parquet"))[0]
    scored = sorted(score.glob("part-*.parquet"))[0]
    weights = max((p for p in (train / "model").rglob("*") if p.is_file()),
                  key=lambda p: p.stat().st_size)
    originals = {p: p.read_bytes() for p in (shard, scored, weights)}
    manifests = {d: read_manifest(d) for d in (gen, score, train)}
    shard.write_bytes(originals[shard][: len(originals[shard]) // 2])
    flip = originals[scored]
    i = len(flip) // 2
    scored.write_bytes(flip[:i] + bytes([flip[i] ^ 0x01]) + flip[i + 1:])
    weights.unlink()
    damaged = {shard, scored, weights}
    before = {p: m for s in ("data", "train", "gen", "score")
              for p, m in _mtimes(runs / "stages" / s).items()
              if p not in damaged and train not in p.parents}
    contents = {p: file_sha256(p) for p in before
                if not p.name.endswith((".lock", UPSTREAM))}

    out = run_sweep(SMOKE, runs)
    log = out["stdout"] + out["stderr"]
    for p in (shard, scored):
        assert f"{p.name} missing or not as recorded" in log, log[-3000:]
    assert "model/" in log and "missing or not as recorded" in log
    for p, data in originals.items():  # each redone piece comes back byte for byte
        assert p.read_bytes() == data, p
    for d, man in manifests.items():  # so every manifest, and what is built on it, holds
        assert read_manifest(d) == man, d
    after = _mtimes(runs / "stages")
    redone = [str(p.relative_to(runs)) for p, m in before.items()  # no other piece computed
              if p.name.startswith("part-") and after.get(p) != m]
    assert not redone, redone
    changed = [str(p.relative_to(runs)) for p, digest in contents.items()  # nor changed
               if file_sha256(p) != digest]  # (a repaired stage's summary is rewritten
    assert not changed, changed  # from its shards, byte for byte)
    assert _results(runs, study) == _results(smoke_sweep["runs"], smoke_sweep["study"])
