"""One row per sample (issue 35 part 4): the sweep's Parquet dataset under samples/, built by
the report from finished trials' generation and score shards (here: synthetic shards of the
smoke study's three trials), and the report's "most leaked documents" section that reads it."""

import json
import os

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from memlab.config.expand import load_study
from memlab.config.labels import model_label
from memlab.io.paths import stage_dir, trial_dir
from memlab.io.shards import CANARY_SCHEMA, MANIFEST, SUMMARY_SCHEMA
from memlab.report.render import build_report, render
from memlab.report.samples import (
    SOURCES,
    TITLE,
    leaked_listing,
    most_leaked,
    open_samples,
    samples_dir,
    write_samples,
)
from memlab.report.tables import layout, text
from tests.conftest import SWEEPS
from tests.unit.test_report import HEADS, record

SMOKE = SWEEPS / "smoke.yaml"
DOCS = [("m1", "member", 1), ("m2", "member", 4), ("m3", "member", 4), ("n1", "nonmember", 0),
        ("n2", "nonmember", 0)]
SAMPLES = 2  # per prompt


@pytest.fixture
def study(tmp_path):
    return load_study(SMOKE, [f"sweep.runs_root={tmp_path / 'runs'}"])


def leak(strategy: str, doc: str, idx: int) -> tuple[bool, float, float]:
    """(exact, token match, similarity) of a synthetic sample: full leaks m2 exactly at its
    second sample, lora m3 nearly; every other sample little."""
    if (strategy, doc, idx) == ("full", "m2", 1):
        return True, 1.0, 0.99
    if (strategy, doc) == ("lora", "m3"):
        return False, 0.9, 0.95 - idx / 10
    return False, 0.1 * idx, 0.2 + 0.01 * int(doc[1])


def finish(t, manifest: str = "v1", canaries: bool = True) -> None:
    """A finished trial's files as a sweep leaves them: result.json; generation shards (two
    of them), score shards with a nested column and membership scores, the canaries'
    exposure, each stage's manifest; the score summary."""
    strategy = t.config.train.strategy
    tdir = trial_dir(t.config, t.key)
    tdir.mkdir(parents=True, exist_ok=True)
    (tdir / "result.json").write_text(json.dumps(
        {"strategy": strategy, "model": "tiny", "seed": 0, "key": t.key,
         "point": {"train.strategy": strategy}}))
    gen, score = stage_dir(t.config, "gen", t.keys.gen), stage_dir(t.config, "score", t.key)
    gen_rows, score_rows = [], []
    for doc, split, dup in DOCS:
        for i in range(SAMPLES):
            sid = f"{doc}#{i}"
            exact, match, sim = leak(strategy, doc, i)
            gen_rows.append({"sample_id": sid, "doc_id": doc, "seed": 1000 + i,
                             "gen_text": f"text of {sid}"})
            score_rows.append({
                "trial_key": t.key, "sample_id": sid, "doc_id": doc, "split": split,
                "dup_count": dup, "sample_idx": i, "exact_extracted": exact,
                "token_match_frac": match, "sim_to_source": sim,
                "plag_label": "verbatim" if exact else "none",
                "plag_doc_id": doc if exact else None, "plag_gen_span": [0, 5],
                "mia_loss": -2.0 + (dup / 10), "mia_ref": 0.1 * dup})
    for d in (gen, score):
        d.mkdir(parents=True, exist_ok=True)
    for part, rows in enumerate((gen_rows[:4], gen_rows[4:])):  # shards in another order
        pq.write_table(pa.Table.from_pylist(rows), gen / f"part-{part:05d}.parquet")
    pq.write_table(pa.Table.from_pylist(score_rows[::-1]), score / "part-00000.parquet")
    if canaries:
        pq.write_table(pa.Table.from_pylist(
            [{"doc_id": "canary-r4-0", "repeats": 4, "space_bits": 20.0, "alternatives": 63,
              "beaten_by": 0, "exposure": 6.0},
             {"doc_id": "canary-r0-0", "repeats": 0, "space_bits": 20.0, "alternatives": 63,
              "beaten_by": 31, "exposure": 1.0}], schema=CANARY_SCHEMA),
            gen / "canary-part-00000.parquet")
    for d in (gen, score):
        (d / MANIFEST).write_text(json.dumps({"made": manifest, "stage": d.parent.name}))
    pq.write_table(pa.Table.from_pylist(
        [{"split": "member", "dup_count": 4, "metric": "exact_pct", "value": 10.0},
         {"split": "nonmember", "dup_count": -1, "metric": "exact_pct", "value": 0.0}],
        schema=SUMMARY_SCHEMA), score / "summary.parquet")


def test_one_row_per_sample_and_canary_of_every_trial_with_its_columns(study):
    for t in study.trials:
        finish(t)
    folder, written = write_samples(study)
    assert folder == samples_dir(study) and written == [t.key for t in study.trials]
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet")) == \
        sorted(f"strategy={t.config.train.strategy}/{t.key}.parquet" for t in study.trials)
    table = open_samples(folder).to_table()
    per_trial = len(DOCS) * SAMPLES + 2  # samples, then its canaries
    assert table.num_rows == len(study.trials) * per_trial
    names = table.schema.names
    assert names[:10] == ["trial_key", "trial", "model", "seed", "sample_id", "doc_id",
                          "split", "dup_count", "sample_idx", "sample_seed"]
    assert {"exact_extracted", "token_match_frac", "sim_to_source", "plag_label",
            "plag_doc_id", "mia_loss", "mia_ref", "exposure", "canary_beaten_by",
            "canary_alternatives", "strategy"} <= set(names)
    assert "plag_gen_span" not in names and "gen_text" not in names  # flat; no texts
    df = table.to_pandas()
    assert set(df.strategy) == {"full", "head", "lora"}
    assert (df.groupby("trial_key").size() == per_trial).all()
    assert df.split.value_counts().to_dict() == {"member": 18, "nonmember": 12, "canary": 6}


def test_a_members_scores_are_joined_in_one_row_by_sample_id(study):
    full = study.trials[0]
    finish(full)
    folder, _ = write_samples(study)
    df = open_samples(folder).to_table().to_pandas()
    row = df[(df.trial_key == full.key) & (df.sample_id == "m2#1")]
    assert len(row) == 1
    r = row.iloc[0]
    assert (r.trial, r.strategy, r.seed, r.model) == \
        (full.name, "full", 0, model_label(full.config))
    assert (r.doc_id, r.split, r.dup_count, r.sample_idx, r.sample_seed) == \
        ("m2", "member", 4, 1, 1001)  # the seed from the generation shard of that sample
    assert bool(r.exact_extracted) and r.token_match_frac == 1.0 and r.sim_to_source == 0.99
    assert (r.plag_label, r.plag_doc_id) == ("verbatim", "m2")
    assert r.mia_loss == pytest.approx(-1.6) and r.mia_ref == pytest.approx(0.4)
    assert r.exposure != r.exposure  # null: not a canary
    other = df[(df.trial_key == full.key) & (df.sample_id == "m2#0")].iloc[0]
    assert not other.exact_extracted and other.sample_seed == 1000


def test_canary_rows_carry_their_exposure(study):
    full = study.trials[0]
    finish(full)
    folder, _ = write_samples(study)
    t = open_samples(folder).to_table(filter=ds.field("split") == "canary").to_pandas()
    assert sorted(zip(t.doc_id, t.dup_count, t.exposure, t.canary_beaten_by)) == \
        [("canary-r0-0", 0, 1.0, 31), ("canary-r4-0", 4, 6.0, 0)]
    assert (t.trial_key == full.key).all() and t.sample_id.tolist() == t.doc_id.tolist()
    assert t.sim_to_source.isna().all() and t.mia_loss.isna().all()


def test_most_leaked_reads_the_dataset_in_order_one_row_per_trial_and_document(study):
    for t in study.trials:
        finish(t)
    folder, _ = write_samples(study)
    rows = most_leaked(folder, top=4)
    full, lora = study.trials[0], study.trials[2]
    assert [(r["strategy"], r["doc_id"], r["sample_id"]) for r in rows] == [
        ("full", "m2", "m2#1"),  # exact first
        ("lora", "m3", "m3#0"),  # then similarity: m3 at its best sample (0.95), once
        ("full", "m3", "m3#1"), ("head", "m3", "m3#1")]  # sim 0.23 at both samples: the
    # one matching more tokens; full before head by trial name
    assert rows[0]["trial"] == full.name and rows[1]["trial_key"] == lora.key
    assert rows[0]["mia_ref"] == pytest.approx(0.4) and rows[0]["plag_doc_id"] == "m2"
    listing = leaked_listing(rows, "runs/smoke/samples")
    head, body, legend = layout(listing, [])
    assert head[:11] == ["#", "trial", "strategy", "seed", "doc", "dup", "exact", "sim",
                         "match_%", "plagiarism", "source"] and head[11:] == ["loss", "ref"]
    assert body[0] == ["1", full.name, "full", "0", "m2", "4", "yes", "0.990", "100",
                       "verbatim", "m2", "-1.600", "0.400"]
    assert body[1][:11] == ["2", lora.name, "lora", "0", "m3", "4", "no", "0.950", "90",
                            "none", "-"]
    assert "runs/smoke/samples/" in legend and "loss, ref: the sample's membership" in legend
    assert leaked_listing([], "x") is None


def test_a_rerun_writes_only_the_added_and_changed_trials_and_drops_the_unfinished(study):
    full, head, lora = study.trials
    finish(full)
    finish(head)
    folder, written = write_samples(study)
    assert written == [full.key, head.key]
    path = {t.key: folder / f"strategy={t.config.train.strategy}/{t.key}.parquet"
            for t in study.trials}
    os.utime(path[full.key], (1, 1))
    os.utime(path[head.key], (1, 1))
    finish(lora)
    _, written = write_samples(study)
    assert written == [lora.key]  # the others kept as they were
    assert path[full.key].stat().st_mtime == 1 and path[head.key].stat().st_mtime == 1
    assert open_samples(folder).count_rows() == 3 * (len(DOCS) * SAMPLES + 2)
    finish(head, manifest="v2")  # rescored
    (trial_dir(full.config, full.key) / "result.json").unlink()  # no longer finished
    _, written = write_samples(study)
    assert written == [head.key] and not path[full.key].exists()
    assert set(json.loads((folder / SOURCES).read_text())) == {head.key, lora.key}
    assert not list(folder.rglob(".*.tmp"))
    assert not (folder / "strategy=full").exists()  # its one trial gone: its folder too
    os.utime(folder / SOURCES, (1, 1))
    (folder / "strategy=lora" / ".half.parquet.tmp").write_bytes(b"PAR1")  # a crash's
    _, written = write_samples(study)
    assert written == [] and (folder / SOURCES).stat().st_mtime == 1  # nothing changed
    assert not list(folder.rglob(".*.tmp"))


def test_a_trial_without_an_opt_in_signal_reads_null_in_its_column(study):
    full, head, _ = study.trials
    finish(full)
    finish(head, canaries=False)
    score = stage_dir(head.config, "score", head.key) / "part-00000.parquet"
    t = pq.read_table(score)
    pq.write_table(t.append_column("mia_rmia", pa.array([0.5] * t.num_rows)), score)
    folder, _ = write_samples(study)
    df = open_samples(folder).to_table().to_pandas()
    assert df[df.trial_key == head.key].mia_rmia.eq(0.5).all()
    assert df[df.trial_key == full.key].mia_rmia.isna().all()
    assert "rmia" in layout(leaked_listing(most_leaked(folder), "x"), [])[0]


def test_the_report_shows_the_most_leaked_documents_last(study, tmp_path):
    for t in study.trials:
        finish(t)
    rep = build_report(study)
    assert rep.tables[-1].title == TITLE
    section = text(rep.tables[-1], [])
    lines = section.splitlines()
    assert lines[0] == TITLE and lines[1].split()[:6] == ["#", "trial", "strategy", "seed",
                                                         "doc", "dup"]
    assert lines[3].split()[:7] == ["1", study.trials[0].name, "full", "0", "m2", "4", "yes"]
    assert len([ln for ln in lines if ln[:3].strip().isdigit()]) == 9  # 3 trials x 3 members
    assert section in rep.text
    root = samples_dir(study).parent
    assert f"## {TITLE}" in (root / "results.md").read_text()
    assert "Most leaked documents" in (root / "results.html").read_text()


def test_render_without_a_dataset_has_no_such_section(tmp_path):
    rep = render("demo", tmp_path, __import__("memlab.report.numbers", fromlist=["aggregate"])
                 .aggregate([record("full", 0)], []), [], HEADS)
    assert all(t.title != TITLE for t in rep.tables) and TITLE not in rep.text
